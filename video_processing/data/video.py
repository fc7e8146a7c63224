"""Opening a video file (or a shard's bytes) and decoding clip windows to uint8 frames with PyAV: every clip a
dataset reads is decoded here. (Inference's streams, `inference.streams`, decode a source once in order with
PyAV too, through this module's opening and colour conversion.)

It also plans clips (`plan_*`: which frames a clip keeps, from packet timestamps) for `decoders.py`'s torchcodec.

Decoding follows four rules measured on Kinetics-sized clips:
- Only the frames a clip keeps are converted to RGB. Colour conversion, not decoding, is most of the cost, so the
  other frames of the window stay as the decoder's YUV frames and are dropped.
- Frames that are neither kept nor referenced by other frames are not decoded at all (H.264 non-reference
  B-frames: about half of the frames of a stream x264 wrote with its defaults). The kept frames are the same.
- Decoding is single-threaded with slice threading allowed. Frame threading has deadlock reports inside loader
  workers, and the workers already keep every core busy.
- A file is opened where it is read (in the loader worker), never before the workers fork.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

if TYPE_CHECKING:
    from video_processing.data.transforms import CropBox

logger = logging.getLogger("video_processing")

# The largest frame opened (8192 x 8192): a decoder holds several frames of this size, so larger ones are refused.
MAX_FRAME_PIXELS = 8192 * 8192
# Frames whose short side is more than this many times the short side a caller asks for are scaled down to it as
# they are decoded, so a window never holds full-size frames of a huge video. Smaller ones are kept as decoded, so
# the eval preset scales them exactly as in validation.
SCALE_AT_DECODE_ABOVE = 2.0


class VideoError(RuntimeError):
    """A video cannot be used: it is empty, truncated, not a video, or too short. Names the file."""

    def __init__(self, path: str | Path | EncodedVideo, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # loader workers send exceptions to the main process by pickling them
        return VideoError, (self.path, self.reason)


@dataclass(frozen=True)
class EncodedVideo:
    """A video's encoded bytes held in memory (a sample of a shard), named by its path in the dataset.

    The decoding functions take it wherever they take a path; their errors name `name`.
    """

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


VideoSource = str | Path | EncodedVideo


@dataclass(frozen=True)
class VideoInfo:
    """What a file's header says about its first video stream (`width` and `height` as stored: a display rotation,
    which decoded clips apply, is known only from decoded frames)."""

    duration_s: float
    fps: float
    width: int
    height: int
    codec: str


def open_video(path: VideoSource) -> av.container.InputContainer:
    """Open `path` (a file, or EncodedVideo bytes) for single-threaded decoding; VideoError naming it if no video."""
    if isinstance(path, EncodedVideo):
        if not path.data:
            raise VideoError(path, "empty file (0 bytes)")
        source = io.BytesIO(path.data)
    else:
        path = Path(path)
        if not path.is_file():
            raise VideoError(path, "no such file")
        if path.stat().st_size == 0:
            raise VideoError(path, "empty file (0 bytes)")
        source = str(path)
    try:
        container = av.open(source)
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(path, f"not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(path, "has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # an mp4 cut inside its index lists the stream without its codec
        container.close()
        raise VideoError(path, "video stream without decoder parameters (damaged or truncated header)")
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_FRAME_PIXELS:
        container.close()
        raise VideoError(
            path,
            f"frames of {width}x{height} are more than the {MAX_FRAME_PIXELS:,} pixels a frame may have here; "
            "scale the video down first (python -m video_processing.prepare SRC DST --short-side 256)",
        )
    stream.thread_type = "SLICE"
    stream.thread_count = 1
    return container


def video_info(container: av.container.InputContainer) -> VideoInfo:
    """Duration, frame rate and size of the first video stream of an open container."""
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    return VideoInfo(duration, fps, stream.codec_context.width, stream.codec_context.height, stream.codec_context.name)


def start_time_s(container: av.container.InputContainer) -> float | None:
    """When the first video stream starts, in seconds (MPEG-TS: often 1.4 s), or None when it does not say.

    Clips of a file and windows of a stream are both placed from here, so they cut a video the same way.
    """
    stream = container.streams.video[0]
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def random_clip_window(
    duration_s: float, clip_duration_s: float, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """A clip of `clip_duration_s` starting uniformly at random in the video (the whole video if shorter).

    Draws from torch's random state, which the DataLoader seeds per worker, so runs with a seed repeat.
    """
    start = torch.rand((), generator=generator).item() * max(duration_s - clip_duration_s, 0.0)
    return start, start + clip_duration_s


@dataclass(frozen=True)
class UniformWindows:
    """Back-to-back windows [start + k * clip_s, start + (k + 1) * clip_s) for k < count, placed without being
    listed: a video whose last frame sits 1e9 s after the others states a duration of a billion clips."""

    start: float
    clip_s: float
    count: int

    def __getitem__(self, k: int) -> tuple[float, float]:
        if not -self.count <= k < self.count:
            raise IndexError(k)
        k %= self.count
        return k * self.clip_s + self.start, (k + 1) * self.clip_s + self.start

    def __len__(self) -> int:
        return self.count

    def index(self, time_s: float) -> int:
        """The k of the window holding `time_s` (possibly outside 0..count-1)."""
        k = math.floor((time_s - self.start) / self.clip_s)
        while k * self.clip_s + self.start > time_s:  # the window bounds decide, whatever the rounding
            k -= 1
        while (k + 1) * self.clip_s + self.start <= time_s:
            k += 1
        return k

    def shifted(self, offset_s: float) -> UniformWindows:
        return UniformWindows(self.start + offset_s, self.clip_s, self.count)


# Clip windows: a list of (start, end), or back-to-back ones placed without a list.
Windows = list[tuple[float, float]] | UniformWindows


def uniform_clip_windows(duration_s: float, clip_duration_s: float) -> UniformWindows:
    """Back-to-back clips covering the video, as PyTorchVideo's uniform clip sampler places them.

    A trailing part shorter than a clip is left out; a video shorter than one clip gives one clip.
    """
    count = max(1, math.floor(duration_s / clip_duration_s + 1e-6))
    return UniformWindows(0.0, clip_duration_s, count)


def constant_clip_windows(duration_s: float, clip_duration_s: float, clips_per_video: int) -> list[tuple[float, float]]:
    """`clips_per_video` evenly spaced clips, as PyTorchVideo's ConstantClipsPerVideoSampler places them.

    Starts are k * (duration - clip) / clips_per_video for k = 0 .. clips_per_video - 1, so clips may overlap
    and the last clip ends before the video does; in a video shorter than one clip, every clip starts at 0.
    """
    if clips_per_video < 1:
        raise ValueError(f"clips_per_video must be at least 1, got {clips_per_video}")
    step = max(duration_s - clip_duration_s, 0.0) / clips_per_video
    return [(k * step, k * step + clip_duration_s) for k in range(clips_per_video)]


def subsample_indices(num_available: int, num_frames: int) -> list[int]:
    """Evenly spaced indices keeping `num_frames` of `num_available` frames, first and last included.

    Matches PyTorchVideo's UniformTemporalSubsample: linspace(0, n - 1, num_frames), truncated.
    """
    return torch.linspace(0, num_available - 1, num_frames).long().tolist()


def decode_random_clip(
    path: VideoSource, clip_duration_s: float, num_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Decode `num_frames` frames from one random window of `clip_duration_s` (uint8, T, C, H, W)."""
    return _decode_file(
        path, clip_duration_s, num_frames, lambda duration: [random_clip_window(duration, clip_duration_s, generator)]
    )[0]


