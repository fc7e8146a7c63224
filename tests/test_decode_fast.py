"""video.py's fast paths give what a plain decode gives, pixel for pixel: skipping frames nobody refers to, and
one RGB converter for all frames."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from video_processing.data.video import (
    decode_random_clip,
    decode_uniform_clips,
    iter_rgb_frames,
    open_video,
    random_clip_window,
    subsample_indices,
    write_video,
)
from video_processing.synthetic import render_video


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


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory):
    """3 s at 30 fps with a keyframe every second and B-frames (x264's default), moving content."""
    path = tmp_path_factory.mktemp("moving") / "moving.mp4"
    frames = render_video("spinning", np.random.default_rng(0), 96, 72, 90, 30)
    write_video(path, frames, fps=30, keyframe_interval_s=1.0)
    return path


def test_random_clips_equal_a_full_decode(moving_video):
    with av.open(str(moving_video)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
    for seed in range(6):
        clip = decode_random_clip(moving_video, 1.0, 8, generator=torch.Generator().manual_seed(seed))
        start, end = random_clip_window(duration, 1.0, torch.Generator().manual_seed(seed))
        inside = [rgb for t, rgb in decoded if start <= t < end]
        expected = np.stack([inside[i] for i in subsample_indices(len(inside), 8)])
        np.testing.assert_array_equal(clip.permute(0, 2, 3, 1).numpy(), expected, err_msg=f"window {start:.2f} s")
