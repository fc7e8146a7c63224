"""Annotated copies of videos: every frame with the label of its window and its probability, over a timeline of
the segments so far.

    render_annotated("clip.mp4", windows, "clip_annotated.mp4", class_names)   # windows computed before

`python -m video_processing.predict CKPT VIDEO --segments --render OUT.mp4` writes one while it labels, through
`AnnotatedVideo`: each decoded frame waits, in the decoder's YUV, until the window it belongs to is labelled, then is
drawn and encoded, so a live source is written as it plays and memory holds at most three windows of frames
(the one labelled, the one handed over, the one being decoded).

The copy keeps every frame with its timestamp (so the frame count and the frame rate, constant, non-integer or
variable, are the input's) and the input's audio, copied without re-encoding, when the input is a file that has
some and the output's format can hold its codec. A frame shows the window that starts last at or before it (with
--stride equal to --window: the window it lies in, the segment `predict --json` lists for that time); frames before
the first window show no label, frames after the last one keep its label.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import av
from PIL import Image, ImageColor, ImageDraw, ImageFont

from video_processing.data.video import VideoError, open_video, start_time_s, video_info
from video_processing.inference.segments import Segment, SegmentMerger, WindowLabel

logger = logging.getLogger("video_processing")
# The timeline of a source of unknown length (a pipe, a camera) shows this many of the last seconds.
LIVE_TIMELINE_S = 60.0


class Labelled(Protocol):
    """A window or a segment: where it starts, its label and probability."""

    start_s: float
    end_s: float
    label: str
    probability: float


def class_color(index: int) -> tuple[int, int, int]:
    """The colour of the class at `index`: hues 137.5 degrees apart (the golden angle), so neighbours differ."""
    return ImageColor.getrgb(f"hsl({index * 137.5 % 360:.1f}, 90%, 50%)")


class AnnotatedVideo:
    """An annotated copy being written: frames come in (`add_frame`, from any thread), windows' labels decide them
    (`label`), `close` writes the rest. Opens `out` at once, so a path that cannot be written fails before decoding.
    """

    def __init__(self, out: str | Path, class_names: list[str] | None = None):
        self.out = Path(out)
        self.class_names = list(class_names or [])
        try:
            self._container = av.open(str(self.out), "w")
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise VideoError(self.out, f"cannot write the annotated video ({e})") from None
        self._pending: collections.deque[tuple[float, av.VideoFrame]] = collections.deque()
        self._merger, self._segments = SegmentMerger(), []
        self._current: Labelled | None = None
        self._stream = self._audio_in = self._audio_packets = self._font = None
        self.frames_written, self.last_time_s, self._closed = 0, None, False

    def open(self, container: av.container.InputContainer, source: str | Path) -> None:
        """Take the frame rate, time base and size of `container`'s video, and its audio when `source` is a file."""
        video = container.streams.video[0]
        info = video_info(container)
        self._rate = video.average_rate or video.guessed_rate or 30
        self._time_base = video.time_base or 1 / self._rate
        self._origin_s = start_time_s(container)
        self._duration_s = info.duration_s or None
        self._stream = self._container.add_stream("libx264", rate=self._rate, time_base=self._time_base)
        self._stream.width, self._stream.height = info.width - info.width % 2, info.height - info.height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "20"}
        band = max(12, self._stream.height // 8)
        self._band, self._bar = band, max(4, self._stream.height // 16)
        self._font = ImageFont.load_default(size=max(8, int(band * 0.6)))
        if container.streams.audio and Path(str(source)).is_file():
            self._open_audio(source)
        self._index, self._first_s, self._last_pts = 0, None, None

    def _open_audio(self, source: str | Path) -> None:
        self._audio_in = av.open(str(source))
        template = self._audio_in.streams.audio[0]
        try:
            self._audio_out = self._container.add_stream_from_template(template)
        except ValueError as e:  # the output's format cannot hold this codec
            logger.warning("%s: the audio is left out (%s)", self.out, e)
            self._audio_in.close()
            self._audio_in = None
            return
        self._audio_packets = self._audio_in.demux(template)
        self._audio_next = None

    def add_frame(self, frame: av.VideoFrame) -> None:
        """Queue a decoded frame (in presentation order) until its window is labelled."""
        if self._closed:  # a decoder still running after Ctrl-C: the copy ends where it was closed
            return
        time = frame.time if frame.time is not None else self._index / float(self._rate)
        self._index += 1
        if self._origin_s is None:
            self._origin_s = time
        if self._first_s is None:
            self._first_s = time
        self.last_time_s = time - self._origin_s
        self._pending.append((self.last_time_s, frame))

    def label(self, window: Labelled) -> None:
        """The next window's label (in order): frames before its start are written with the label before it."""
        self._flush(window.start_s)
        self._current = window
        if (closed := self._merger.add(_as_window(window))) is not None:
            self._segments.append(closed)

    def close(self) -> int:
        """Write the frames still waiting (with the last label) and the rest of the audio; the frames written."""
        self._closed = True
        if self._stream is not None:
            self._flush(float("inf"))
            self._container.mux(self._stream.encode())
            self._mux_audio(float("inf"))
            if self._audio_in is not None:
                self._audio_in.close()
        self._container.close()
        if self._stream is None:  # the source never opened: nothing to keep
            self.out.unlink(missing_ok=True)
        return self.frames_written

    def _flush(self, before_s: float) -> None:
        while self._pending and self._pending[0][0] < before_s:
            time, frame = self._pending.popleft()
            self._encode(time, frame)

    def _encode(self, time: float, frame: av.VideoFrame) -> None:
        image = frame.to_image().crop((0, 0, self._stream.width, self._stream.height))
        self._draw(image, time)
        out = av.VideoFrame.from_image(image)
        pts = round((time + self._origin_s - self._first_s) / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:  # a timestamp that went back (a restarted source)
            pts = self._last_pts + 1
        out.pts, out.time_base, self._last_pts = pts, self._time_base, pts
        self._mux_audio(time)
        self._container.mux(self._stream.encode(out))
        self.frames_written += 1

    def _mux_audio(self, until_s: float) -> None:
        """Copy the audio packets up to `until_s` (stream time), shifted as the video is, so they stay in sync."""
        if self._audio_packets is None:
            return
        while True:
            packet = self._audio_next or next(self._audio_packets, None)
            if packet is None:
                self._audio_packets = None
                return
            if packet.pts is None or packet.dts is None:  # the demuxer's empty packet at the end
                continue
            if float(packet.pts * packet.time_base) - self._origin_s > until_s:
                self._audio_next = packet
                return
            self._audio_next = None
            shift = round(self._first_s / packet.time_base)
            if packet.pts - shift >= 0:  # sound from before the first frame has no picture to go with
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
                packet.stream = self._audio_out
                self._container.mux(packet)

    def _draw(self, image: Image.Image, time: float) -> None:
        """A band at the top with the label's colour, name and probability; a timeline of segments at the bottom."""
        draw, (width, height), band = ImageDraw.Draw(image), image.size, self._band
        draw.rectangle((0, 0, width, band), fill=(0, 0, 0))
        if self._current is not None:
            draw.rectangle((0, 0, band, band), fill=self._color(self._current.label))
            text = f"{self._current.label}  {self._current.probability:.0%}"
            draw.text((band + band // 3, band // 2), text, fill=(255, 255, 255), font=self._font, anchor="lm")
        span = self._duration_s or LIVE_TIMELINE_S
        start = 0.0 if self._duration_s else max(0.0, time - LIVE_TIMELINE_S)
        top = height - self._bar
        draw.rectangle((0, top, width, height), fill=(40, 40, 40))
        for segment in self._timeline(start):
            x0, x1 = ((t - start) / span * width for t in (segment.start_s, segment.end_s))
            draw.rectangle((x0, top, x1, height), fill=self._color(segment.label))
        cursor = (time - start) / span * width
        draw.line((cursor, top, cursor, height), fill=(255, 255, 255), width=2)

    def _timeline(self, start_s: float) -> list[Segment]:
        """The segments so far that end after `start_s`; older ones (a live source's past) are let go."""
        while self._segments and self._segments[0].end_s < start_s:
            self._segments.pop(0)
        return self._segments + ([self._merger.open] if self._merger.open is not None else [])

    def _color(self, label: str) -> tuple[int, int, int]:
        if label not in self.class_names:
            self.class_names.append(label)
        return class_color(self.class_names.index(label))


def _as_window(labelled: Labelled) -> WindowLabel:
    """A window or a segment, as a window of the timeline."""
    return WindowLabel(labelled.start_s, labelled.end_s, labelled.label, labelled.probability)


def render_annotated(
    video: str | Path, windows: Iterable[Labelled], out: str | Path, class_names: list[str] | None = None
) -> int:
    """Write an annotated copy of the file `video` to `out` from its windows or segments (`predict --segments`'s);
    returns the frames written. `class_names` fixes each class's colour (by its index); else by first appearance.
    """
    upcoming = iter(sorted(windows, key=lambda window: window.start_s))
    annotated, following = AnnotatedVideo(out, class_names), None
    try:
        with open_video(video) as container:
            annotated.open(container, video)
            following = next(upcoming, None)
            for frame in container.decode(container.streams.video[0]):
                annotated.add_frame(frame)
                while following is not None and annotated.last_time_s >= following.start_s:
                    annotated.label(following)
                    following = next(upcoming, None)
    finally:
        for window in [following, *upcoming] if following is not None else []:
            annotated.label(window)
        written = annotated.close()
    return written