def decode_uniform_clips(path: VideoSource, clip_duration_s: float, num_frames: int) -> list[torch.Tensor]:
    """Decode every back-to-back clip of `clip_duration_s` of the video (see `uniform_clip_windows`)."""
    return _decode_file(path, clip_duration_s, num_frames, lambda d: uniform_clip_windows(d, clip_duration_s))


def decode_constant_clips(
    path: VideoSource, clip_duration_s: float, num_frames: int, clips_per_video: int
) -> list[torch.Tensor]:
    """Decode `clips_per_video` evenly spaced clips (see `constant_clip_windows`) in one pass over the file.

    Overlapping windows share their decoded frames: each frame is decoded once.
    """
    return _decode_file(
        path, clip_duration_s, num_frames, lambda d: constant_clip_windows(d, clip_duration_s, clips_per_video)
    )


def decode_last_clip(
    path: VideoSource, clip_duration_s: float, num_frames: int, short_side: int | None = None
) -> torch.Tensor:
    """Decode the last window of `clip_duration_s` the header promises: a truncated download fails here.

    `short_side`: frames much larger are scaled down to it as they are decoded (see `SCALE_AT_DECODE_ABOVE`).
    """
    return _decode_file(
        path,
        clip_duration_s,
        num_frames,
        lambda d: [(max(d - clip_duration_s, 0.0), max(d, clip_duration_s))],
        read=partial(_decode_windows, short_side=short_side),
    )[0]


