"""Predictions of a trained classifier: the top-k of whole videos, and labels over time of files and live sources.

The core of `python -m video_processing.predict` (see its help for the behaviour of each option), also used by the
app (`video_processing.app`) and the lessons. Whole videos are cut into back-to-back clips as validation cuts them
and the clips' logits averaged; labels over time come from windows. Both decode in order, one window at a time,
in a background thread (`Handover`) while the model runs on the window before, so memory holds a few windows'
frames however long the source plays.
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

from video_processing.data.downloads import redact
from video_processing.data.handover import Handover
from video_processing.data.video import VideoError, open_video
from video_processing.inference.classifiers import (
    Classifier,
    classifier_preset,
    load_classifier,
    load_exported,
    pretrained_classifier,
)
from video_processing.inference.render import AnnotatedVideo
from video_processing.inference.segments import Segment, SegmentMerger, WindowLabel, label_windows
from video_processing.inference.streams import StreamClip, open_stream, stream_clips
from video_processing.models.backbones import BACKBONES


@dataclass
class Prediction:
    """The top classes of one video, with probabilities, from the mean logits of its `num_clips` clips."""

    path: str
    num_clips: int
    top: list[tuple[str, float]]


@torch.inference_mode()
def predict_video(classifier: Classifier, path: str | Path, top_k: int = 5) -> Prediction:
    """Top-k classes of the video at `path`; raises VideoError naming the file when it cannot be read.

    Its clips are decoded in order, one at a time, in a background thread (`Handover`) while the model runs on the
    one before, and their logits summed as they arrive: memory holds at most three clips' frames (the one the model
    runs on, the one handed over, the one being decoded) whatever the video's length.
    """
    clip_s, num_frames = classifier.clips.clip_duration, classifier.module.hparams.num_frames
    total, count = 0.0, 0
    clips = Handover(_file_clips(path, clip_s, num_frames, classifier.clips.min_short_side), drop=False)
    for _, logits in window_logits(classifier, clips):
        total, count = total + logits, count + 1
    if count == 0:
        raise VideoError(path, f"too short: no clip of {clip_s:g} s holds num_frames={num_frames} frames")
    probabilities = (total / count).softmax(0)
    values, indices = probabilities.topk(min(top_k, len(probabilities)))
    top = [(classifier.class_names[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)]
    return Prediction(str(path), count, top)


def _file_clips(path: str | Path, clip_s: float, num_frames: int, short_side: int) -> Iterator[StreamClip]:
    """The back-to-back clips of a file, opened and closed where they are decoded (the hand-over's thread)."""
    with open_video(path) as container:
        yield from stream_clips(container, path, clip_s, clip_s, num_frames, short_side=short_side)


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


def printable(text: str) -> str:
    """`text` for a terminal: a password in a URL redacted, newlines and control characters (terminal escapes)
    written as Python escapes, so a class name or a file name cannot forge lines or move the cursor."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in redact(text))


def format_prediction(prediction: Prediction) -> str:
    """Text block: the file, then one line per class with its probability (both `printable`)."""
    lines = [f"{printable(prediction.path)} ({prediction.num_clips} clips)"]
    lines += [f"  {probability:7.2%}  {printable(name)}" for name, probability in prediction.top]
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
            self._print(printable(source))

    def window(self, source: str, window: WindowLabel) -> None:
        self._row(source, "window", window)

    def segment(self, source: str, segment: Segment) -> None:
        self._row(source, "segment", segment)

    def _row(self, source: str, kind: str, row: WindowLabel | Segment) -> None:
        if self.style == "text":
            times = f"{row.start_s:8.2f} - {row.end_s:8.2f} s  {row.probability:7.2%}  {printable(row.label)}"
            self._print(f"  segment {times}  ({row.num_windows} windows)" if kind == "segment" else f"  {times}")
            return
        record = {"source": redact(source), "kind": kind, **asdict(row)}
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


def _source_clips(
    source: str,
    args: argparse.Namespace,
    window_s: float,
    num_frames: int,
    annotated: AnnotatedVideo | None,
    short_side: int | None = None,
) -> Iterator[StreamClip]:
    with open_stream(source, args.input_format, args.timeout_s) as container:
        if annotated is not None:
            annotated.open(container, source)
        on_frame = annotated.add_frame if annotated is not None else None
        yield from stream_clips(
            container, source, window_s, args.stride or window_s, num_frames, on_frame, short_side=short_side
        )


def predict_segments(
    classifier: Classifier,
    source: str,
    args: argparse.Namespace,
    writer: SegmentWriter,
    annotated: AnnotatedVideo | None = None,
) -> bool:
    """Print the windows and segments of one source as they close; False if it failed.

    Decoding runs in a background thread (`Handover`), dropping windows the model has no time for when
    `args.realtime` (None: for live sources). Ctrl-C propagates after the open segment is printed. `annotated`
    (`--render`) gets every frame and each window's label as it comes, and is closed at the end.
    """
    window_s = args.window or classifier.clips.clip_duration
    realtime = is_live(source, args.input_format) if args.realtime is None else args.realtime
    num_frames = classifier.module.hparams.num_frames
    clips = Handover(
        _source_clips(source, args, window_s, num_frames, annotated, classifier.clips.min_short_side), drop=realtime
    )
    merger = SegmentMerger()  # only the open segment is held: nothing grows with the stream
    writer.source(source)
    try:
        for window in label_windows(window_probabilities(classifier, clips), classifier.class_names, args.smooth):
            if annotated is not None:  # the frames before this window are written by the time it is printed
                annotated.label(window)
            writer.window(source, window)
            if (closed := merger.add(window)) is not None:
                writer.segment(source, closed)
    except VideoError as e:
        print(f"error: {printable(source)}: {printable(e.reason)}", file=sys.stderr)
        return False
    finally:  # also on Ctrl-C and errors: the segment open so far, and what was dropped
        if (last := merger.close()) is not None:
            writer.segment(source, last)
        if annotated is not None:
            annotated.close()
        if clips.dropped:
            print(
                f"{printable(source)}: dropped {clips.dropped} windows: the model is slower than the source plays "
                "(--no-realtime keeps every window and falls behind)",
                file=sys.stderr,
            )
    return True


def predict_files(classifier: Classifier, args: argparse.Namespace) -> int:
    """Print the top-k of each whole video; the exit status: 0, 1 if any failed, 130 after Ctrl-C.

    Ctrl-C stops at once, and the files finished so far are still printed (with --json: as the list so far).
    """
    results, failed = [], False
    try:
        for path in args.videos:
            try:
                prediction = predict_video(classifier, path, args.top_k)
            except Exception as e:  # VideoError names the file and why; anything else still names the file
                reason = e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"
                print(f"error: {printable(path)}: {printable(reason)}", file=sys.stderr)
                results.append({"path": str(path), "error": reason})
                failed = True
                continue
            results.append(prediction_record(prediction))
            if not args.json:
                print(format_prediction(prediction))
    except KeyboardInterrupt:
        print(f"interrupted: {len(results)} of {len(args.videos)} files done", file=sys.stderr)
        return 130
    finally:
        if args.json:
            print(json.dumps(results, indent=2))
    return 1 if failed else 0


def load_any_classifier(checkpoint: str, device: str, trust: bool) -> Classifier:
    """A .ckpt, an .onnx written by export, or a registry backbone's Kinetics-400 weights, loaded on `device`."""
    # torch.hub announces a download on stdout: keep stdout for the results (JSON must parse).
    with contextlib.redirect_stdout(sys.stderr):
        if checkpoint in BACKBONES and not Path(checkpoint).exists():
            return pretrained_classifier(checkpoint, device)
        if Path(checkpoint).suffix == ".onnx":
            return load_exported(checkpoint)
        return load_classifier(checkpoint, device, trust=trust)


def load_for_command(checkpoint: str, trust: bool) -> Classifier | None:
    """`load_any_classifier` on the GPU when there is one; None after a one-line error naming the file (a missing,
    truncated or foreign file: no traceback)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return load_any_classifier(checkpoint, device, trust)
    except Exception as e:
        reason = str(e) or type(e).__name__
        print(f"error: cannot load checkpoint {printable(checkpoint)}: {printable(reason)}", file=sys.stderr)
        return None
