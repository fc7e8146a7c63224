"""RGB conversion in video.py: one reformatter for all frames gives PyAV's per-frame conversion, pixel for pixel."""

from __future__ import annotations

import av
import numpy as np
import pytest

from video_processing.video import decode_uniform_clips, iter_rgb_frames, open_video, subsample_indices, write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("rgb") / "clip.mp4"
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    write_video(path, frames, fps=10)
    return path


def per_frame_rgb(path, **kwargs) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24", **kwargs) for frame in container.decode(video=0)]


def test_decoded_clip_equals_per_frame_conversion(video):
    (clip,) = decode_uniform_clips(video, clip_duration_s=2.0, num_frames=4)
    expected = np.stack([per_frame_rgb(video)[i] for i in subsample_indices(20, 4)])
    np.testing.assert_array_equal(clip.permute(0, 2, 3, 1).numpy(), expected)


def test_streamed_scaled_frames_equal_per_frame_conversion(video):
    container = open_video(video)
    try:
        frames = list(iter_rgb_frames(container, video, (32, 24)))
    finally:
        container.close()
    expected = per_frame_rgb(video, width=32, height=24, interpolation="AREA")
    assert len(frames) == 20
    np.testing.assert_array_equal(np.stack(frames), np.stack(expected))