@dataclass(frozen=True)
class PlannedClip:
    """Which frames a clip keeps, decided from packet timestamps alone: what another decoder needs to decode it.

    `times` are the kept frames' presentation times in seconds, exactly the frames `decode_*` would return;
    `height` and `width` are the size of the displayed frames, after the stream's display rotation. A training plan
    adds the train preset's crop `box` and `flip` (`reads.TrainClipPlanner`); `box` None means the eval preset's
    scale and centre crop.
    """

    path: str
    window: tuple[float, float]
    times: tuple[float, ...]
    height: int
    width: int
    box: CropBox | None = None
    flip: bool = False


def plan_random_clip(
    path: str | Path, clip_duration_s: float, num_frames: int, generator: torch.Generator | None = None
) -> PlannedClip:
    """Plan the clip `decode_random_clip` would decode, drawing the same random window, without decoding it."""
    return _decode_file(
        path,
        clip_duration_s,
        num_frames,
        lambda duration: [random_clip_window(duration, clip_duration_s, generator)],
        read=_plan_windows,
    )[0]


def plan_uniform_clips(path: str | Path, clip_duration_s: float, num_frames: int) -> list[PlannedClip]:
    """Plan the clips `decode_uniform_clips` would decode, without decoding them."""
    return _decode_file(
        path, clip_duration_s, num_frames, lambda d: uniform_clip_windows(d, clip_duration_s), read=_plan_windows
    )


def _plan_windows(
    container: av.container.InputContainer, path: Path, windows: Windows, num_frames: int
) -> list[PlannedClip]:
    info = video_info(container)
    packets, windows, kept_times = _read_kept_times(container, path, windows, num_frames)
    height, width = (
        (info.width, info.height) if _stream_quarter_turns(container, packets) % 2 else (info.height, info.width)
    )
    return [
        PlannedClip(str(path), window, tuple(times), height, width)
        for window, times in zip(windows, kept_times, strict=True)
    ]


def _stream_quarter_turns(container: av.container.InputContainer, packets: list[av.Packet]) -> int:
    """The stream's display rotation in counterclockwise quarter turns, from its first keyframe in `packets`.

    PyAV reads a stream's display matrix only from decoded frames, so one keyframe is decoded (the only decoding a
    plan does). Leaves the decoder drained: for planning only.
    """
    codec = container.streams.video[0].codec_context
    codec.skip_frame = "NONKEY"
    keyframe = next((p for p in packets if p.is_keyframe), None)
    for packet in [keyframe, None] if keyframe is not None else []:
        for frame in codec.decode(packet):
            return _quarter_turns(frame)
    return 0


def _quarter_turns(frame: av.VideoFrame) -> int:
    """A frame's display rotation (its DISPLAYMATRIX side data) in counterclockwise quarter turns, 0 to 3."""
    return round(frame.rotation / 90) % 4


def _decode_file(
    path: VideoSource,
    clip_duration_s: float,
    num_frames: int,
    windows_for: Callable[[float], Windows],
    read: Callable[..., list] | None = None,
) -> list:
    """Open `path`, place windows by its duration from its start time, decode them (or `read` them), close it.

    Every failure is a VideoError.
    """
    container = open_video(path)
    try:
        start = start_time_s(container) or 0.0
        duration = _usable_duration(path, video_info(container), clip_duration_s)
        placed = windows_for(duration)
        windows = (
            placed.shifted(start) if isinstance(placed, UniformWindows) else [(a + start, b + start) for a, b in placed]
        )
        return (read or _decode_windows)(container, path, windows, num_frames)
    except av.error.FFmpegError as e:
        raise VideoError(path, f"decoding failed ({e})") from None
    finally:
        container.close()


def too_short_for_clips(info: VideoInfo, clip_duration_s: float) -> str | None:
    """Why a video with this header is too short to train on (it covers less than half a clip, too little to show
    an action), or None. A container that states no duration (0) is let through: the frame count decides then."""
    if 0 < info.duration_s < clip_duration_s / 2:
        return f"too short: {info.duration_s:.2f} s, less than half the clip duration ({clip_duration_s:.2f} s)"
    return None


def _usable_duration(path: VideoSource, info: VideoInfo, clip_duration_s: float) -> float:
    """The video's duration; VideoError when it is too short (`too_short_for_clips`)."""
    if reason := too_short_for_clips(info, clip_duration_s):
        raise VideoError(path, reason)
    return info.duration_s


