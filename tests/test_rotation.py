"""One rotation rule for every decoder: a video with a display rotation (a phone's portrait clip) is decoded upright.

torchcodec applies the stream's display matrix itself; PyAV's clips and the GPU path's clip plans follow it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from video_processing.data import video
from video_processing.data.decoders import decode_planned, torchcodec_uniform_clips
from video_processing.data.reads import TrainClipPlanner
from video_processing.data.video import (
    decode_uniform_clips,
    iter_rgb_frames,
    open_video,
    plan_random_clip,
    plan_uniform_clips,
)
from video_processing.synthetic import CLASSES, render_video

WIDTH, HEIGHT, FPS = 64, 48, 15  # as stored; a quarter turn displays 48 wide, 64 high


def write_rotated(path: Path, degrees: int) -> Path:
    """A 2 s H.264 clip whose display matrix turns it `degrees` counterclockwise (0: none), same frames each time."""
    frames = render_video(CLASSES[0], np.random.default_rng(0), WIDTH, HEIGHT, 2 * FPS, FPS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if degrees:
            stream.set_display_rotation(degrees)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("rotated")
    return {degrees: write_rotated(root / f"rotated_{degrees}.mp4", degrees) for degrees in (0, 90, 180, 270)}


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_pyav_clips_are_the_stored_frames_turned_as_displayed(videos, degrees, monkeypatch):
    rotated = decode_uniform_clips(videos[degrees], 1.0, 4)
    # the same file's frames as stored: two encodes of the same frames are not always byte-equal
    monkeypatch.setattr(video, "_quarter_turns", lambda frame: 0)
    stored = decode_uniform_clips(videos[degrees], 1.0, 4)
    assert len(rotated) == len(stored) == 2
    for clip, plain in zip(rotated, stored, strict=True):
        assert torch.equal(clip, torch.rot90(plain, degrees // 90, dims=(2, 3)))  # (T, C, H, W), counterclockwise


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_pyav_and_torchcodec_give_the_same_rotated_clips(videos, degrees, torchcodec_ffmpeg):
    pyav, torchcodec = decode_uniform_clips(videos[degrees], 1.0, 4), torchcodec_uniform_clips(videos[degrees], 1.0, 4)
    assert len(pyav) == len(torchcodec) == 2
    for a, b in zip(pyav, torchcodec, strict=True):
        assert a.shape == b.shape == (4, 3, *((WIDTH, HEIGHT) if degrees % 180 else (HEIGHT, WIDTH)))
        assert (a.int() - b.int()).abs().max() <= 1  # one grey level, as tests/test_decoders.py allows


def test_a_plan_states_the_displayed_size_and_its_crop_box_fits_the_decoded_frames(videos, torchcodec_ffmpeg):
    plan = plan_random_clip(videos[90], 1.0, 4)
    assert (plan.height, plan.width) == (WIDTH, HEIGHT)  # portrait, as displayed
    assert [(p.height, p.width) for p in plan_uniform_clips(videos[90], 1.0, 4)] == [(WIDTH, HEIGHT)] * 2
    frames = decode_planned([plan])[0]
    assert frames.shape[-2:] == (plan.height, plan.width)
    planner = TrainClipPlanner(crop_size=32, min_short_side=40, max_short_side=48, hflip_prob=0.5)
    for _ in range(20):  # random boxes: each lies inside the displayed frame
        box = planner(plan).box
        assert 0 <= box.top <= box.top + box.side <= plan.height and 0 <= box.left <= box.left + box.side <= plan.width
    unrotated = plan_random_clip(videos[0], 1.0, 4)
    assert (unrotated.height, unrotated.width) == (HEIGHT, WIDTH)


def test_iter_rgb_frames_turns_the_frames_after_scaling_them_as_stored(videos):
    with open_video(videos[90]) as container:
        frames = list(iter_rgb_frames(container, videos[90], (WIDTH // 2, HEIGHT // 2)))
    assert len(frames) == 2 * FPS and frames[0].shape == (WIDTH // 2, HEIGHT // 2, 3)
