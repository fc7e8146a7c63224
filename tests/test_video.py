import io
import sys
import weakref

import numpy as np
import pytest
import torch
from stream_helpers import mpegts_bytes

from tests.conftest import write_clip
from video_processing.data.video import (
    VideoError,
    _decode_file,
    constant_clip_windows,
    decode_constant_clips,
    decode_random_clip,
    decode_uniform_clips,
    open_video,
    plan_uniform_clips,
    random_clip_window,
    start_time_s,
    subsample_indices,
    uniform_clip_windows,
    video_info,
    write_video,
)
from video_processing.inference.streams import open_stream, sliding_windows, stream_clips
from video_processing.lessons.standins import serve_directory


def test_video_info(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=2.0, fps=24, size=(64, 48))
    with open_video(path) as container:
        info = video_info(container)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(24)
    assert (info.width, info.height, info.codec) == (64, 48, "h264")


def test_uniform_clip_windows():
    assert list(uniform_clip_windows(10.0, 2.0)) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert list(uniform_clip_windows(9.0, 2.0)) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert list(uniform_clip_windows(1.5, 2.0)) == [(0, 2)]
    assert len(uniform_clip_windows(2e9, 2.0)) == 10**9  # placed, not listed


def test_random_clip_window_inside_video():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        start, end = random_clip_window(5.0, 2.0, generator)
        assert 0 <= start <= 3.0 and end == pytest.approx(start + 2.0)
    assert random_clip_window(1.0, 2.0, generator) == (0.0, 2.0)


def test_subsample_indices_match_uniform_temporal_subsample():
    # PyTorchVideo's UniformTemporalSubsample: linspace(0, t - 1, n) truncated to integers.
    assert subsample_indices(60, 8) == [0, 8, 16, 25, 33, 42, 50, 59]
    assert subsample_indices(4, 8) == [0, 0, 0, 1, 1, 2, 2, 3]


def test_decode_random_clip(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0, fps=24)
    clip = decode_random_clip(path, clip_duration_s=1.0, num_frames=8)
    assert clip.shape == (8, 3, 48, 64) and clip.dtype == torch.uint8


def test_decode_uniform_clips_are_consecutive(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0, fps=24)
    clips = decode_uniform_clips(path, clip_duration_s=1.0, num_frames=4)
    assert len(clips) == 3
    assert all(c.shape == (4, 3, 48, 64) for c in clips)
    # The gradient moves 8 grey levels a frame: each clip's first frame is 24 frames after the previous one.
    firsts = [int(c[0, 0, 0, 0]) for c in clips]
    assert firsts[1] - firsts[0] == pytest.approx(24 * 8 % 256, abs=6)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a video\n" * 20), "not a readable video"),
        (lambda p: write_clip(p, seconds=0.2), "too short"),
    ],
)
def test_bad_files_raise_video_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoError, match=reason) as error:
        decode_random_clip(path, clip_duration_s=1.0, num_frames=8)
    assert error.value.path == str(path) and str(path) in str(error.value)