def _decode_windows(
    container: av.container.InputContainer,
    path: VideoSource,
    windows: Windows,
    num_frames: int,
    short_side: int | None = None,
) -> list[torch.Tensor]:
    """Decode the windows (sorted by start and end) in one pass, converting only the kept frames to RGB.

    The packets are read first: their timestamps tell which frames fall in each window and which are kept,
    without decoding. Frames that are neither kept nor referenced by later frames are then not even decoded
    (about half of an H.264 stream with B-frames); the kept frames decode exactly as in a full decode, and are
    converted as they are decoded (scaled down to `short_side` when much larger, see `SCALE_AT_DECODE_ABOVE`).
    """
    stream = container.streams.video[0]
    time_base = stream.time_base or Fraction(1, av.time_base)
    packets, _, kept_times = _read_kept_times(container, path, windows, num_frames)
    wanted = {round(t / time_base) for times in kept_times for t in times}
    reformatter = VideoReformatter()  # one converter for all frames: `frame.to_ndarray(format=...)` sets up
    # a new one per frame, which costs twice the conversion itself; the pixels are the same
    frames = _decode_wanted(stream, packets, wanted, partial(frame_to_rgb, reformatter, short_side=short_side))
    if missing := wanted - frames.keys():
        raise VideoError(path, f"decoding failed ({len(missing)} frames of the clip did not decode)")
    return [_stacked([frames[round(t / time_base)] for t in times]) for times in kept_times]


def _read_kept_times(
    container: av.container.InputContainer, path: Path, windows: Windows, num_frames: int
) -> tuple[list[av.Packet], list[tuple[float, float]], list[list[float]]]:
    """The packets covering the windows, the windows that hold `num_frames` frames and their kept frames' times.

    Reads packets only: their timestamps decide the kept frames, with no frame decoded.
    """
    stream = container.streams.video[0]
    time_base = stream.time_base or Fraction(1, av.time_base)
    start_pts = int(windows[0][0] / time_base)
    if start_pts > (stream.start_time or 0):  # a window after the first frame: skip to the keyframe before it
        container.seek(start_pts, stream=stream, backward=True, any_frame=False)
    packets = _packets_until(container, stream, windows[-1][1] / time_base)
    presented = sorted(float(p.pts * time_base) for p in packets if p.pts is not None)
    if isinstance(windows, UniformWindows):
        return packets, *_uniform_kept_times(path, windows, presented, num_frames)
    return packets, list(windows), [_kept_times(path, window, presented, num_frames) for window in windows]


def _uniform_kept_times(
    path: VideoSource, windows: UniformWindows, presented: list[float], num_frames: int
) -> tuple[list[tuple[float, float]], list[list[float]]]:
    """The windows holding at least `num_frames` frames, and their kept frames' times, found from the frames (so
    the work is bounded by the frames, whatever the number of windows). The others (a gap in the timestamps, a
    truncated end) are skipped with one warning; VideoError when no window is left."""
    inside: dict[int, list[float]] = {}
    for time in presented:
        if 0 <= (k := windows.index(time)) < len(windows):
            inside.setdefault(k, []).append(time)
    kept = {k: times for k, times in inside.items() if len(times) >= num_frames}
    if not kept:
        k = min(inside, default=0)
        _kept_times(path, windows[k], inside.get(k, []), num_frames)  # raises "too short", naming the window
    if skipped := len(windows) - len(kept):
        first = next(k for k in itertools.count() if k not in kept)
        last = next(k for k in itertools.count(len(windows) - 1, -1) if k not in kept)
        logger.warning(
            "%s: skipped %d of %d clip windows, between %.2f s and %.2f s, with fewer than num_frames=%d frames "
            "(a gap in the timestamps or a truncated file)",
            path,
            skipped,
            len(windows),
            windows[first][0],
            windows[last][1],
            num_frames,
        )
    order = sorted(kept)
    kept_times = [[kept[k][i] for i in subsample_indices(len(kept[k]), num_frames)] for k in order]
    return [windows[k] for k in order], kept_times


def _packets_until(container: av.container.InputContainer, stream, end_pts: float) -> list[av.Packet]:
    """Packets from the current position until every frame presented before `end_pts` has been read."""
    packets = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the end-of-stream marker
            break
        packets.append(packet)
        if packet.dts is not None and packet.dts >= end_pts:  # later packets present at pts >= dts >= end
            break
    return packets


