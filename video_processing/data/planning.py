"""Planning clips in loader workers, for a decoder in the main process (`gpu_decode.py`): no frame is decoded here.

A plan (`video.PlannedClip`) names the file, the kept frames' times (from packet timestamps), and for training the
crop box and flip. Workers draw random numbers in the order the CPU path does (window, then scale and crop, then
flip), so with the same seed both paths sample the same clips. Items hold their plans as their "video" (`items.py`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from video_processing.data.datasets import RandomClipItems, WholeVideoItems
from video_processing.data.layouts import VideoRecord
from video_processing.data.transforms import RandomShortSideScaleCrop
from video_processing.data.video import PlannedClip, plan_random_clip, plan_uniform_clips


class TrainClipPlanner:
    """A clip's plan -> the plan with the train preset's random crop box and flip, drawn as the preset draws them."""

    def __init__(self, *, crop_size: int, min_short_side: int, max_short_side: int, hflip_prob: float):
        self.scale_crop = RandomShortSideScaleCrop(crop_size, min_short_side, max_short_side)
        self.hflip_prob = hflip_prob

    def __call__(self, clip: PlannedClip) -> PlannedClip:
        box = self.scale_crop.crop_box(clip.height, clip.width)
        flip = bool(torch.rand(1) < self.hflip_prob)  # as v2.RandomHorizontalFlip decides
        return dataclasses.replace(clip, box=box, flip=flip)


class PlannedRandomClipDataset(RandomClipItems):
    """`RandomClipDataset`'s clip, planned: each item's "video" is a list of one training plan."""

    def __init__(
        self,
        records: list[VideoRecord],
        *,
        clip_duration_s: float,
        num_frames: int,
        planner: TrainClipPlanner,
        root: Path | None = None,
    ):
        super().__init__(records, clip_duration_s=clip_duration_s, num_frames=num_frames, root=root)
        self.planner = planner

    def read(self, path: Path) -> list[PlannedClip]:
        return [self.planner(plan_random_clip(path, self.clip_duration_s, self.num_frames))]


class PlannedUniformClipsDataset(WholeVideoItems):
    """`UniformClipsDataset`'s clips, planned: each item's "video" is the list of the video's eval plans."""

    def read(self, path: Path) -> list[PlannedClip]:
        return plan_uniform_clips(path, self.clip_duration_s, self.num_frames)  # the eval preset draws nothing

    def no_clips(self) -> list:
        return []
