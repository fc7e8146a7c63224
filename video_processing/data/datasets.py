"""The two map-style datasets: one random clip per training video, every clip (or view) of each evaluation video.

Each reads a video's clips through one `read` callable (`reads.py`), whatever holds the video and whatever the
stage wants: a file decoded and transformed in the loader worker, a shard's bytes (`shards.py` makes its items with
`read_item` and the same reads), or a plan for the GPU decoder. As in PyTorchVideo's `LabeledVideoDataset`, what
changes between stages is the pluggable part (there the clip sampler, here the read), not the dataset.

Map-style (rather than PyTorchVideo's iterable dataset) gives loaders a length, so progress bars show a total, and
lets Lightning inject a `DistributedSampler` under DDP, so every rank reads a disjoint share. Items and batches are
described in `items.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from video_processing.data.items import Clips, empty_item, make_item
from video_processing.data.layouts import VideoRecord
from video_processing.data.video import VideoError, VideoSource

# How many following videos a training item tries when its own cannot be read, before giving up.
MAX_SUBSTITUTES = 16

Read = Callable[[VideoSource], Clips]  # a video -> its N clips, stacked (N, C, T, H, W) or planned; VideoError


class TooManyBadVideos(RuntimeError):
    """Many consecutive videos could not be read: the dataset, not a file, is broken."""


def video_name(path: Path, root: Path | None) -> str:
    """How items name a video: its path relative to the dataset folder `root`, else its file name."""
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else path.name


def read_item(read: Read, video: VideoSource, *, empty: Clips, label: int, video_name: str, video_index: int) -> dict:
    """The item of `video`'s clips as `read` gives them; a video that cannot be read gives an item of `empty` clips
    that names it in "skipped"."""
    try:
        clips = read(video)
    except VideoError as e:
        return empty_item(empty, e.path, e.reason)
    return make_item(clips, label=label, video_name=video_name, video_index=video_index)


class RandomClipDataset(Dataset):
    """One item per video and access, of the clip `read` gives (a random one, for training).

    A video that cannot be read is replaced by the next readable one in the list (so batches stay full) and reported
    in the item's "skipped" list. `root`: the dataset folder the items' video names are relative to.
    """

    def __init__(self, records: list[VideoRecord], read: Read, *, root: Path | None = None):
        self.records, self.read, self.root = records, read, root

    def __len__(self) -> int:
        return len(self.records)

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


class WholeVideoDataset(Dataset):
    """One item per video of all the clips `read` gives (every clip, or the test's views), in order.

    A video that cannot be read gives an item of `empty` clips (`items.no_clips`, or no plans) naming it in
    "skipped": evaluation takes every video once, so none is replaced.
    """

    def __init__(self, records: list[VideoRecord], read: Read, *, empty: Clips, root: Path | None = None):
        self.records, self.read, self.empty, self.root = records, read, empty, root

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        name = video_name(record.path, self.root)
        return read_item(
            self.read, record.path, empty=self.empty, label=record.label, video_name=name, video_index=index
        )
