"""Streams (files, URLs, cameras, standard input) decoded once, in order, one sliding window at a time.

`predict` labels long videos and live sources through these; only the frames of the open window are held.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import av
import torch
from av.video.reformatter import VideoReformatter

from video_processing.data.downloads import redact
from video_processing.data.video import (
    VideoError,
    decode_size,
    frame_to_rgb,
    open_video,
    start_time_s,
    subsample_indices,
)

logger = logging.getLogger("video_processing")
Item = TypeVar("Item")
# A window holds its frames as decoded (YUV) and converts only the kept ones to RGB, which costs as much as
# decoding when every frame is converted. Frames above this size (1080p), when much larger than the model needs
# (`video.decode_size`), are scaled down as they arrive instead: a window of 4K or huge frames never holds them
# full size.
HOLD_DECODED_MAX_PIXELS = 1920 * 1080


def _stdin() -> BinaryIO:
    """Standard input, unbuffered: a read left waiting in the decoding thread after Ctrl-C holds no lock that the
    interpreter's shutdown would wait for (a buffered reader's lock aborts the process there)."""
    try:
        return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    except (OSError, ValueError):  # no file descriptor: an in-memory stand-in for stdin
        return sys.stdin.buffer


@dataclass(frozen=True)
class StreamClip:
    """One window of a stream: start and end in seconds from its first frame, and the kept frames (T, C, H, W)."""

    start_s: float
    end_s: float
    frames: torch.Tensor


def open_stream(
    source: str, input_format: str | None = None, timeout_s: float | None = None
) -> av.container.InputContainer:
    """Open a file, a URL (rtsp://, http://...), a device or "-" (standard input) for decoding in order.

    A local path goes through `open_video` and its checks. `input_format` names FFmpeg's demuxer where probing
    cannot tell it ("v4l2" for /dev/video0, "mpegts" for a pipe). `timeout_s` bounds how long opening a URL or a
    device, and then each read, waits for data: past it, decoding ends with a VideoError saying the source
    stalled (opening, which reads until the format is known, says no video was recognised: data may have come).
    Raises VideoError naming the source, its password redacted.
    """
    if source != "-" and "://" not in source and input_format is None:
        return open_video(source)
    timeout = None if timeout_s is None or source == "-" else (timeout_s, timeout_s)  # (open, read)
    try:
        container = av.open(_stdin() if source == "-" else source, format=input_format, timeout=timeout)
    except av.error.ExitError:  # FFmpeg's interrupt: opening (which reads until it knows the format) ran out of time
        raise VideoError(
            redact(source),
            f"no video recognised within {timeout_s:g} s: nothing arrived, or what arrived is not a video FFmpeg "
            "knows (--input-format names the format; a slow source needs a longer --timeout-s)",
        ) from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(redact(source), f"cannot open the stream ({redact(str(e))})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(source, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # as `open_video`: one decoding thread
    stream.thread_count = 1
    return container


def sliding_windows(
    timed_items: Iterable[tuple[float, Item]], window_s: float, stride_s: float, origin_s: float | None = None
) -> Iterator[tuple[float, float, list[Item]]]:
    """Group (time in seconds, item) pairs into windows [k * stride_s, k * stride_s + window_s) from `origin_s`.

    `origin_s` None counts from the first item's time. A window is yielded, with its items, as soon as an item at
    or past its end arrives, so a live stream gets each window without waiting for the next one. Only the items
    of the open window are held, so memory stays bounded by one window whatever the stream's length; items in a
    gap between windows (stride longer than the window) are dropped on arrival. Windows without items (a stall, a
    timestamp far ahead) are jumped over, not yielded, so the work is bounded by the items whatever the times.
    At the end, the open window is yielded if its items reach its end (within 1.5 intervals between items), or if
    it is the first window: a stream shorter than one window gives one window, as `uniform_clip_windows` does for
    a short file.

    A time that goes back (a restarted camera, a looping stream) ends the run of windows as the end of a stream
    does and starts a new run from that item, with a warning; the returned times go on rising across it.
    """
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive, got {window_s} s and {stride_s} s")
    items, base, first = iter(timed_items), 0.0, None
    while True:
        run = _run_windows(first, items, window_s, stride_s, base, origin_s)
        first, origin_s = None, None  # the run holds its first item; a later run counts from its own
        first, base = yield from run
        if first is None:
            return


def _run_windows(
    first: tuple[float, Item] | None,
    items: Iterator[tuple[float, Item]],
    window_s: float,
    stride_s: float,
    base: float,
    origin: float | None,
) -> Iterator[tuple[float, float, list[Item]]]:
    """The windows of one run of rising times (`first`, then `items`), placed from `base` on the returned timeline.

    Returns the item whose time went back (None at the end of the items) and where the next run starts.
    """
    pending = items if first is None else itertools.chain([first], items)
    del first  # only the open window's items stay referenced
    held: deque[tuple[float, Item]] = deque()
    k, last, interval, reset = 0, None, 0.0, None
    for time, item in pending:
        if last is not None and time < last:
            reset = (time, item)
            break
        origin = time if origin is None else origin
        while time - origin >= k * stride_s + window_s:  # this item closes window k
            if not held:  # nothing since window k opened: jump the empty windows of a gap at once
                k = max(k + 1, math.floor((time - origin - window_s) / stride_s) + 1)
                continue
            yield base + k * stride_s, base + k * stride_s + window_s, [x for _, x in held]
            k += 1
            while held and held[0][0] - origin < k * stride_s:
                held.popleft()
        if time - origin >= k * stride_s:
            held.append((time, item))
        interval = 0.0 if last is None else time - last
        last = time
    end = k * stride_s + window_s
    if held and (k == 0 or end - (last - origin) <= 1.5 * interval):
        yield base + k * stride_s, base + end, [x for _, x in held]
        k += 1
    if reset is not None:
        logger.warning(
            "timestamps went back from %.2f s to %.2f s (a restarted or looping source): a new run of windows "
            "starts at %.2f s",
            last,
            reset[0],
            base + k * stride_s,
        )
    return reset, base + k * stride_s


def stream_clips(
    container: av.container.InputContainer,
    source: str | Path,
    window_s: float,
    stride_s: float,
    num_frames: int,
    on_frame: Callable[[av.VideoFrame], None] | None = None,
    short_side: int | None = None,
) -> Iterator[StreamClip]:
    """Decode the first video stream once, in order, and yield each window's `num_frames` frames (uint8).

    Windows are placed by `sliding_windows` on the frames' timestamps, counted from the stream's start time as
    clips of a file are (`start_time_s`; from the first frame when the stream states none); a window
    keeps `num_frames` evenly spaced frames of those inside it, as clips of a file keep theirs
    (`subsample_indices`). Frames wait in the decoder's YUV and only the kept ones are converted to RGB, scaled
    down to `short_side` in the same call when much larger (`video.SCALE_AT_DECODE_ABOVE`); frames over
    HOLD_DECODED_MAX_PIXELS are scaled as they arrive instead, so a window never holds full-size frames of a
    huge video. Windows holding fewer than `num_frames` frames (a stall, a slow camera, a gap in the timestamps)
    are skipped, with one warning per run of them. `on_frame` is given every decoded frame, in order, as it comes
    (an annotated copy writes them all).
    """
    reformatter = VideoReformatter()  # one converter for all frames (see `_decode_windows`)
    origin = start_time_s(container)
    timed = _timed_frames(container, source)
    if on_frame is not None:
        timed = _passed_to(on_frame, timed)
    frames = ((time, _held(reformatter, short_side, frame)) for time, frame in timed)
    skipped = _SkippedRun(redact(str(source)), num_frames)
    for start, end, held in sliding_windows(frames, window_s, stride_s, origin):
        skipped.jumped_to(start, stride_s)
        if len(held) < num_frames:
            skipped.add(start, end)
            continue
        skipped.report()
        kept = [held[i] for i in subsample_indices(len(held), num_frames)]
        yield StreamClip(start, end, torch.stack([_rgb(reformatter, frame, short_side) for frame in kept]))
    skipped.report()


def _held(reformatter: VideoReformatter, short_side: int | None, frame: av.VideoFrame) -> av.VideoFrame | torch.Tensor:
    """A frame as a window holds it: as decoded (YUV), or as scaled-down RGB (C, H, W) when it is over
    HOLD_DECODED_MAX_PIXELS and much larger than `short_side`."""
    if (
        frame.width * frame.height <= HOLD_DECODED_MAX_PIXELS
        or decode_size(frame.width, frame.height, short_side) is None
    ):
        return frame
    return _rgb(reformatter, frame, short_side)


def _rgb(reformatter: VideoReformatter, frame: av.VideoFrame | torch.Tensor, short_side: int | None) -> torch.Tensor:
    if isinstance(frame, torch.Tensor):
        return frame
    return torch.from_numpy(frame_to_rgb(reformatter, frame, short_side)).permute(2, 0, 1)


@dataclass
class _SkippedRun:
    """Consecutive windows skipped for too few frames, warned about once when the run ends."""

    source: str
    num_frames: int
    count: int = 0
    start_s: float = 0.0
    end_s: float = 0.0
    last_start_s: float | None = None

    def jumped_to(self, start_s: float, stride_s: float) -> None:
        """Count the empty windows `sliding_windows` jumped over before the window at `start_s`."""
        if self.last_start_s is not None and (gap := round((start_s - self.last_start_s) / stride_s) - 1) > 0:
            self.add(self.last_start_s + stride_s, start_s, gap)
        self.last_start_s = start_s

    def add(self, start_s: float, end_s: float, count: int = 1) -> None:
        self.start_s = start_s if self.count == 0 else self.start_s
        self.end_s, self.count = end_s, self.count + count

    def report(self) -> None:
        if self.count:
            logger.warning(
                "skipped %d windows between %.2f s and %.2f s of %s: fewer than num_frames=%d frames in each (a "
                "stall, a gap in the timestamps, or too few frames per second: a longer --window fixes the last)",
                self.count,
                self.start_s,
                self.end_s,
                self.source,
                self.num_frames,
            )
        self.count = 0


def _passed_to(on_frame: Callable[[av.VideoFrame], None], timed: Iterable[tuple[float, Item]]):
    """The (time, frame) pairs of `timed`, each frame given to `on_frame` on its way."""
    for time, frame in timed:
        on_frame(frame)
        yield time, frame


def _timed_frames(container: av.container.InputContainer, source: str | Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """Frames of the first video stream in presentation order, with their presentation time in seconds.

    A frame without a timestamp (some raw streams) is timed by its index and the stream's frame rate.
    """
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 30)
    try:
        for index, frame in enumerate(container.decode(stream)):
            yield (frame.time if frame.time is not None else index / rate), frame
    except av.error.ExitError:  # FFmpeg's interrupt: the open/read timeout of a network source ran out
        raise VideoError(source, "stalled: no data within the read timeout") from None
    except av.error.FFmpegError as e:
        raise VideoError(source, f"decoding failed ({e})") from None
