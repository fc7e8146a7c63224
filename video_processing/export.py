"""Export a trained checkpoint to ONNX or TorchScript, with a sidecar JSON and a parity check on a real clip.

    python -m video_processing.export CHECKPOINT --format onnx --out model.onnx [--video VIDEO] [--tolerance 1e-3]
    python -m video_processing.export CHECKPOINT --format torchscript --out model.pt

The exported network takes (batch, 3, num_frames, crop_size, crop_size) float clips that went through the eval
preset, with any batch size, and returns (batch, classes) logits. Beside it, `model.onnx.json` holds the classes,
clip duration, frames, crop, short side, mean and std (see `exported.py`). The command then decodes clips of VIDEO
(without one: of a self-made video) through the eval preset, runs them through the checkpoint and through the
exported file, and prints the largest absolute logit difference and the top-1 agreement. The exit status is 1
when the difference exceeds --tolerance, 2 when the checkpoint, the video or a package is missing, when the
checkpoint holds more than this package's checkpoints do (see `checkpoints.py`; --trust-checkpoint loads it), or
when its backbone's export to that format is refused (`REFUSED`: why, and what to use instead).

ONNX export uses PyTorch's torch.export-based exporter (onnx and onnxscript) and the check runs onnxruntime:
`pip install 'video-classification[export]'`. TorchScript needs nothing more, but PyTorch has deprecated it
(use it for LibTorch/C++ runtimes that still load it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from video_processing.data.video import VideoError, decode_uniform_clips, write_video
from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP
from video_processing.inference.classifiers import Classifier, classifier_preset, load_classifier
from video_processing.models.exported import INSTALL_EXPORT, OnnxModel, Sidecar, import_onnxruntime, write_sidecar
from video_processing.synthetic import render_video

FORMATS = ("onnx", "torchscript")
# (backbone, format) pairs refused before exporting: why, and what to use instead. Every other backbone's export is
# checked by tests/test_export.py (some at smaller inputs than their weights'); docs/benchmarks.md has the figures.
REFUSED = {
    ("mvit_v2_s", "onnx"): (
        "ONNX export of mvit_v2_s is not offered: torch.onnx takes about 2 minutes and 4.5 GB of memory for it on "
        "2 CPU cores (its input is fixed at 16 x 224 x 224), more than this package's tests can spend on each "
        "change, so a file it wrote would go unchecked. Use --format torchscript (checked: the same logits)"
    ),
    **{
        (name, "torchscript"): (
            f"TorchScript export of {name} is not offered: PyTorchVideo's X3D computes its Swish activations with a "
            "Python autograd function (SwishFunction), which a TorchScript file cannot hold. Use --format onnx "
            "(checked: the same logits within 1e-3)"
        )
        for name in ("x3d_xs", "x3d_s", "x3d_m")
    },
}
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
        with warnings.catch_warnings():  # deprecated in PyTorch, still what LibTorch loads; said in the docstring
            warnings.simplefilter("ignore", FutureWarning)
            # check_trace reruns the model to compare: the parity check below does that on real clips
            torch.jit.trace(network, example, check_trace=False).save(str(out))


def load_exported_model(fmt: str, path: Path, sidecar: Sidecar) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported file as a function from clips to logits, run the way a deployment runs it."""
    if fmt == "onnx":
        return OnnxModel(path, sidecar)
    with warnings.catch_warnings():  # deprecated, see `export_model`
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def parity_clips(classifier: Classifier, video: Path | None) -> tuple[torch.Tensor, str]:
    """Up to PARITY_CLIPS clips of `video` (or of a self-made 3-clip video) through the eval preset, and a name."""
    settings, num_frames = classifier.clips, classifier.module.hparams.num_frames
    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            # half a clip more than 3: a video of exactly 3 clips can end a frame short of the third
            fps, seconds = 25, 3.5 * settings.clip_duration
            frames = render_video("spinning", np.random.default_rng(0), 128, 128, round(seconds * fps), fps)
            video_path = Path(tmp) / "self_made.mp4"
            write_video(video_path, frames, fps)
        else:
            video_path = video
        clips = decode_uniform_clips(video_path, settings.clip_duration, num_frames)[:PARITY_CLIPS]
    transform = classifier_preset(classifier)
    return torch.stack([transform(clip) for clip in clips]), str(video or "a self-made video")


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a .ckpt file written by training")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the exported file (model.onnx, model.pt)")
    parser.add_argument("--video", type=Path, help="a video for the parity check (default: a self-made one)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest absolute logit difference allowed")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # exported on the CPU (the file runs anywhere), uncompiled: the trace follows the module, not a compiled call
        classifier = load_classifier(args.checkpoint, "cpu", trust=args.trust_checkpoint)
    except Exception as e:  # a missing, truncated or foreign file: one line, as predict says it
        print(f"error: cannot load checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    if refusal := REFUSED.get((classifier.module.hparams.get("backbone", "resnet"), args.format)):
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        if args.format == "onnx":
            import_onnxruntime()  # before the export's minutes: the parity check needs it
        clips, clips_from = parity_clips(classifier, args.video)
        sidecar = sidecar_for(classifier, args.format)
        network = classifier.module.model
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout
            export_model(network, args.format, args.out, clips[:1].expand(2, -1, -1, -1, -1).contiguous())
        sidecar_file = write_sidecar(args.out, sidecar)
        parity = check_parity(network, load_exported_model(args.format, args.out, sidecar), clips)
    except (ModuleNotFoundError, VideoError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ok = parity.max_abs_diff <= args.tolerance
    print(f"exported {args.out} ({args.format}) and {sidecar_file}")
    print(
        f"parity on {parity.num_clips} clips of {clips_from}: max |logit difference| {parity.max_abs_diff:.2e} "
        f"(tolerance {args.tolerance:.0e}), top-1 agreement {parity.top1_agreement:.0%}: " + ("ok" if ok else "FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
