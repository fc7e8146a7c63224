"""Video networks chosen by name: builder, the input they expect, and where their pretrained weights live.

    build_backbone("x3d_xs", num_classes=10, num_frames=4, crop_size=160, pretrained=True)

The registry `BACKBONES` is the one place that says what a network is: "resnet" is the from-scratch Kinetics
ResNet (`make_kinetics_resnet`), the others are Kinetics-400 pretrained networks: 3D CNNs (slow_r50, X3D,
R(2+1)D, R3D, S3D, SlowFast) and video transformers (MViTv2-S, Video Swin-T, VideoMAE ViT-B). Every one takes
one float clip (B, 3, T, H, W) and returns logits. Weights come from PyTorchVideo's model zoo, torchvision and
Hugging Face (a safetensors file, by URL) into torch.hub's download cache ($TORCH_HOME/hub/checkpoints), so each
file is downloaded once (`downloads.fetch`: a read timeout, retries, resuming a partial file). A model built for
`num_classes` other than 400 keeps the pretrained layers and gets a new, randomly initialised final projection:
the head that fine-tuning trains.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torchvision.models import video as tv_video

from video_processing.data.downloads import fetch, redact, sha256_of
from video_processing.data.transforms import KINETICS_MEAN, KINETICS_STD
from video_processing.models.architectures import S3D, SLOWFAST_ALPHA, SlowFast
from video_processing.models.quiet import importing_pytorchvideo

with importing_pytorchvideo():
    from pytorchvideo.models.resnet import create_resnet
    from pytorchvideo.models.slowfast import create_slowfast
    from pytorchvideo.models.x3d import create_x3d

# Spatial downsampling of PyTorchVideo's ResNet and X3D: stem (2) and the strided stages (16).
SPATIAL_STRIDE = 32
KINETICS_CLASSES = 400

ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
# The final projection of PyTorchVideo's ResNet and X3D: blocks are the stem, the stages, then the head.
PYTORCHVIDEO_HEAD = "blocks.5.proj"

# ImageNet's, which VideoMAE was trained with (its preprocessor_config.json).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VIDEOMAE_URL = "https://huggingface.co/MCG-NJU/videomae-base-finetuned-kinetics/resolve/main/model.safetensors"
INSTALL_TRANSFORMERS = "pip install 'video-classification[transformers]'"


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be downloaded or do not fit the model."""


@dataclass(frozen=True)
class Backbone:
    """A network and the input it expects: the input its pretrained weights were trained on, if it has any.

    `build(num_frames, crop_size, **options)` returns the 400-class model for that input; `options` names the
    extra size arguments the builder takes (the module's model_depth and stem_dim_out, for "resnet"). `head` is
    the dotted name of its final projection (an nn.Linear). `clip_duration_s` is the time the `num_frames`
    frames span. `weights_url` is where its Kinetics-400 weights live (None: it has none). `fixed_input`: the
    network takes exactly (num_frames, crop_size) (MViT's position tables are sized for it); `min_crop_size` is the
    smallest crop it takes (most downsample by 32; S3D pools 7x7 after that). `blocks` are the
    class names of the layers that activation checkpointing recomputes (the transformers' blocks; empty: not offered).
    `top1` is the published Kinetics-400 top-1 accuracy (%) of its weights, each under its own protocol (views per
    video differ), and `top1_source` where it is published.
    """

    name: str
    build: Callable[..., nn.Module] = field(repr=False)  # a function: its address says nothing
    head: str
    num_frames: int
    crop_size: int
    short_side: int
    clip_duration_s: float
    weights_url: str | None
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    options: tuple[str, ...] = ()
    fixed_input: bool = False
    min_crop_size: int = SPATIAL_STRIDE
    blocks: tuple[str, ...] = ()
    top1: float | None = None
    top1_source: str = ""


# PyTorchVideo's docs/source/model_zoo.md, 3 x 10 views per video.
PYTORCHVIDEO_ZOO = "PyTorchVideo model zoo"


def _resnet(num_frames: int, crop_size: int, model_depth: int = 50, stem_dim_out: int = 64) -> nn.Module:
    # The from-scratch Kinetics ResNet ("slow" pathway, temporal stem kernel 3), pooled over exactly the input.
    # Every width scales with stem_dim_out: 64 is the Kinetics model; 8 a thin variant that trains on a CPU.
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    return create_resnet(
        input_channel=3,
        model_depth=model_depth,
        model_num_class=KINETICS_CLASSES,
        stem_dim_out=stem_dim_out,
        norm=nn.BatchNorm3d,
        activation=nn.ReLU,
        head_pool_kernel_size=(num_frames, side, side),
    )


