"""Map-style datasets of clips decoded in loader workers: one random clip per training video, every clip of each
validation video, the multi-view test's clips x crops.

Map-style (rather than PyTorchVideo's iterable `LabeledVideoDataset`) gives loaders a length, so progress bars
show a total, and lets Lightning inject a `DistributedSampler` under DDP, so every rank reads a disjoint share.
Items and batches are described in `items.py`. Two bases say how a video becomes an item (`RandomClipItems`:
unreadable videos replaced by the next; `WholeVideoItems`: unreadable videos give an empty item); their
subclasses say how a video's clips are read (`read`): decoded and transformed here, planned in `planning.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from video_processing.data.items import Clips, empty_item, make_item, no_clips
from video_processing.data.layouts import VideoRecord
from video_processing.data.video import VideoError, decode_constant_clips, decode_random_clip, decode_uniform_clips

# How many following videos a training item tries when its own cannot be read, before giving up.
MAX_SUBSTITUTES = 16

Transform = Callable[[torch.Tensor], torch.Tensor]


class TooManyBadVideos(RuntimeError):
    """Many consecutive videos could not be read: the dataset, not a file, is broken."""


def video_name(path: Path, root: Path | None) -> str:
    """How items name a video: its path relative to the dataset folder `root`, else its file name."""
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else path.name


class ClipItems(Dataset, ABC):
    """Items of the clips of `clip_duration_s` and `num_frames` frames of videos; subclasses `read` a video's clips."""

    def __init__(
        self, records: list[VideoRecord], *, clip_duration_s: float, num_frames: int, root: Path | None = None
    ):
        self.records = records
        self.clip_duration_s = clip_duration_s
        self.num_frames = num_frames
        self.root = root

    def __len__(self) -> int:
        return len(self.records)

    @abstractmethod
    def read(self, path: Path) -> Clips:
        """The video's clips: (N, C, T, H, W) pixels, or a list of N plans. Raises VideoError."""


class RandomClipItems(ClipItems):
    """One item of one clip per video and access (`read` gives one).

    A video that cannot be read is replaced by the next readable one in the list (so batches stay full) and
    reported in the item's "skipped" list.
    """

    def __getitem__(self, index: int) -> dict:
        skipped = []
        for attempt in range(min(MAX_SUBSTITUTES, len(self.records))):
            video_index = (index + attempt) % len(self.records)
            record = self.records[video_index]
            try:
                clips = self.read(record.path)
            except VideoError as e:
                skipped.append((e.path, e.reason))
                continue
            name = video_name(record.path, self.root)
            return make_item(clips, label=record.label, video_name=name, video_index=video_index, skipped=skipped)
        reasons = "\n  ".join(f"{path}: {reason}" for path, reason in skipped)
        raise TooManyBadVideos(
            f"{len(skipped)} consecutive videos could not be read; check the dataset with "
            f"`python -m video_processing.check_data`:\n  {reasons}"
        )


class WholeVideoItems(ClipItems):
    """One item of all of a video's clips, deterministic; a video that cannot be read gives an empty item."""

    @abstractmethod
    def no_clips(self) -> Clips:
        """The clips of a video that could not be read: none."""

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        try:
            clips = self.read(record.path)
        except VideoError as e:
            return empty_item(self.no_clips(), e.path, e.reason)
        return make_item(clips, label=record.label, video_name=video_name(record.path, self.root), video_index=index)


class RandomClipDataset(RandomClipItems):
    """One random clip of `clip_duration_s` per video and access, `num_frames` frames, decoded and transformed.

    `decode` is the decoder's function (`decoders.clip_decoders`): (path, clip_duration_s, num_frames) -> frames.
    """

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
        super().__init__(records, clip_duration_s=clip_duration_s, num_frames=num_frames, root=root)
        self.transform = transform
        self.decode = decode

    def read(self, path: Path) -> torch.Tensor:
        return self.transform(self.decode(path, self.clip_duration_s, self.num_frames)).unsqueeze(0)


class UniformClipsDataset(WholeVideoItems):
    """Every back-to-back clip of `clip_duration_s` of each video, decoded and transformed.

    `decode` is the decoder's function (`decoders.clip_decoders`): (path, clip_duration_s, num_frames) -> clips.
    """

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
        super().__init__(records, clip_duration_s=clip_duration_s, num_frames=num_frames, root=root)
        self.crop_size = crop_size
        self.transform = transform
        self.decode = decode

    def read(self, path: Path) -> torch.Tensor:
        clips = self.decode(path, self.clip_duration_s, self.num_frames)
        return torch.stack([self.transform(clip) for clip in clips])

    def no_clips(self) -> torch.Tensor:
        return no_clips(self.num_frames, self.crop_size)


class MultiViewClipsDataset(UniformClipsDataset):
    """`clips_per_video` evenly spaced clips of each video x the crops its transform takes: the test views.

    Each clip window is decoded once, with PyAV; `transform` turns a clip into (crops, C, T, H, W)
    (`multi_view_preset`). Views come clip by clip, the crops of a clip together: (clips_per_video x crops, C, T,
    H, W) per video.
    """

    def __init__(self, records: list[VideoRecord], *, clips_per_video: int, **kwargs):
        super().__init__(records, **kwargs)
        self.clips_per_video = clips_per_video

    def read(self, path: Path) -> torch.Tensor:
        clips = decode_constant_clips(path, self.clip_duration_s, self.num_frames, self.clips_per_video)
        return torch.cat([self.transform(clip) for clip in clips])
