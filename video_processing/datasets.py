"""Map-style datasets of clips: one random clip per training video, every clip of each validation video.

Map-style (rather than PyTorchVideo's iterable `LabeledVideoDataset`) gives loaders a length, so progress bars
show a total, and lets Lightning inject a `DistributedSampler` under DDP, so every rank reads a disjoint share.

Every item is a dict whose "video" holds a stack of clips (N, C, T, H, W): N = 1 for training, N = the number of
clips for validation, N = clips x crops for the multi-view test, N = 0 for a video that could not be read.
`collate_clips` concatenates items into a batch.
A video that cannot be read is reported in the item's "skipped" list as (path, reason) and never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import Dataset

from video_processing.layouts import VideoRecord
from video_processing.video import VideoError, decode_constant_clips, decode_random_clip, decode_uniform_clips

# How many following videos a training item tries when its own cannot be read, before giving up.
MAX_SUBSTITUTES = 16

Transform = Callable[[torch.Tensor], torch.Tensor]


class TooManyBadVideos(RuntimeError):
    """Many consecutive videos could not be read: the dataset, not a file, is broken."""


def _video_name(path: Path, root: Path | None) -> str:
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else path.name


class RandomClipDataset(Dataset):
    """One random clip of `clip_duration_s` per video and access, `num_frames` frames, transformed.

    A video that cannot be read is replaced by the next readable one in the list (so batches stay full) and
    reported in the item's "skipped" list.
    """

    item_key = "video"  # what an item's clips are held under; the planned datasets of gpu_decode.py hold "plans"

    def __init__(
        self,
        records: list[VideoRecord],
        *,
        clip_duration_s: float,
        num_frames: int,
        transform: Transform,
        root: Path | None = None,
        decode: Callable = decode_random_clip,
    ):
        self.records = records
        self.clip_duration_s = clip_duration_s
        self.num_frames = num_frames
        self.transform = transform
        self.root = root
        self.decode = decode  # (path, clip_duration_s, num_frames) -> what `transform` takes

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        skipped = []
        for attempt in range(min(MAX_SUBSTITUTES, len(self.records))):
            video_index = (index + attempt) % len(self.records)
            record = self.records[video_index]
            try:
                clip = self.decode(record.path, self.clip_duration_s, self.num_frames)
            except VideoError as e:
                skipped.append((e.path, e.reason))
                continue
            return {
                self.item_key: self._views([clip]),
                "label": torch.tensor([record.label]),
                "video_name": [_video_name(record.path, self.root)],
                "video_index": torch.tensor([video_index]),
                "skipped": skipped,
            }
        reasons = "\n  ".join(f"{path}: {reason}" for path, reason in skipped)
        raise TooManyBadVideos(
            f"{len(skipped)} consecutive videos could not be read; check the dataset with "
            f"`python -m video_processing.check_data`:\n  {reasons}"
        )

    def _views(self, clips: list) -> torch.Tensor:
        """The item's clips, transformed: (N, C, T, H, W)."""
        return torch.stack([self.transform(clip) for clip in clips])


class UniformClipsDataset(Dataset):
    """Every back-to-back clip of `clip_duration_s` of each video, transformed: deterministic."""

    def __init__(
        self,
        records: list[VideoRecord],
        *,
        clip_duration_s: float,
        num_frames: int,
        crop_size: int,
        transform: Transform,
        root: Path | None = None,
        decode: Callable = decode_uniform_clips,
    ):
        self.records = records
        self.clip_duration_s = clip_duration_s
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.transform = transform
        self.root = root
        self.decode = decode  # (path, clip_duration_s, num_frames) -> a list of what `transform` takes

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            clips = self.decode(record.path, self.clip_duration_s, self.num_frames)
        except VideoError as e:
            return {
                self.item_key: self._no_views(),
                "label": torch.empty(0, dtype=torch.long),
                "video_name": [],
                "video_index": torch.empty(0, dtype=torch.long),
                "skipped": [(e.path, e.reason)],
            }
        views = self._views(clips)
        n = len(views)
        return {
            self.item_key: views,
            "label": torch.full((n,), record.label),
            "video_name": [_video_name(record.path, self.root)] * n,
            "video_index": torch.full((n,), index),
            "skipped": [],
        }

    item_key = RandomClipDataset.item_key
    _views = RandomClipDataset._views

    def _no_views(self) -> torch.Tensor:
        """The clips of a video that could not be read: none."""
        return torch.empty(0, 3, self.num_frames, self.crop_size, self.crop_size)


class MultiViewClipsDataset(UniformClipsDataset):
    """`clips_per_video` evenly spaced clips of each video x the crops its transform takes: the test views.

    Each clip window is decoded once, with PyAV; `transform` turns a clip into (crops, C, T, H, W)
    (`multi_view_preset`). Views come clip by clip, the crops of a clip together: (clips_per_video x crops, C, T,
    H, W) per video.
    """

    def __init__(self, records: list[VideoRecord], *, clips_per_video: int, **kwargs):
        if clips_per_video < 1:
            raise ValueError(f"test_clips={clips_per_video}: the test needs 1 clip per video or more (zoo: 10)")
        super().__init__(records, decode=partial(decode_constant_clips, clips_per_video=clips_per_video), **kwargs)
        self.clips_per_video = clips_per_video

    def _views(self, clips: list) -> torch.Tensor:
        return torch.cat([self.transform(clip) for clip in clips])


def collate_clips(items: list[dict]) -> dict:
    """Concatenate items' clips into one batch: video (B, C, T, H, W), label (B,) long, and lists.

    Items of planned clips (see `gpu_decode.py`) hold "plans" instead of "video"; the batch holds their list.
    """
    batch = {
        "label": torch.cat([item["label"] for item in items]).long(),
        "video_name": [name for item in items for name in item["video_name"]],
        "video_index": torch.cat([item["video_index"] for item in items]).long(),
        "skipped": [entry for item in items for entry in item["skipped"]],
    }
    if "plans" in items[0]:
        return {"plans": [plan for item in items for plan in item["plans"]], **batch}
    # an unreadable video's empty float stack would turn uint8 clips into float: leave empty stacks out
    videos = [item["video"] for item in items if len(item["video"])] or [items[0]["video"]]
    return {"video": torch.cat(videos), **batch}