def _slow_r50(num_frames: int, crop_size: int) -> nn.Module:
    # The zoo's slow_r50 (create_resnet defaults, temporal stem kernel 1), pooled over exactly the input.
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    return create_resnet(
        model_depth=50,
        model_num_class=KINETICS_CLASSES,
        stem_conv_kernel_size=(1, 7, 7),
        head_pool_kernel_size=(num_frames, side, side),
    )


def _x3d(depth_factor: float) -> Callable[[int, int], nn.Module]:
    def build(num_frames: int, crop_size: int) -> nn.Module:
        # head_activation None: the zoo's softmax would turn logits into probabilities inside the model. inner_act:
        # torch's SiLU is the x * sigmoid(x) of PyTorchVideo's default Swish, which computes it in a Python autograd
        # function that a TorchScript file cannot hold; no weights, so the zoo's checkpoints load as they are.
        return create_x3d(
            input_clip_length=num_frames,
            input_crop_size=crop_size,
            depth_factor=depth_factor,
            model_num_class=KINETICS_CLASSES,
            head_activation=None,
            inner_act=nn.SiLU,
        )

    return build


def _slowfast_r50(num_frames: int, crop_size: int) -> nn.Module:
    # pytorchvideo.models.hub.slowfast_r50's settings, pooled over exactly the input's two pathways.
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    net = create_slowfast(
        model_depth=50,
        model_num_class=KINETICS_CLASSES,
        slowfast_fusion_conv_kernel_size=(7, 1, 1),
        head_pool_kernel_sizes=((num_frames // SLOWFAST_ALPHA, side, side), (num_frames, side, side)),
    )
    return SlowFast(net, SLOWFAST_ALPHA)


def _videomae_base(num_frames: int, crop_size: int, num_hidden_layers: int = 12) -> nn.Module:
    try:
        from video_processing.models.videomae import videomae_base
    except ImportError as e:
        raise ModuleNotFoundError(f"videomae_base needs transformers ({e}): {INSTALL_TRANSFORMERS}") from None
    return videomae_base(num_frames, crop_size, KINETICS_CLASSES, num_hidden_layers)


def _torchvision(builder: Callable[..., nn.Module]) -> Callable[[int, int], nn.Module]:
    # These models pool adaptively (MViT excepted: fixed_input), so any frame count and crop fit.
    return lambda num_frames, crop_size: builder(weights=None, num_classes=KINETICS_CLASSES)


def _torchvision_entry(
    name: str, build: Callable[[int, int], nn.Module], weights: tv_video.Weights, head: str = "fc", **facts
) -> Backbone:
    """An entry whose input is what torchvision's weights metadata says: crop and short side from its
    transforms, mean and std, the frames and frame rate its accuracy was measured with (`_docs`), and that
    accuracy (`_metrics`). `facts` replaces any of them (and sets fixed_input, blocks)."""
    preset, docs = weights.transforms(), weights.meta["_docs"]
    num_frames = int(re.search(r"clip_len=(\d+)", docs).group(1))
    fps = float(re.search(r"frame_rate=([\d.]+)", docs).group(1))
    read = dict(
        num_frames=num_frames, crop_size=preset.crop_size[0], short_side=min(preset.resize_size),
        clip_duration_s=num_frames / fps, mean=tuple(preset.mean), std=tuple(preset.std),
        top1=weights.meta["_metrics"]["Kinetics-400"]["acc@1"], top1_source="torchvision weights `_metrics`",
    )  # fmt: skip
    if "num_frames" in facts and "clip_duration_s" not in facts:
        facts["clip_duration_s"] = facts["num_frames"] / fps
    return Backbone(name, build, head=head, weights_url=weights.url, **(read | facts))


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        # From scratch: 8 frames of 2-s clips, 224 px crops of a 256 px short side (the data module's defaults).
        Backbone("resnet", _resnet, PYTORCHVIDEO_HEAD, num_frames=8, crop_size=224, short_side=256,
                 clip_duration_s=2.0, weights_url=None, options=("model_depth", "stem_dim_out")),
        # The zoo samples 8 frames 8 apart at 30 fps; X3D-XS 4 frames 12 apart, -S 13 x 6, -M 16 x 5.
        Backbone("slow_r50", _slow_r50, PYTORCHVIDEO_HEAD, num_frames=8, crop_size=224, short_side=256,
                 clip_duration_s=64 / 30, weights_url=f"{ZOO}/SLOW_8x8_R50.pyth",
                 top1=74.58, top1_source=PYTORCHVIDEO_ZOO),
        Backbone("x3d_xs", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=4, crop_size=160, short_side=182,
                 clip_duration_s=48 / 30, weights_url=f"{ZOO}/X3D_XS.pyth", top1=69.12,
                 top1_source=PYTORCHVIDEO_ZOO),
        Backbone("x3d_s", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=13, crop_size=160, short_side=182,
                 clip_duration_s=78 / 30, weights_url=f"{ZOO}/X3D_S.pyth", top1=73.33,
                 top1_source=PYTORCHVIDEO_ZOO),
        Backbone("x3d_m", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=16, crop_size=224, short_side=256,
                 clip_duration_s=80 / 30, weights_url=f"{ZOO}/X3D_M.pyth", top1=75.94,
                 top1_source=PYTORCHVIDEO_ZOO),
        # SlowFast 8x8: 32 fast frames 2 apart at 30 fps, the slow pathway every 4th of them (made inside).
        Backbone("slowfast_r50", _slowfast_r50, "blocks.6.proj", num_frames=32, crop_size=224, short_side=256,
                 clip_duration_s=64 / 30, weights_url=f"{ZOO}/SLOWFAST_8x8_R50.pyth",
                 top1=76.94, top1_source=PYTORCHVIDEO_ZOO),
        # torchvision's: 16 consecutive frames at 15 fps, short side 128, crop 112 (their metadata).
        _torchvision_entry("r2plus1d_18", _torchvision(tv_video.r2plus1d_18),
                           tv_video.R2Plus1D_18_Weights.KINETICS400_V1),
        _torchvision_entry("r3d_18", _torchvision(tv_video.r3d_18), tv_video.R3D_18_Weights.KINETICS400_V1),
        # S3D's accuracy was measured on 128-frame (8.5 s) clips; 64 frames (4.3 s, its training clips) keep
        # more short videos usable.
        _torchvision_entry("s3d", lambda num_frames, crop_size: S3D(KINETICS_CLASSES),
                           tv_video.S3D_Weights.KINETICS400_V1, "classifier.1", num_frames=64, min_crop_size=224,
                           top1_source="torchvision weights `_metrics` (128-frame clips)"),
        _torchvision_entry("mvit_v2_s", _torchvision(tv_video.mvit_v2_s), tv_video.MViT_V2_S_Weights.KINETICS400_V1,
                           "head.1", fixed_input=True, blocks=("MultiscaleBlock",)),
        _torchvision_entry("swin3d_t", _torchvision(tv_video.swin3d_t), tv_video.Swin3D_T_Weights.KINETICS400_V1,
                           "head", blocks=("SwinTransformerBlock",)),
        # VideoMAE ViT-B fine-tuned on Kinetics-400: 16 frames 4 apart at 30 fps, 224 crops of a 224 short side.
        Backbone("videomae_base", _videomae_base, "classifier", num_frames=16, crop_size=224, short_side=224,
                 clip_duration_s=64 / 30, weights_url=VIDEOMAE_URL, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 options=("num_hidden_layers",), blocks=("VideoMAELayer",), top1=80.9,
                 top1_source="model card of MCG-NJU/videomae-base-finetuned-kinetics"),
    )
}  # fmt: skip


