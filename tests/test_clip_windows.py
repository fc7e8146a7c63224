"""constant_clip_windows places clips where PyTorchVideo's ConstantClipsPerVideoSampler does."""

import pytest
from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler

from video_processing.data.video import constant_clip_windows


def _pytorchvideo_windows(duration_s: float, clip_duration_s: float, clips_per_video: int) -> list:
    sampler = ConstantClipsPerVideoSampler(clip_duration_s, clips_per_video)
    windows, last_clip_time = [], 0.0
    while True:
        info = sampler(last_clip_time, duration_s, {})
        windows.append((float(info.clip_start_sec), float(info.clip_end_sec)))
        if info.is_last_clip:
            return windows


@pytest.mark.parametrize(
    "duration_s, clip_duration_s, clips_per_video",
    [(10.0, 2.0, 5), (3.0, 1.0, 3), (2.7, 2.0, 3), (7.3, 2.0, 1), (1.5, 2.0, 3)],
)
def test_matches_pytorchvideo_sampler(duration_s, clip_duration_s, clips_per_video):
    ours = constant_clip_windows(duration_s, clip_duration_s, clips_per_video)
    theirs = _pytorchvideo_windows(duration_s, clip_duration_s, clips_per_video)
    assert len(ours) == len(theirs) == clips_per_video
    flat = [t for window in ours for t in window]
    assert flat == pytest.approx([t for window in theirs for t in window])


def test_evenly_spaced_starts_and_fixed_length():
    windows = constant_clip_windows(10.0, 2.0, 4)
    assert [start for start, _ in windows] == pytest.approx([0.0, 2.0, 4.0, 6.0])
    assert all(end - start == pytest.approx(2.0) for start, end in windows)


def test_needs_a_clip():
    with pytest.raises(ValueError, match="clips_per_video"):
        constant_clip_windows(10.0, 2.0, 0)
