"""Exporting a trained classifier's network to ONNX or TorchScript and checking the file against the checkpoint.

The core of `python -m video_processing.export` (see its help): the exported network takes eval-preset clips with
any batch size and returns logits; the parity check runs a video's clips through both and compares the logits.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from video_processing.data.video import decode_uniform_clips
from video_processing.inference.classifiers import Classifier, classifier_preset
from video_processing.models.exported import INSTALL_EXPORT, OnnxModel, Sidecar

# Clips of the parity check: at most this many of the video, so a long video checks in seconds.
PARITY_CLIPS = 4


@dataclass(frozen=True)
class Parity:
    """How far the exported model's logits are from the checkpoint's on the same clips."""

    num_clips: int
    max_abs_diff: float
    top1_agreement: float  # fraction of clips with the same top-1 class


def sidecar_for(classifier: Classifier, fmt: str) -> Sidecar:
    """What inference with the exported file needs, from the checkpoint's settings."""
    return Sidecar(format=fmt, classes=list(classifier.class_names), clips=classifier.clips)


def export_model(network: torch.nn.Module, fmt: str, out: Path, example: torch.Tensor) -> None:
    """Write `network` (eval mode) to `out` with a dynamic batch axis; `example` is a batch of 2 clips.

    Two clips, not one: torch.export specializes a dimension of size 1 into a constant.
    """
    if fmt == "onnx":
        for package in ("onnx", "onnxscript"):
            if importlib.util.find_spec(package) is None:
                raise ModuleNotFoundError(f"ONNX export needs {package}: {INSTALL_EXPORT}")
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            network,
            (example,),
            str(out),
            dynamo=True,
            input_names=["video"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=False,  # one file: the largest backbone here is far below protobuf's 2 GB
        )
    else:
        with warnings.catch_warnings():  # deprecated in PyTorch, still what LibTorch loads; said in export's help
            warnings.simplefilter("ignore", FutureWarning)
            # check_trace reruns the model to compare: the parity check does that on real clips
            torch.jit.trace(network, example, check_trace=False).save(str(out))


def load_exported_model(fmt: str, path: Path, sidecar: Sidecar) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported file as a function from clips to logits, run the way a deployment runs it."""
    if fmt == "onnx":
        return OnnxModel(path, sidecar)
    with warnings.catch_warnings():  # deprecated, see `export_model`
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def parity_clips(classifier: Classifier, video: Path) -> torch.Tensor:
    """Up to PARITY_CLIPS back-to-back clips of `video` through the eval preset: (N, C, T, H, W)."""
    settings, num_frames = classifier.clips, classifier.module.hparams.num_frames
    clips = decode_uniform_clips(video, settings.clip_duration, num_frames)[:PARITY_CLIPS]
    transform = classifier_preset(classifier)
    return torch.stack([transform(clip) for clip in clips])


@torch.inference_mode()
def check_parity(
    reference: Callable[[torch.Tensor], torch.Tensor],
    exported: Callable[[torch.Tensor], torch.Tensor],
    clips: torch.Tensor,
) -> Parity:
    """Run both on the same clips (one batch) and compare their logits."""
    expected, actual = reference(clips).float(), exported(clips).float()
    agreement = (expected.argmax(1) == actual.argmax(1)).float().mean().item()
    return Parity(len(clips), (expected - actual).abs().max().item(), agreement)