def test_truncated_file_raises_video_error(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(VideoError) as error:
        decode_uniform_clips(path, clip_duration_s=1.0, num_frames=8)
    assert error.value.path == str(path)


def _windows(times, window_s, stride_s):
    return [(start, end, items) for start, end, items in sliding_windows([(t, t) for t in times], window_s, stride_s)]


def test_sliding_windows_place_windows_by_time():
    times = [i / 4 for i in range(12)]  # 3 s at 4 frames/s: the last frame is at 2.75 s
    assert _windows(times, 1.0, 1.0) == [
        (0.0, 1.0, [0.0, 0.25, 0.5, 0.75]),
        (1.0, 2.0, [1.0, 1.25, 1.5, 1.75]),
        (2.0, 3.0, [2.0, 2.25, 2.5, 2.75]),  # complete: the next frame would be at its end
    ]
    assert [(s, e) for s, e, _ in _windows(times, 1.0, 0.5)] == [(0, 1), (0.5, 1.5), (1, 2), (1.5, 2.5), (2, 3)]
    assert _windows(times, 0.5, 1.0) == [(0.0, 0.5, [0.0, 0.25]), (1.0, 1.5, [1.0, 1.25]), (2.0, 2.5, [2.0, 2.25])]
    assert [(s, e) for s, e, _ in _windows(times[:10], 1.0, 1.0)] == [(0, 1), (1, 2)]  # 2.0-2.25 s: too short
    assert _windows(times[:3], 1.0, 1.0) == [(0.0, 1.0, [0.0, 0.25, 0.5])]  # shorter than one window: one
    # a stall: the empty windows are jumped over, not yielded
    assert [(s, len(items)) for s, _, items in _windows([0, 0.5, 3.0, 3.5, 4.0], 1.0, 1.0)] == [(0, 2), (3, 2)]


def test_sliding_windows_hold_at_most_one_window_of_frames():
    class Frame:  # a stand-in for a decoded frame that can be watched for release
        pass

    alive = weakref.WeakSet()

    def frames():
        for i in range(300):  # 10 s at 30 frames/s
            frame = Frame()
            alive.add(frame)
            yield i / 30, frame

    most = 0
    for _, _, items in sliding_windows(frames(), 1.0, 0.5):
        del items  # the frames have no reference cycles: released at once, without a gc pass
        most = max(most, len(alive))
    # one window of 30 frames, plus the frame that closed it
    assert most == 31


def test_stream_clips_are_the_clips_of_the_file(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0, fps=25)
    with open_stream(str(path)) as container:
        clips = list(stream_clips(container, path, 1.0, 1.0, 4))
    expected = decode_uniform_clips(path, 1.0, 4)
    assert [(c.start_s, c.end_s) for c in clips] == [(0, 1), (1, 2), (2, 3)]
    assert all(torch.equal(c.frames, e) for c, e in zip(clips, expected, strict=True))


@pytest.mark.parametrize(("window_s", "stride_s", "short_side"), [(1.0, 1.0, None), (1.0, 0.4, None), (0.8, 0.8, 16)])
def test_stream_clips_convert_only_the_kept_frames_to_the_same_pixels(tmp_path, window_s, stride_s, short_side):
    """Each window's kept frames are bit-identical to converting every decoded frame (scaled, when much larger than
    `short_side`: 64 px high against 16) with its own converter, then keeping the window's evenly spaced ones."""
    frames = np.random.default_rng(0).integers(0, 256, (75, 64, 96, 3), dtype=np.uint8)
    path = tmp_path / "noise.mp4"
    write_video(path, frames, 25)  # x264's defaults: B-frames, so frames arrive reordered
    size = {"width": 24, "height": 16, "interpolation": "AREA"} if short_side else {}
    with open_video(path) as container:
        origin = start_time_s(container)
        every = [
            (frame.time, torch.from_numpy(frame.reformat(format="rgb24", **size).to_ndarray()).permute(2, 0, 1))
            for frame in container.decode(container.streams.video[0])
        ]
    expected = [
        (start, end, torch.stack([held[i] for i in subsample_indices(len(held), 4)]))
        for start, end, held in sliding_windows(every, window_s, stride_s, origin)
    ]
    with open_stream(str(path)) as container:
        clips = list(stream_clips(container, path, window_s, stride_s, 4, short_side=short_side))
    assert len(clips) == len(expected) >= 3
    for clip, (start, end, kept) in zip(clips, expected, strict=True):
        assert (clip.start_s, clip.end_s) == (start, end) and torch.equal(clip.frames, kept)


def test_stream_clips_read_mpegts_from_standard_input(monkeypatch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (60, 48, 64, 3), dtype=np.uint8)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mpegts_bytes(frames, 20))))
    with open_stream("-") as container:
        clips = list(stream_clips(container, "-", 1.0, 1.0, 4))
    # MPEG-TS timestamps start at 1.4 s; windows count from the first frame
    assert [(c.start_s, c.end_s) for c in clips] == [(0, 1), (1, 2), (2, 3)]
    assert clips[0].frames.shape == (4, 3, 48, 64)


