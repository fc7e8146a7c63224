"""Classify video files with a trained checkpoint: the top-k classes of each whole video, or labels over time.

    python -m video_processing.predict CHECKPOINT VIDEO [VIDEO ...] [--top-k 5] [--json]
    python -m video_processing.predict x3d_xs VIDEO ...     # a backbone's Kinetics-400 weights and names
    python -m video_processing.predict model.onnx VIDEO ... # a model written by video_processing.export
    python -m video_processing.predict CHECKPOINT VIDEO --segments [--window S] [--stride S] [--smooth K]
    ffmpeg -i rtsp://camera/stream -f mpegts - | python -m video_processing.predict CHECKPOINT - --segments

Each video is cut into back-to-back clips from its start time (as validation cuts them), each clip goes through
the eval preset, and the clips' logits are averaged: the per-video prediction that val_video_acc_top1 measures.
The video is decoded once, in order, one clip at a time, so memory holds one clip's frames however long it is.
The clip duration, frames, crop and normalization come from the checkpoint, so they match training. A file that
cannot be read gets a one-line error naming it; the other files are still classified; the exit status is then 1.

--segments decodes each source the same way, with windows of --window every --stride, and prints each window's
top-1 label as soon as its frames have arrived, and each segment (a run of windows of one label) as soon as it
closes. A source is a file, a URL (rtsp://, http://), a camera (/dev/video0 with --input-format v4l2) or -
(standard input). A URL or camera that sends nothing for --timeout-s ends with an error and the segments so
far; Ctrl-C ends any source at once, also cleanly. A timestamp reset (a restarted camera) starts a new run of
windows. With --realtime (the default for URLs and cameras), decoding runs ahead of the model and windows the
model has no time for are dropped, and counted, so labels stay current.

A checkpoint is loaded as data (see `checkpoints.py`): one that holds more than this package's checkpoints do
is refused, unless --trust-checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from video_processing.data.handover import Handover
from video_processing.data.video import VideoError, open_video
from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP
from video_processing.inference.classifiers import (
    Classifier,
    classifier_preset,
    load_classifier,
    load_exported,
    pretrained_classifier,
)
from video_processing.inference.segments import Segment, SegmentMerger, WindowLabel, label_windows
from video_processing.inference.streams import StreamClip, open_stream, stream_clips
from video_processing.models.backbones import BACKBONES

# How long a URL or a camera may send nothing (to open, then between reads) before the command gives up on it.
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Prediction:
    """The top classes of one video, with probabilities, from the mean logits of its `num_clips` clips."""

    path: str
    num_clips: int
    top: list[tuple[str, float]]


@torch.inference_mode()
def predict_video(classifier: Classifier, path: str | Path, top_k: int = 5) -> Prediction:
    """Top-k classes of the video at `path`; raises VideoError naming the file when it cannot be read.

    Its clips are decoded in order, one at a time, and their logits summed as they arrive: memory holds one
    clip's frames whatever the video's length.
    """
    clip_s, num_frames = classifier.clips.clip_duration, classifier.module.hparams.num_frames
    total, count = 0.0, 0
    with open_video(path) as container:
        for _, logits in window_logits(classifier, stream_clips(container, path, clip_s, clip_s, num_frames)):
            total, count = total + logits, count + 1
    if count == 0:
        raise VideoError(path, f"too short: no clip of {clip_s:g} s holds num_frames={num_frames} frames")
    probabilities = (total / count).softmax(0)
    values, indices = probabilities.topk(min(top_k, len(probabilities)))
    top = [(classifier.class_names[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)]
    return Prediction(str(path), count, top)


@torch.inference_mode()
def window_logits(classifier: Classifier, clips: Iterable[StreamClip]) -> Iterator[tuple[StreamClip, torch.Tensor]]:
    """Each window with its float logits on the CPU, one forward pass per window as it arrives."""
    transform, device = classifier_preset(classifier), classifier.module.device
    for clip in clips:
        yield clip, classifier.module(transform(clip.frames).unsqueeze(0).to(device))[0].float().cpu()


def window_probabilities(
    classifier: Classifier, clips: Iterable[StreamClip]
) -> Iterator[tuple[float, float, torch.Tensor]]:
    """(start_s, end_s, class probabilities) of each window, one forward pass per window as it arrives."""
    for clip, logits in window_logits(classifier, clips):
        yield clip.start_s, clip.end_s, logits.softmax(0)


def format_prediction(prediction: Prediction) -> str:
    """Text block: the file, then one line per class with its probability."""
    lines = [f"{prediction.path} ({prediction.num_clips} clips)"]
    lines += [f"  {probability:7.2%}  {name}" for name, probability in prediction.top]
    return "\n".join(lines)


def prediction_record(prediction: Prediction) -> dict:
    """The prediction as JSON-ready data."""
    top = [{"class": name, "probability": probability} for name, probability in prediction.top]
    return {"path": prediction.path, "num_clips": prediction.num_clips, "top": top}


class SegmentWriter:
    """Prints windows and segments as they come, as text, JSON Lines or CSV, flushing every row."""

    FIELDS = ("source", "kind", "start_s", "end_s", "label", "probability", "num_windows")

    def __init__(self, style: str, stream=None):
        self.style, self.stream = style, stream or sys.stdout
        self.csv = csv.DictWriter(self.stream, self.FIELDS, lineterminator="\n") if style == "csv" else None
        if self.csv:
            self.csv.writeheader()

    def source(self, source: str) -> None:
        if self.style == "text":
            self._print(source)

    def window(self, source: str, window: WindowLabel) -> None:
        self._row(source, "window", window)

    def segment(self, source: str, segment: Segment) -> None:
        self._row(source, "segment", segment)

    def _row(self, source: str, kind: str, row: WindowLabel | Segment) -> None:
        if self.style == "text":
            times = f"{row.start_s:8.2f} - {row.end_s:8.2f} s  {row.probability:7.2%}  {row.label}"
            self._print(f"  segment {times}  ({row.num_windows} windows)" if kind == "segment" else f"  {times}")
            return
        record = {"source": source, "kind": kind, **asdict(row)}
        if self.csv:
            self.csv.writerow(record)
            self.stream.flush()
        else:
            self._print(json.dumps(record))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)  # a stream's reader sees each window at once


def is_live(source: str, input_format: str | None = None) -> bool:
    """A URL or a device: it plays on whether or not it is read. A file or a pipe waits for its reader."""
    return source != "-" and ("://" in source or input_format is not None) and not source.startswith("file:")


def _source_clips(source: str, args: argparse.Namespace, window_s: float, num_frames: int) -> Iterator[StreamClip]:
    with open_stream(source, args.input_format, args.timeout_s) as container:
        yield from stream_clips(container, source, window_s, args.stride or window_s, num_frames)


def predict_segments(classifier: Classifier, source: str, args: argparse.Namespace, writer: SegmentWriter) -> bool:
    """Print the windows and segments of one source as they close; False if it failed.

    Decoding runs in a background thread (`Handover`), dropping windows the model has no time for when
    `args.realtime` (None: for live sources). Ctrl-C propagates after the open segment is printed.
    """
    window_s = args.window or classifier.clips.clip_duration
    realtime = is_live(source, args.input_format) if args.realtime is None else args.realtime
    clips = Handover(_source_clips(source, args, window_s, classifier.module.hparams.num_frames), drop=realtime)
    merger = SegmentMerger()  # only the open segment is held: nothing grows with the stream
    writer.source(source)
    try:
        for window in label_windows(window_probabilities(classifier, clips), classifier.class_names, args.smooth):
            writer.window(source, window)
            if (closed := merger.add(window)) is not None:
                writer.segment(source, closed)
    except VideoError as e:
        print(f"error: {source}: {e.reason}", file=sys.stderr)
        return False
    finally:  # also on Ctrl-C and errors: the segment open so far, and what was dropped
        if (last := merger.close()) is not None:
            writer.segment(source, last)
        if clips.dropped:
            print(
                f"{source}: dropped {clips.dropped} windows: the model is slower than the source plays "
                "(--no-realtime keeps every window and falls behind)",
                file=sys.stderr,
            )
    return True


def predict_files(classifier: Classifier, args: argparse.Namespace) -> bool:
    """Print the top-k of each whole video; False if any failed."""
    results, failed = [], False
    for path in args.videos:
        try:
            prediction = predict_video(classifier, path, args.top_k)
        except Exception as e:  # VideoError names the file and why; anything else still names the file
            reason = e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"
            print(f"error: {path}: {reason}", file=sys.stderr)
            results.append({"path": str(path), "error": reason})
            failed = True
            continue
        results.append(prediction_record(prediction))
        if not args.json:
            print(format_prediction(prediction))
    if args.json:
        print(json.dumps(results, indent=2))
    return not failed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "checkpoint",
        help=f"a .ckpt file written by training, an .onnx file written by export, or a backbone name "
        f"({', '.join(BACKBONES)})",
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
    return parser


def _load(checkpoint: str, device: str, trust: bool) -> Classifier:
    # torch.hub announces a download on stdout: keep stdout for the results (JSON must parse).
    with contextlib.redirect_stdout(sys.stderr):
        if checkpoint in BACKBONES and not Path(checkpoint).exists():
            return pretrained_classifier(checkpoint, device)
        if Path(checkpoint).suffix == ".onnx":
            return load_exported(checkpoint)
        return load_classifier(checkpoint, device, trust=trust)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.csv and not args.segments:
        parser.error("--csv needs --segments")
    if args.smooth < 1 or any(value is not None and value <= 0 for value in (args.window, args.stride, args.timeout_s)):
        parser.error("--window, --stride and --timeout-s must be positive and --smooth at least 1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        classifier = _load(args.checkpoint, device, args.trust_checkpoint)
    except Exception as e:  # a missing, truncated or foreign file: one line, not a traceback
        print(f"error: cannot load checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    if not args.segments:
        return 0 if predict_files(classifier, args) else 1
    writer = SegmentWriter("json" if args.json else "csv" if args.csv else "text")
    ok = True
    try:
        for source in args.videos:
            ok = predict_segments(classifier, source, args, writer) and ok
    except KeyboardInterrupt:  # the segments so far are printed; stop cleanly
        print("interrupted: stopped reading", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
