"""export: ONNX and TorchScript files with a dynamic batch, their sidecar, the parity check, predict on ONNX."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import SMALL_DATA_KWARGS, fit_one_step_and_save

from video_processing import export
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import ClipSettings
from video_processing.inference import exporting
from video_processing.inference.classifiers import load_classifier
from video_processing.kinetics_module import KineticsDataModule
from video_processing.models.backbones import build_backbone
from video_processing.models.exported import OnnxModel, Sidecar, read_sidecar, sidecar_path
from video_processing.predict import main as predict


@pytest.fixture(scope="module")
def checkpoint(small_dataset, tmp_path_factory) -> Path:
    """A thin ResNet after one training step on the small self-made set, saved with the data settings."""
    root = tmp_path_factory.mktemp("export")
    data = KineticsDataModule(str(small_dataset), batch_size=6, num_workers=0, **SMALL_DATA_KWARGS)
    data.setup("fit")
    module = VideoClassificationLightningModule(
        num_classes=data.num_classes, class_names=data.classes, stem_dim_out=8, num_frames=4, crop_size=48
    )
    return fit_one_step_and_save(module, data, root, limit_val_batches=0)


@pytest.fixture(scope="module")
def onnx_file(checkpoint) -> Path:
    out = checkpoint.parent / "onnx" / "model.onnx"
    assert export.main([str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    return out


def _parity_line(capsys, clips_from: str, clips: int = 3) -> str:
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"parity on {clips} clips of {clips_from}: max |logit difference| ")
    return lines[-1]


@pytest.mark.parametrize("clip_duration", [1.0, 1.5, 1.0667, 1.6, 2.1333])  # the configs' clip durations
def test_the_self_made_parity_video_gives_3_clips(checkpoint, clip_duration, tmp_path):
    classifier = load_classifier(checkpoint)
    classifier.clips = replace(classifier.clips, clip_duration=clip_duration)
    clips = exporting.parity_clips(classifier, export.self_made_video(tmp_path, clip_duration))
    assert clips.shape[:3] == (3, 3, 4)


def test_sidecar_holds_what_inference_needs(onnx_file, small_dataset):
    sidecar = read_sidecar(onnx_file)
    assert sidecar_path(onnx_file).name == "model.onnx.json"
    assert sidecar.format == "onnx" and sidecar.classes == sorted(p.name for p in (small_dataset / "train").iterdir())
    clips = sidecar.clips
    assert (clips.clip_duration, clips.num_frames, clips.crop_size, clips.min_short_side) == (1.0, 4, 48, 56)
    assert clips.mean == (0.45,) * 3 and clips.std == (0.225,) * 3


def test_onnx_takes_any_batch_and_matches_the_checkpoint(onnx_file, checkpoint):
    module = VideoClassificationLightningModule.load_from_checkpoint(checkpoint, weights_only=True).eval()
    model = OnnxModel(onnx_file, read_sidecar(onnx_file))
    for batch in (1, 5):
        clips = torch.randn(batch, 3, 4, 48, 48)
        with torch.no_grad():
            assert torch.allclose(model(clips), module(clips), atol=1e-4)


def test_export_prints_parity_on_a_real_clip(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert export.main([str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    line = _parity_line(capsys, "a self-made video")
    assert line.endswith("top-1 agreement 100%: ok")
    assert float(re.search(r"difference\| (\S+)", line).group(1)) <= 1e-3
    assert read_sidecar(out).format == "torchscript"


def test_export_fails_past_the_tolerance(checkpoint, tmp_path, capsys, monkeypatch, small_dataset):
    exported = exporting.load_exported_model
    monkeypatch.setattr(exporting, "load_exported_model", lambda *a: lambda x: exported(*a)(x) + 0.01)
    video = next((small_dataset / "val").rglob("*.mp4"))  # 2-3 s: 2 clips
    out = tmp_path / "m.pt"
    assert export.main([str(checkpoint), "--format", "torchscript", "--out", str(out), "--video", str(video)]) == 1
    assert _parity_line(capsys, str(video), clips=2).endswith("FAILED")


def test_predict_on_the_onnx_file_gives_the_checkpoints_top_k(onnx_file, checkpoint, small_dataset, capsys):
    videos = [str(p) for p in sorted((small_dataset / "val").rglob("*.mp4"))[:2]]
    assert predict([str(checkpoint), *videos, "--json", "--top-k", "3"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert predict([str(onnx_file), *videos, "--json", "--top-k", "3"]) == 0
    actual = json.loads(capsys.readouterr().out)
    for want, got in zip(expected, actual, strict=True):
        assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]]
        assert [t["probability"] for t in got["top"]] == pytest.approx(
            [t["probability"] for t in want["top"]], abs=1e-5
        )


def test_without_onnxruntime_the_error_names_the_extra(onnx_file, checkpoint, small_dataset, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    video = str(next((small_dataset / "val").rglob("*.mp4")))
    assert predict([str(onnx_file), video]) == 2
    assert "video-classification[export]" in capsys.readouterr().err
    assert export.main([str(checkpoint), "--format", "onnx", "--out", str(onnx_file.parent / "again.onnx")]) == 2
    assert "video-classification[export]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, num_frames, crop_size",
    [
        ("slowfast_r50", 8, 32),
        ("videomae_base", 2, 32),
        ("swin3d_t", 4, 32),
        ("s3d", 16, 224),
        ("x3d_xs", 2, 32),
        ("mvit_v2_s", 16, 224),
    ],
)
def test_the_backbones_export_to_onnx_within_the_tolerance(name, num_frames, crop_size, tmp_path):
    """SlowFast samples its slow pathway and VideoMAE permutes its input inside the model; Swin-T's shifted windows,
    S3D's separable convolutions, X3D's Swish and MViT's pooled attention export as they are: the exported file takes
    the one (batch, 3, T, H, W) clip tensor, any batch, and gives the module's logits.

    Smaller inputs than the weights' (the same layers; full-size figures in docs/benchmarks.md): at 4 x 32 Swin-T's
    first stage pads its 8 x 8 tokens to 7 x 7 windows and shifts every other block's by 3, as at 32 x 224; S3D
    takes 224 px crops only, and 16 frames instead of 64. VideoMAE with one of its 12 layers. MViTv2-S at the only
    input it takes (about 2 minutes and 4.5 GB on 2 CPU cores)."""
    torch.manual_seed(0)
    options = {"num_hidden_layers": 1} if name == "videomae_base" else {}
    model = build_backbone(name, 3, num_frames=num_frames, crop_size=crop_size, **options).eval()
    out = tmp_path / f"{name}.onnx"
    exporting.export_model(model, "onnx", out, torch.randn(2, 3, num_frames, crop_size, crop_size))
    clips = ClipSettings(1.0, num_frames, crop_size, crop_size, crop_size, 0.0, (0.45,) * 3, (0.225,) * 3)
    sidecar = Sidecar("onnx", ["a", "b", "c"], clips)
    parity = exporting.check_parity(model, OnnxModel(out, sidecar), torch.randn(3, 3, num_frames, crop_size, crop_size))
    assert parity.num_clips == 3 and parity.max_abs_diff <= 1e-3 and parity.top1_agreement == 1.0


def _untrained_checkpoint(path: Path, backbone: str, num_frames: int, crop_size: int) -> Path:
    """`backbone` for 3 classes with random weights, saved as training saves it."""
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    module = VideoClassificationLightningModule(3, backbone=backbone, num_frames=num_frames, crop_size=crop_size)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def mvit_checkpoint(tmp_path_factory) -> Path:
    return _untrained_checkpoint(tmp_path_factory.mktemp("mvit") / "mvit.ckpt", "mvit_v2_s", 16, 224)


def test_x3d_exports_to_torchscript_with_the_same_logits(tmp_path):
    """X3D's Swish is torch's SiLU, which a TorchScript file holds (PyTorchVideo's own Swish it cannot): `export` on
    a checkpoint writes the file and its parity check passes."""
    checkpoint = _untrained_checkpoint(tmp_path / "x3d.ckpt", "x3d_xs", 4, 64)
    out = tmp_path / "x3d.pt"
    assert export.main([str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file() and read_sidecar(out).format == "torchscript"


def test_mvit_exports_to_torchscript_with_the_same_logits(mvit_checkpoint, tmp_path):
    """Traced on 2 clips at the only input MViTv2-S takes, the file takes 1 clip and gives the module's logits."""
    network = load_classifier(mvit_checkpoint).module.model
    out = tmp_path / "mvit.pt"
    torch.manual_seed(0)
    exporting.export_model(network, "torchscript", out, torch.randn(2, 3, 16, 224, 224))
    parity = exporting.check_parity(
        network, exporting.load_exported_model("torchscript", out, None), torch.randn(1, 3, 16, 224, 224)
    )
    assert parity.num_clips == 1 and parity.max_abs_diff <= 1e-5
