"""Backbone registry, pretrained weights through torch.hub's cache (served on 127.0.0.1), Kinetics names."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from torchvision.models.video import R2Plus1D_18_Weights

from video_processing.classification import make_kinetics_resnet
from video_processing.kinetics_module import KineticsDataModule
from video_processing.lessons.standins import serve_directory
from video_processing.models.backbones import (
    BACKBONES,
    PretrainedWeightsError,
    build_backbone,
    get_backbone,
    kinetics400_classes,
    load_pretrained_state,
    split_head,
)

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch.hub cache for the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def _mirror(monkeypatch, name: str, url: str) -> None:
    """Point the registry entry `name` at `url`."""
    monkeypatch.setitem(BACKBONES, name, dataclasses.replace(BACKBONES[name], weights_url=url))


def _serve_as_zoo_file(model: torch.nn.Module, served: Path, file_name: str) -> None:
    served.mkdir(exist_ok=True)
    # The zoo's files are training checkpoints; "epoch" stands for their other entries.
    torch.save({"model_state": model.state_dict(), "epoch": 200}, served / file_name)


def _assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module, skip: str = "\0") -> None:
    reference_state = reference.state_dict()
    compared = 0
    for name, tensor in model.state_dict().items():
        if not name.startswith(skip):
            torch.testing.assert_close(tensor, reference_state[name], rtol=0, atol=0, msg=name)
            compared += 1
    assert compared > 10


def test_zoo_weights_load_through_the_hub_cache_and_a_new_head(tmp_path, torch_home, monkeypatch):
    reference = get_backbone("x3d_xs").build(4, 64)
    _serve_as_zoo_file(reference, tmp_path / "served", "X3D_XS.pyth")
    with serve_directory(tmp_path / "served") as url:
        _mirror(monkeypatch, "x3d_xs", f"{url}/X3D_XS.pyth")
        model = build_backbone("x3d_xs", 10, num_frames=4, crop_size=64, pretrained=True)
    _assert_same_weights(model, reference, skip="blocks.5.proj")
    assert model.blocks[5].proj.out_features == 10
    assert (torch_home / "hub" / "checkpoints" / "X3D_XS.pyth").is_file()
    # The server is gone: a second load must come from the cache.
    again = build_backbone("x3d_xs", 400, num_frames=4, crop_size=64, pretrained=True)
    _assert_same_weights(again, reference)


def test_make_kinetics_resnet_pretrained_loads_slow_r50(tmp_path, torch_home, monkeypatch):
    reference = get_backbone("slow_r50").build(8, 64)
    _serve_as_zoo_file(reference, tmp_path / "served", "SLOW_8x8_R50.pyth")
    with serve_directory(tmp_path / "served") as url:
        _mirror(monkeypatch, "slow_r50", f"{url}/SLOW_8x8_R50.pyth")
        model = make_kinetics_resnet(num_classes=400, num_frames=8, crop_size=64, pretrained=True)
    _assert_same_weights(model, reference)


def test_plain_state_dicts_load_as_they_are(tmp_path, torch_home, monkeypatch):
    (tmp_path / "served").mkdir()
    state = {"fc.weight": torch.randn(400, 512)}
    torch.save(state, tmp_path / "served" / "r2plus1d_18.pth")  # torchvision's format: no "model_state"
    with serve_directory(tmp_path / "served") as url:
        _mirror(monkeypatch, "r2plus1d_18", f"{url}/r2plus1d_18.pth")
        loaded = load_pretrained_state("r2plus1d_18")
    torch.testing.assert_close(loaded["fc.weight"], state["fc.weight"])


def test_unreachable_weights_give_an_error_naming_the_url(tmp_path, torch_home, monkeypatch):
    with serve_directory(tmp_path) as url:
        pass  # a port that just closed: the download is refused
    _mirror(monkeypatch, "x3d_xs", f"{url}/X3D_XS.pyth")
    with pytest.raises(PretrainedWeightsError, match=f"{url}/X3D_XS.pyth.*pretrained=False"):
        build_backbone("x3d_xs", num_frames=4, crop_size=64, pretrained=True)


def test_weights_of_another_architecture_are_refused(tmp_path, torch_home, monkeypatch):
    _serve_as_zoo_file(torch.nn.Linear(3, 3), tmp_path / "served", "X3D_XS.pyth")
    with serve_directory(tmp_path / "served") as url:
        _mirror(monkeypatch, "x3d_xs", f"{url}/X3D_XS.pyth")
        with pytest.raises(PretrainedWeightsError, match="do not fit"):
            build_backbone("x3d_xs", num_frames=4, crop_size=64, pretrained=True)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="x3d_xs"):
        get_backbone("resnet9000")


def test_every_pretrained_backbone_has_a_weight_url_and_resnet_none():
    assert {name for name, entry in BACKBONES.items() if entry.weights_url is None} == {"resnet"}
    with pytest.raises(PretrainedWeightsError, match="resnet has no pretrained weights.*slow_r50"):
        build_backbone("resnet", num_frames=4, crop_size=32, pretrained=True)


def test_weights_url_argument_downloads_from_a_mirror(tmp_path, torch_home):
    reference = get_backbone("x3d_xs").build(4, 64)
    _serve_as_zoo_file(reference, tmp_path / "served", "mirror_X3D_XS.pyth")
    with serve_directory(tmp_path / "served") as url:
        model = build_backbone(
            "x3d_xs", num_frames=4, crop_size=64, pretrained=True, weights_url=f"{url}/mirror_X3D_XS.pyth"
        )
    _assert_same_weights(model, reference)


def test_size_options_only_where_the_entry_takes_them():
    thin = build_backbone("resnet", 6, num_frames=4, crop_size=32, stem_dim_out=8)
    assert thin.blocks[0].conv.out_channels == 8
    with pytest.raises(ValueError, match="x3d_xs takes no \\['stem_dim_out'\\]"):
        build_backbone("x3d_xs", num_frames=4, crop_size=32, stem_dim_out=8)


def test_resnet_entry_expects_the_data_module_defaults():
    """predict falls back on the entry for checkpoints without data settings: they must be the data's defaults."""
    defaults = inspect.signature(KineticsDataModule).parameters
    entry = get_backbone("resnet")
    assert (entry.num_frames, entry.crop_size, entry.short_side, entry.clip_duration_s) == tuple(
        defaults[name].default for name in ("num_frames", "crop_size", "min_short_side", "clip_duration")
    )
    assert (entry.mean, entry.std) == (defaults["mean"].default, defaults["std"].default)