def get_backbone(name: str) -> Backbone:
    """The registry entry for `name`; raise ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def load_pretrained_state(name: str, weights_url: str | None = None) -> dict[str, torch.Tensor]:
    """The Kinetics-400 state dict of backbone `name`, downloaded once into torch.hub's cache.

    `weights_url` replaces the registry's address (a mirror: an internal server, a local copy); the file must
    be the same.
    """
    url = weights_url or get_backbone(name).weights_url
    if url is None:
        raise PretrainedWeightsError(
            f"{name} has no pretrained weights; pass pretrained=False, or choose one of "
            f"{sorted(n for n, b in BACKBONES.items() if b.weights_url)}"
        )
    try:
        cached = _cached_weights(name, url)
        if url.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(cached, device="cpu")
        checkpoint = torch.load(cached, map_location="cpu", weights_only=True)
    except OSError as e:  # DownloadError says stalled, cut short or refused, and names the URL
        raise PretrainedWeightsError(
            f"could not download the {name} weights: {e}. Without internet, copy the file to "
            f"{_cached_path(name, url)}, or train with pretrained=False."
        ) from None
    # PyTorchVideo's zoo files are training checkpoints: {"model_state": state_dict, ...}.
    return checkpoint.get("model_state", checkpoint)


def _cached_path(name: str, url: str) -> Path:
    """Where torch.hub's cache keeps the weights of `name` downloaded from `url`.

    Hugging Face names every model's file model.safetensors, so its cached copy is prefixed with the backbone's name.
    """
    file_name = Path(urllib.parse.urlparse(url).path).name
    if file_name == "model.safetensors":
        file_name = f"{name}-{file_name}"
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _cached_weights(name: str, url: str) -> Path:
    """The file at `url` in torch.hub's cache, downloaded there once (`downloads.fetch`: timeouts, retries, resume).

    A file name carrying a sha256 prefix (torchvision's: name-<hex>.pth) is checked against it, as torch.hub does.
    """
    cached = _cached_path(name, url)
    if cached.is_file():
        return cached
    download = fetch(url, cached.with_name(cached.name + ".download"))
    if (prefix := torch.hub.HASH_REGEX.search(cached.name)) and not sha256_of(download).startswith(prefix[1]):
        download.unlink()
        raise PretrainedWeightsError(
            f"{redact(url)}: the sha256 does not start with {prefix[1]}, as its name says: corrupt or changed at "
            "its source (deleted; rerun to download it again)"
        )
    return download.rename(cached)


def build_backbone(
    name: str,
    num_classes: int = KINETICS_CLASSES,
    *,
    num_frames: int,
    crop_size: int,
    pretrained: bool = False,
    weights_url: str | None = None,
    **options: int,
) -> nn.Module:
    """Backbone `name` for clips of (num_frames, crop_size, crop_size), with Kinetics weights if `pretrained`.

    For `num_classes` other than 400 the final projection is replaced by a new one. `options` are the entry's
    extra size arguments (`Backbone.options`); `weights_url` is a mirror of the weights (`load_pretrained_state`).
    Input: float (B, 3, num_frames, crop_size, crop_size) normalized with the entry's mean and std; output: logits.
    """
    backbone = get_backbone(name)
    if unknown := set(options) - set(backbone.options):
        raise ValueError(f"{name} takes no {sorted(unknown)}; its size options are {list(backbone.options)}")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: {name} needs 1 frame or more; pass --data.num_frames 8")
    if crop_size < backbone.min_crop_size:
        raise ValueError(
            f"crop_size={crop_size}: {name} needs a crop of at least {backbone.min_crop_size} pixels; pass "
            f"--data.crop_size {backbone.min_crop_size} or more (Kinetics: 224)"
        )
    if backbone.fixed_input and (num_frames, crop_size) != (backbone.num_frames, backbone.crop_size):
        raise ValueError(
            f"{name} takes clips of exactly {backbone.num_frames} frames of {backbone.crop_size}x{backbone.crop_size}, "
            f"got {num_frames} x {crop_size}: pass --data.num_frames {backbone.num_frames} --data.crop_size "
            f"{backbone.crop_size} (configs/finetune_{name}.yaml)"
        )
    model = backbone.build(num_frames, crop_size, **options)
    if pretrained:
        state = load_pretrained_state(name, weights_url)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise PretrainedWeightsError(f"the {name} weights do not fit the model: {e}") from None
    if num_classes != KINETICS_CLASSES:
        _replace(model, backbone.head, nn.Linear(model.get_submodule(backbone.head).in_features, num_classes))
    return model


def split_head(model: nn.Module, head: str) -> tuple[nn.Module, nn.Linear]:
    """Split `model` into (backbone, head): its final projection, replaced by Identity in the backbone.

    The projection is linear and the models average over space-time after it, so head(backbone(x)) equals
    model(x).
    """
    projection = model.get_submodule(head)
    _replace(model, head, nn.Identity())
    return model, projection


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


@cache
def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the class-index order of the pretrained weights (alphabetical)."""
    text = resources.files("video_processing.models").joinpath("kinetics400_classes.txt").read_text()
    return text.splitlines()
