"""Export a trained checkpoint to ONNX or TorchScript, with a sidecar JSON and a parity check on a real clip.

    python -m video_processing.export CHECKPOINT --format onnx --out model.onnx [--video VIDEO] [--tolerance 1e-3]
    python -m video_processing.export CHECKPOINT --format torchscript --out model.pt

The exported network takes (batch, 3, num_frames, crop_size, crop_size) float clips that went through the eval
preset, with any batch size, and returns (batch, classes) logits. Beside it, `model.onnx.json` holds the classes,
clip duration, frames, crop, short side, mean and std (see `exported.py`). The command then decodes clips of VIDEO
(without one: of a self-made video) through the eval preset, runs them through the checkpoint and through the
exported file, and prints the largest absolute logit difference and the top-1 agreement. The exit status is 1
when the difference exceeds --tolerance, 2 when the checkpoint, the video or a package is missing, when the
checkpoint holds more than this package's checkpoints do (see `checkpoints.py`; --trust-checkpoint loads it).

ONNX export uses PyTorch's torch.export-based exporter (onnx and onnxscript) and the check runs onnxruntime:
`pip install 'video-classification[export]'`. TorchScript needs nothing more, but PyTorch has deprecated it
(use it for LibTorch/C++ runtimes that still load it).

torch and Lightning are imported once the arguments are read: --help and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP
from video_processing.synthetic import render_video

FORMATS = ("onnx", "torchscript")


def self_made_video(folder: Path, clip_duration: float) -> Path:
    """A self-made video in `folder` for the parity check when no --video is given: 3 whole clips of
    `clip_duration` (half a clip more than 3: a video of exactly 3 clips can end a frame short of the third)."""
    from video_processing.data.video import write_video  # here, not at the top: --help answers without torch

    fps, seconds = 25, 3.5 * clip_duration
    path = folder / "self_made.mp4"
    write_video(path, render_video("spinning", np.random.default_rng(0), 128, 128, round(seconds * fps), fps), fps)
    return path


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
    # only now: --help and argument errors answer without loading torch and Lightning
    from video_processing.data.video import VideoError
    from video_processing.inference import exporting
    from video_processing.inference.classifiers import load_classifier
    from video_processing.models.exported import import_onnxruntime, write_sidecar

    try:
        # exported on the CPU (the file runs anywhere), uncompiled: the trace follows the module, not a compiled call
        classifier = load_classifier(args.checkpoint, "cpu", trust=args.trust_checkpoint)
    except Exception as e:  # a missing, truncated or foreign file: one line, as predict says it
        print(f"error: cannot load checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    try:
        if args.format == "onnx":
            import_onnxruntime()  # before the export's minutes: the parity check needs it
        with tempfile.TemporaryDirectory() as tmp:
            video = args.video or self_made_video(Path(tmp), classifier.clips.clip_duration)
            clips = exporting.parity_clips(classifier, video)
        sidecar = exporting.sidecar_for(classifier, args.format)
        network = classifier.module.model
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout
            exporting.export_model(network, args.format, args.out, clips[:1].expand(2, -1, -1, -1, -1).contiguous())
        sidecar_file = write_sidecar(args.out, sidecar)
        parity = exporting.check_parity(network, exporting.load_exported_model(args.format, args.out, sidecar), clips)
    except (ModuleNotFoundError, VideoError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ok = parity.max_abs_diff <= args.tolerance
    clips_from = args.video or "a self-made video"
    print(f"exported {args.out} ({args.format}) and {sidecar_file}")
    print(
        f"parity on {parity.num_clips} clips of {clips_from}: max |logit difference| {parity.max_abs_diff:.2e} "
        f"(tolerance {args.tolerance:.0e}), top-1 agreement {parity.top1_agreement:.0%}: " + ("ok" if ok else "FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
