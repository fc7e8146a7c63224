import pytest
import torch

from tests.conftest import write_clip
from video_processing.video import (
    VideoError,
    _decode_file,
    constant_clip_windows,
    decode_constant_clips,
    decode_random_clip,
    decode_uniform_clips,
    open_video,
    random_clip_window,
    subsample_indices,
    uniform_clip_windows,
    video_info,
)


def test_video_info(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=2.0, fps=24, size=(64, 48))
    with open_video(path) as container:
        info = video_info(container)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(24)
    assert (info.width, info.height, info.codec) == (64, 48, "h264")


def test_uniform_clip_windows():
    assert uniform_clip_windows(10.0, 2.0) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert uniform_clip_windows(9.0, 2.0) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert uniform_clip_windows(1.5, 2.0) == [(0, 2)]


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


def test_constant_clips_overlapping_windows_decode_as_each_window_alone(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=3.0, fps=24)
    clips = decode_constant_clips(path, 1.0, 4, clips_per_video=5)  # starts 0.4 s apart: 1-s windows overlap
    windows = constant_clip_windows(3.0, 1.0, 5)
    assert len(clips) == 5 and clips[0].shape == (4, 3, 48, 64) and clips[0].dtype == torch.uint8
    for clip, window in zip(clips, windows, strict=True):
        alone = _decode_file(path, 1.0, 4, lambda duration, window=window: [window])[0]
        assert torch.equal(clip, alone)
    assert not torch.equal(clips[0], clips[1])