def test_stream_clips_read_an_http_url(tmp_path):
    write_clip(tmp_path / "a.mp4", seconds=2.0, fps=24)
    with serve_directory(tmp_path) as url, open_stream(f"{url}/a.mp4") as container:
        clips = list(stream_clips(container, url, 1.0, 1.0, 4))
    expected = decode_uniform_clips(tmp_path / "a.mp4", 1.0, 4)
    assert len(clips) == 2 and all(torch.equal(c.frames, e) for c, e in zip(clips, expected, strict=True))


def test_stream_clips_skip_a_window_with_too_few_frames(tmp_path, caplog):
    path = write_clip(tmp_path / "a.mp4", seconds=2.0, fps=6)
    with open_stream(str(path)) as container:
        assert list(stream_clips(container, path, 0.5, 1.0, 4)) == []
    assert caplog.text.count("fewer than num_frames=4") == 1 and str(path) in caplog.text  # one warning a run
    assert "skipped 2 windows" in caplog.text


def test_open_stream_names_what_it_cannot_open(tmp_path, monkeypatch):
    with pytest.raises(VideoError, match="no such file"):
        open_stream(str(tmp_path / "missing.mp4"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not a video" * 100)))
    with pytest.raises(VideoError, match="cannot open the stream") as error:
        open_stream("-")
    assert error.value.path == "-"


def test_constant_clips_overlapping_windows_decode_as_each_window_alone(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0, fps=24)
    clips = decode_constant_clips(path, 1.0, 4, clips_per_video=5)  # starts 0.4 s apart: 1-s windows overlap
    windows = constant_clip_windows(3.0, 1.0, 5)
    assert len(clips) == 5 and clips[0].shape == (4, 3, 48, 64) and clips[0].dtype == torch.uint8
    for clip, window in zip(clips, windows, strict=True):
        alone = _decode_file(path, 1.0, 4, lambda duration, window=window: [window])[0]
        assert torch.equal(clip, alone)
    assert not torch.equal(clips[0], clips[1])


def test_a_timestamp_reset_starts_a_new_run_of_windows_and_drops_no_frame(caplog):
    times = [i / 4 for i in range(12)] + [i / 4 for i in range(8)]  # 3 s, then the source restarts: 2 s more
    windows = _windows(times, 1.0, 1.0)
    assert [(s, e) for s, e, _ in windows] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert [items for _, _, items in windows][3:] == [[0.0, 0.25, 0.5, 0.75], [1.0, 1.25, 1.5, 1.75]]
    assert "timestamps went back from 2.75 s to 0.00 s" in caplog.text and "starts at 3.00 s" in caplog.text


@pytest.fixture
def mpegts_file(tmp_path):
    """3 s at 20 frames/s in MPEG-TS whose timestamps start at 1.4 s, as ffmpeg's MPEG-TS files do."""
    frames = np.random.default_rng(1).integers(0, 256, (60, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "a.ts"
    path.write_bytes(mpegts_bytes(frames, 20, start_s=1.4))
    return path


def test_clips_of_a_file_that_starts_late_cover_it_from_its_start(mpegts_file):
    plans = plan_uniform_clips(mpegts_file, 1.0, 4)
    assert [tuple(round(t, 2) for t in p.window) for p in plans] == [(1.4, 2.4), (2.4, 3.4), (3.4, 4.4)]
    assert plans[0].times[0] == pytest.approx(1.4) and plans[-1].times[-1] == pytest.approx(4.35)


def test_a_stream_and_its_file_cut_the_same_windows(mpegts_file):
    with open_stream(str(mpegts_file)) as container:
        clips = list(stream_clips(container, mpegts_file, 1.0, 1.0, 4))
    expected = decode_uniform_clips(mpegts_file, 1.0, 4)
    assert [(c.start_s, c.end_s) for c in clips] == [(0, 1), (1, 2), (2, 3)]
    assert len(expected) == 3 and all(torch.equal(c.frames, e) for c, e in zip(clips, expected, strict=True))
