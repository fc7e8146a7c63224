"""The reads a dataset plugs in (`datasets.py`): a video, a path or a shard's bytes, -> its clips for one stage.

Decoded and transformed in the loader worker: `random_clip` (training), `uniform_clips` (validation: every
back-to-back clip), `test_views` (the multi-view test: evenly spaced clips x crops). Planned there for a decoder in
the main process (`gpu_decode.py`), decoding nothing: `planned_clip` (training) and `video.plan_uniform_clips`. A
plan (`video.PlannedClip`) names the file, the kept frames' times (from packet timestamps), and for training the
crop box and flip. The planner draws random numbers in the order the train preset does (window, then scale and
crop, then flip), so with the same seed both paths sample the same clips.

Each read takes the video first and its settings as keywords: `functools.partial` fixes them, and the partial
pickles into loader workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from video_processing.data.transforms import RandomShortSideScaleCrop
from video_processing.data.video import PlannedClip, VideoSource, decode_constant_clips, plan_random_clip

Transform = Callable[[torch.Tensor], torch.Tensor]
# A decoder's function (`decoders.clip_decoders`): (video, clip_duration_s, num_frames) -> frames, or clips.
Decode = Callable[[VideoSource, float, int], torch.Tensor | list[torch.Tensor]]


def random_clip(
    video: VideoSource, *, decode: Decode, transform: Transform, clip_duration_s: float, num_frames: int
) -> torch.Tensor:
    """One random clip of `clip_duration_s`, `num_frames` frames, transformed: (1, C, T, H, W)."""
    return transform(decode(video, clip_duration_s, num_frames)).unsqueeze(0)


def uniform_clips(
    video: VideoSource, *, decode: Decode, transform: Transform, clip_duration_s: float, num_frames: int
) -> torch.Tensor:
    """Every back-to-back clip of `clip_duration_s`, each transformed: (N, C, T, H, W)."""
    return torch.stack([transform(clip) for clip in decode(video, clip_duration_s, num_frames)])


def test_views(
    video: VideoSource, *, transform: Transform, clip_duration_s: float, num_frames: int, clips_per_video: int
) -> torch.Tensor:
    """`clips_per_video` evenly spaced clips x the crops `transform` takes (`multi_view_preset`), decoded once with
    PyAV: (clips_per_video x crops, C, T, H, W), clip by clip, the crops of a clip together."""
    clips = decode_constant_clips(video, clip_duration_s, num_frames, clips_per_video)
    return torch.cat([transform(clip) for clip in clips])


class TrainClipPlanner:
    """A clip's plan -> the plan with the train preset's random crop box and flip, drawn as the preset draws them."""

    def __init__(self, *, crop_size: int, min_short_side: int, max_short_side: int, hflip_prob: float):
        self.scale_crop = RandomShortSideScaleCrop(crop_size, min_short_side, max_short_side)
        self.hflip_prob = hflip_prob

    def __call__(self, clip: PlannedClip) -> PlannedClip:
        box = self.scale_crop.crop_box(clip.height, clip.width)
        flip = bool(torch.rand(1) < self.hflip_prob)  # as v2.RandomHorizontalFlip decides
        return dataclasses.replace(clip, box=box, flip=flip)


def planned_clip(
    video: VideoSource, *, planner: TrainClipPlanner, clip_duration_s: float, num_frames: int
) -> list[PlannedClip]:
    """`random_clip`'s clip, planned: a list of one training plan."""
    return [planner(plan_random_clip(video, clip_duration_s, num_frames))]