@pytest.mark.parametrize("name", ["x3d_xs", "r2plus1d_18"])
def test_head_of_the_backbone_features_equals_the_model(name):
    torch.manual_seed(0)
    model = build_backbone(name, 6, num_frames=4, crop_size=32).eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        logits = model(clip)
        backbone, head = split_head(model, get_backbone(name).head)
        split_logits = head(backbone(clip))
    assert logits.shape == (2, 6)
    torch.testing.assert_close(split_logits, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("finetune_*.yaml")), ids=lambda p: p.stem)
def test_finetuning_configs_feed_the_input_the_weights_expect(config):
    settings = yaml.safe_load(config.read_text())
    backbone = get_backbone(settings["model"]["backbone"])
    data = settings["data"]
    assert config.stem == f"finetune_{backbone.name}"
    assert settings["model"]["pretrained"] is True
    assert (data["num_frames"], data["crop_size"], data["min_short_side"]) == (
        backbone.num_frames,
        backbone.crop_size,
        backbone.short_side,
    )
    assert data["clip_duration"] == pytest.approx(backbone.clip_duration_s, abs=1e-3)
    assert tuple(data["mean"]) == backbone.mean and tuple(data["std"]) == backbone.std


def test_three_finetuning_configs_exist():
    assert len(list(CONFIGS.glob("finetune_*.yaml"))) >= 3


def test_kinetics400_classes_are_the_400_sorted_labels():
    names = kinetics400_classes()
    assert len(names) == 400 and len(set(names)) == 400
    assert names == sorted(names)
    assert {"abseiling", "zumba", "playing guitar", "passing American football (in game)"} <= set(names)
    # torchvision's video weights carry the same list, in the same class-index order.
    assert names == R2Plus1D_18_Weights.KINETICS400_V1.meta["categories"]