def _kept_times(path: VideoSource, window: tuple[float, float], presented: list[float], num_frames: int) -> list[float]:
    """Presentation times of the `num_frames` evenly spaced frames kept from those inside `window`."""
    inside = [t for t in presented if window[0] <= t < window[1]]
    if len(inside) < num_frames:
        raise VideoError(
            path,
            f"too short: {len(inside)} frames in the clip window {window[0]:.2f}-{window[1]:.2f} s, "
            f"fewer than num_frames={num_frames}",
        )
    return [inside[i] for i in subsample_indices(len(inside), num_frames)]


def _decode_wanted(
    stream, packets: list[av.Packet], wanted: set[int], convert: Callable[[av.VideoFrame], np.ndarray]
) -> dict[int, np.ndarray]:
    """Decode `packets`, skipping frames that are not wanted and that no other frame refers to; the wanted ones
    are converted as they come, so no decoded frame is held."""
    codec = stream.codec_context
    frames = {}
    for packet in [*packets, None]:  # None drains the frames the decoder holds back for reordering
        # the decoder reads skip_frame as it decodes each packet (one thread: at once)
        codec.skip_frame = "DEFAULT" if packet is None or packet.pts in wanted else "NONREF"
        for frame in codec.decode(packet):
            if frame.pts in wanted:
                frames[frame.pts] = convert(frame)
    return frames


def decode_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """(width, height) to scale a frame to as it is decoded: short side `short_side`, aspect kept; None to keep it.

    Only frames whose short side is more than SCALE_AT_DECODE_ABOVE times `short_side` are scaled.
    """
    if short_side is None or min(width, height) <= SCALE_AT_DECODE_ABOVE * short_side:
        return None
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_to_rgb(reformatter: VideoReformatter, frame: av.VideoFrame, short_side: int | None = None) -> np.ndarray:
    """A frame -> uint8 RGB (H, W, 3), turned upright as the stream's display rotation says, and scaled down in
    the same swscale call ("area" averaging) when `decode_size` says so."""
    if size := decode_size(frame.width, frame.height, short_side):
        rgb = reformatter.reformat(frame, *size, "rgb24", interpolation="AREA").to_ndarray()
    else:
        rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    return _upright(rgb, frame)


def frames_to_rgb(
    reformatter: VideoReformatter, frames: list[av.VideoFrame], short_side: int | None = None
) -> torch.Tensor:
    """Frames -> uint8 RGB (T, C, H, W), upright and scaled as `frame_to_rgb` makes them."""
    return _stacked([frame_to_rgb(reformatter, f, short_side) for f in frames])


def _stacked(rgb: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2)


def _upright(rgb: np.ndarray, frame: av.VideoFrame) -> np.ndarray:
    """RGB frames (..., H, W, 3) decoded from `frame`'s stream, rotated as displayed (a phone's portrait video).

    Every decoder gives the displayed frame: torchcodec applies the display rotation itself, and the clip plans
    state the displayed size, so crops, training frames and test views agree whichever decoder ran.
    """
    if turns := _quarter_turns(frame):
        rgb = np.ascontiguousarray(np.rot90(rgb, turns, axes=(-3, -2)))
    return rgb


def iter_rgb_frames(
    container: av.container.InputContainer, path: str | Path, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as uint8 RGB (H, W, 3), upright as displayed (see `_upright`).

    `size` (width, height) scales each frame as stored, before the display rotation turns it (the size
    `video_info` states). Streams one frame at a time, so a long video never sits in memory whole. Scaling and
    colour conversion run in one swscale call; "area" averaging is the antialiased filter for downscaling.
    """
    width, height = size or (None, None)
    reformatter = VideoReformatter()  # one converter for all frames (see `_decode_windows`)
    try:
        for frame in container.decode(container.streams.video[0]):
            yield _upright(
                reformatter.reformat(frame, width, height, "rgb24", interpolation="AREA").to_ndarray(), frame
            )
    except av.error.FFmpegError as e:
        raise VideoError(path, f"decoding failed ({e})") from None


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 23,
    keyframe_interval_s: float = 1.0,
) -> None:
    """Encode uint8 RGB frames (T, H, W, 3), or an iterable of (H, W, 3) frames, as an H.264 mp4.

    A keyframe every `keyframe_interval_s` bounds what a seek must decode before a clip window.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(path, "no frames to write")
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        gop = max(1, round(fps * keyframe_interval_s))
        stream.options = {"crf": str(crf), "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        stream.thread_count = 1
        for rgb in itertools.chain([first], frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: stream.height, : stream.width]), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
