"""Classify video files with a trained checkpoint: the top-k classes of each whole video, or labels over time.

    python -m video_processing.predict CHECKPOINT VIDEO [VIDEO ...] [--top-k 5] [--json]
    python -m video_processing.predict x3d_xs VIDEO ...     # a backbone's Kinetics-400 weights and names
    python -m video_processing.predict model.onnx VIDEO ... # a model written by video_processing.export
    python -m video_processing.predict CHECKPOINT VIDEO --segments [--window S] [--stride S] [--smooth K]
    python -m video_processing.predict CHECKPOINT VIDEO --segments --render annotated.mp4
    ffmpeg -i rtsp://camera/stream -f mpegts - | python -m video_processing.predict CHECKPOINT - --segments

Each video is cut into back-to-back clips from its start time (as validation cuts them), each clip goes through
the eval preset, and the clips' logits are averaged: the per-video prediction that val_video_acc_top1 measures.
The video is decoded once, in order, one clip at a time (in a background thread, while the model runs on the
clip before), so memory holds a few clips' frames however long it is.
The clip duration, frames, crop and normalization come from the checkpoint, so they match training. A file that
cannot be read gets a one-line error naming it; the other files are still classified; the exit status is then 1.

--segments decodes each source the same way, with windows of --window every --stride, and prints each window's
top-1 label as soon as its frames have arrived, and each segment (a run of windows of one label) as soon as it
closes. A source is a file, a URL (rtsp://, http://), a camera (/dev/video0 with --input-format v4l2) or -
(standard input). A URL or camera that sends nothing for --timeout-s ends with an error and the segments so
far; Ctrl-C ends any source at once, cleanly: the open segment is printed, an annotated copy is closed as a
playable file, and the exit status is 130, as for whole files. A timestamp reset (a restarted camera) starts a
new run of windows. With --realtime (the default for URLs and cameras), decoding runs ahead of the model and
windows the model has no time for are dropped, and counted, so labels stay current.

--render OUT.mp4 also writes an annotated copy of the source: every frame, at the input's frame rate, with the
label of its window and its probability, over a timeline of the segments so far, and the input's audio when it
is a file that has some. It is written as the windows are labelled, so a live source is written as it plays.

A checkpoint is loaded as data (see `checkpoints.py`): one that holds more than this package's checkpoints do
is refused, unless --trust-checkpoint.

torch and Lightning are imported once the arguments are read: --help and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP

# How long a URL or a camera may send nothing (to open, then between reads) before the command gives up on it.
DEFAULT_TIMEOUT_S = 10.0


def parser() -> argparse.ArgumentParser:
    """The command line's options (the app reads its defaults from here too)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "checkpoint",
        help="a .ckpt file written by training, an .onnx file written by export, or the name of a backbone of "
        "video_processing/models/backbones.py (x3d_xs, ...) for its Kinetics-400 weights",
    )
    parser.add_argument(
        "videos", nargs="+", help="video files (anything PyAV decodes); with --segments also URLs, devices, -"
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes shown per video")
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON list (with --segments: one object a line)")
    output.add_argument("--csv", action="store_true", help="CSV rows (with --segments only)")
    segments = parser.add_argument_group("labels over time")
    segments.add_argument("--segments", action="store_true", help="a label per window, then merged segments")
    segments.add_argument("--window", type=float, help="window length in seconds (default: the clip duration)")
    segments.add_argument("--stride", type=float, help="seconds between window starts (default: the window)")
    segments.add_argument("--smooth", type=int, default=1, help="average probabilities over the last K windows")
    segments.add_argument("--input-format", help="FFmpeg demuxer of the source: v4l2 for a camera, mpegts, ...")
    segments.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds a URL or camera may send nothing before it is given up (default: %(default)s)",
    )
    segments.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        help="drop windows the model has no time for (default: on for URLs and cameras, off for files and -)",
    )
    segments.add_argument(
        "--render", type=Path, metavar="OUT", help="write an annotated copy of the (one) source to OUT (.mp4, .mkv)"
    )
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.csv and not args.segments:
        parser.error("--csv needs --segments")
    if args.smooth < 1 or any(value is not None and value <= 0 for value in (args.window, args.stride, args.timeout_s)):
        parser.error("--window, --stride and --timeout-s must be positive and --smooth at least 1")
    if args.render is not None and (not args.segments or len(args.videos) != 1):
        parser.error("--render needs --segments and one source")
    if args.render is not None and not args.render.parent.is_dir():
        parser.error(f"--render {args.render}: no folder {args.render.parent}")


def main(argv: list[str] | None = None) -> int:
    command_line = parser()
    args = command_line.parse_args(argv)
    _check(command_line, args)
    # only now: --help and argument errors answer without loading torch and Lightning
    from video_processing.data.video import VideoError
    from video_processing.inference.predictions import (
        SegmentWriter,
        load_for_command,
        predict_files,
        predict_segments,
    )
    from video_processing.inference.render import AnnotatedVideo

    classifier = load_for_command(args.checkpoint, args.trust_checkpoint)
    if classifier is None:
        return 2
    if not args.segments:
        return predict_files(classifier, args)
    writer = SegmentWriter("json" if args.json else "csv" if args.csv else "text")
    ok = True
    try:
        annotated = AnnotatedVideo(args.render, classifier.class_names) if args.render is not None else None
    except VideoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        for source in args.videos:
            ok = predict_segments(classifier, source, args, writer, annotated) and ok
    except KeyboardInterrupt:  # the segments so far are printed and the annotated copy closed: stop cleanly
        print("interrupted: stopped reading", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