def _slowfast_reference() -> tuple[torch.nn.Module, torch.Tensor, Callable]:
    from pytorchvideo.models.hub import slowfast_r50

    # 8 fast frames of 64 pixels: pooled over exactly that input, as the registry pools over its input
    reference = slowfast_r50(pretrained=False, head_pool_kernel_sizes=((2, 2, 2), (8, 2, 2)))
    fast = torch.randn(1, 3, 8, 64, 64)
    slow = fast[:, :, torch.linspace(0, 7, 2).long()]  # PyTorchVideo's PackPathway with alpha 4
    return reference, fast, lambda: reference([slow, fast])


def _torchvision_reference(builder: str, num_frames: int, crop_size: int):
    from torchvision.models import video

    reference = getattr(video, builder)(weights=None, num_classes=400)
    clip = torch.randn(1, 3, num_frames, crop_size, crop_size)
    return reference, clip, lambda: reference(clip)


def _videomae_reference():
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    config = VideoMAEConfig(image_size=32, num_frames=4, num_hidden_layers=2, num_labels=400)
    reference = VideoMAEForVideoClassification(config)
    clip = torch.randn(1, 3, 4, 32, 32)
    return reference, clip, lambda: reference(pixel_values=clip.transpose(1, 2)).logits


# name: (reference model, clip, the reference's own call on the clip), the registry options; small inputs where
# the architecture takes any (MViT's and S3D's take 224-pixel clips only)
PARITY = {
    "slowfast_r50": (_slowfast_reference, {}),
    "s3d": (lambda: _torchvision_reference("s3d", 16, 224), {}),
    "swin3d_t": (lambda: _torchvision_reference("swin3d_t", 4, 64), {}),
    "mvit_v2_s": (lambda: _torchvision_reference("mvit_v2_s", 16, 224), {}),
    "videomae_base": (_videomae_reference, {"num_hidden_layers": 2}),
}


def _save_in_the_published_format(name: str, reference: torch.nn.Module, folder: Path) -> str:
    """The reference's weights as the registry's real file holds them; the served file's name."""
    folder.mkdir(exist_ok=True)
    if name == "videomae_base":
        reference.save_pretrained(folder)  # model.safetensors, as on the Hugging Face Hub
        return "model.safetensors"
    state = reference.state_dict()
    torch.save({"model_state": state} if name == "slowfast_r50" else state, folder / f"{name}.pth")
    return f"{name}.pth"


@pytest.mark.parametrize("name", sorted(PARITY))
def test_new_backbones_equal_their_reference_on_the_same_weights(name, tmp_path, torch_home):
    make_reference, options = PARITY[name]
    torch.manual_seed(0)
    reference, clip, run_reference = make_reference()
    reference.eval()
    file_name = _save_in_the_published_format(name, reference, tmp_path / "served")
    with serve_directory(tmp_path / "served") as url:
        model = build_backbone(
            name, num_frames=clip.shape[2], crop_size=clip.shape[3], pretrained=True,
            weights_url=f"{url}/{file_name}", **options,
        ).eval()  # fmt: skip
    with torch.no_grad():
        expected, logits = run_reference(), model(clip)
    assert logits.shape == (1, 400)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_inputs_a_network_cannot_take_are_refused_naming_the_fix():
    with pytest.raises(ValueError, match="mvit_v2_s takes clips of exactly 16 frames of 224x224.*num_frames 16"):
        build_backbone("mvit_v2_s", num_frames=8, crop_size=224)
    with pytest.raises(ValueError, match="s3d needs a crop of at least 224 pixels"):
        build_backbone("s3d", num_frames=16, crop_size=112)


def test_videomae_without_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "video_processing.models.videomae", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"video-classification\[transformers\]"):
        build_backbone("videomae_base", num_frames=2, crop_size=32)


def test_x3d_is_pytorchvideos_x3d_with_silu_for_its_swish():
    """The same weights give PyTorchVideo's X3D's logits: torch's SiLU computes its Swish's x * sigmoid(x)."""
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    ours = get_backbone("x3d_xs").build(4, 64).eval()
    reference = create_x3d(
        input_clip_length=4, input_crop_size=64, depth_factor=2.2, model_num_class=400, head_activation=None
    ).eval()
    reference.load_state_dict(ours.state_dict())
    assert any(isinstance(m, torch.nn.SiLU) for m in ours.modules())
    clips = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(clips), reference(clips))
