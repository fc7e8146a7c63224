"""Classify video files with a trained checkpoint: the top-k classes of each whole video, or labels over time.

    python -m video_processing.predict CHECKPOINT VIDEO [VIDEO ...] [--top-k 5] [--json]
    python -m video_processing.predict x3d_xs VIDEO ...     # a backbone's Kinetics-400 weights and names
    python -m video_processing.predict model.onnx VIDEO ... # a model written by video_processing.export
    python -m video_processing.predict CHECKPOINT VIDEO --segments [--window S] [--stride S] [--smooth K]
    ffmpeg -i rtsp://camera/stream -f mpegts - | python -m video_processing.predict CHECKPOINT - --segments

Each video is cut into back-to-back clips (as validation cuts them), each clip goes through the eval preset,
and the clips' logits are averaged: the per-video prediction that val_video_acc_top1 measures. The clip
duration, frames, crop and normalization come from the checkpoint, so they match training. A file that cannot
be read gets a one-line error naming it; the other files are still classified; the exit status is then 1.

--segments decodes each source once, in order, holding one window's frames at a time, and prints each
window's top-1 label as soon as its frames have arrived, then the segments (runs of windows of one label).
A source is a file, a URL (rtsp://, http://), a camera (/dev/video0 with --input-format v4l2) or - (standard
input). Ctrl-C ends a stream cleanly: the segments so far are printed.
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

from video_processing.backbones import BACKBONES
from video_processing.checkpoints import TRUST_FLAG, TRUST_HELP
from video_processing.classifiers import (
    Classifier,
    classifier_preset,
    load_classifier,
    load_exported,
    pretrained_classifier,
)
from video_processing.segments import Segment, WindowLabel, label_windows, merge_segments
from video_processing.video import StreamClip, VideoError, decode_uniform_clips, open_stream, stream_clips

# Clips per forward pass: bounds memory on long videos.
CLIPS_PER_BATCH = 16


@dataclass
class Prediction:
    """The top classes of one video, with probabilities, from the mean logits of its `num_clips` clips."""

    path: str
    num_clips: int
    top: list[tuple[str, float]]


@torch.inference_mode()
def predict_video(classifier: Classifier, path: str | Path, top_k: int = 5) -> Prediction:
    """Top-k classes of the video at `path`; raises VideoError naming the file when it cannot be read."""
    clips = decode_uniform_clips(path, classifier.clips.clip_duration, classifier.module.hparams.num_frames)
    transform = classifier_preset(classifier)
    batches = [clips[i : i + CLIPS_PER_BATCH] for i in range(0, len(clips), CLIPS_PER_BATCH)]
    device = classifier.module.device
    logits = torch.cat([classifier.module(torch.stack([transform(c) for c in b]).to(device)) for b in batches])
    probabilities = logits.float().mean(0).softmax(0)
    values, indices = probabilities.topk(min(top_k, len(probabilities)))
    top = [(classifier.class_names[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)]
    return Prediction(str(path), len(clips), top)


@torch.inference_mode()
def window_probabilities(
    classifier: Classifier, clips: Iterable[StreamClip]
) -> Iterator[tuple[float, float, torch.Tensor]]:
    """(start_s, end_s, class probabilities) of each window, one forward pass per window as it arrives."""
    transform, device = classifier_preset(classifier), classifier.module.device
    for clip in clips:
        logits = classifier.module(transform(clip.frames).unsqueeze(0).to(device))
        yield clip.start_s, clip.end_s, logits[0].float().softmax(0).cpu()


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
    """Prints windows as they come and segments at the end, as text, JSON Lines or CSV, flushing every row."""

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

    def segments(self, source: str, segments: list[Segment]) -> None:
        if self.style == "text":
            self._print("  segments:")
        for segment in segments:
            self._row(source, "segment", segment)

    def _row(self, source: str, kind: str, row: WindowLabel | Segment) -> None:
        if self.style == "text":
            count = f"  ({row.num_windows} windows)" if isinstance(row, Segment) else ""
            self._print(f"  {row.start_s:8.2f} - {row.end_s:8.2f} s  {row.probability:7.2%}  {row.label}{count}")
            return
        record = {"source": source, "kind": kind, **asdict(row)}
        if self.csv:
            self.csv.writerow(record)
            self.stream.flush()
        else:
            self._print(json.dumps(record))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)  # a stream's reader sees each window at once


def predict_segments(classifier: Classifier, source: str, args: argparse.Namespace, writer: SegmentWriter) -> bool:
    """Print the windows and segments of one source; False if it failed. Ctrl-C propagates after the segments."""
    window_s = args.window or classifier.clips.clip_duration
    stride_s = args.stride or window_s
    windows: list[WindowLabel] = []  # labels only: a few numbers per window, not frames
    writer.source(source)
    try:
        with open_stream(source, args.input_format) as container:
            clips = stream_clips(container, source, window_s, stride_s, classifier.module.hparams.num_frames)
            for window in label_windows(window_probabilities(classifier, clips), classifier.class_names, args.smooth):
                windows.append(window)
                writer.window(source, window)
    except VideoError as e:
        print(f"error: {source}: {e.reason}", file=sys.stderr)
        return False
    finally:  # also on Ctrl-C and errors: the segments so far
        writer.segments(source, merge_segments(windows))
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
    if args.smooth < 1 or any(value is not None and value <= 0 for value in (args.window, args.stride)):
        parser.error("--window and --stride must be positive and --smooth at least 1")
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
