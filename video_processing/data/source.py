"""What every source of clips shares: the clip settings, the `Source` interface, the checks of clips against videos.

A source is where a data module's clips come from: video files decoded in loader workers (`file_sources.py`),
video files planned in workers and decoded on a device (`file_sources.PlannedSource`), or shards
(`shard_source.py`). It owns its datasets (built when a stage first needs them), its loaders, its resume state
and the checks of its settings: what cannot work together is refused when the source is made, naming what works
instead. `KineticsDataModule` chooses one from its arguments and hands it everything but the Lightning hooks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

from video_processing.data.datasets import Transform
from video_processing.data.transforms import eval_preset, multi_view_preset, train_preset
from video_processing.data.video import VideoInfo

# The datasets a Trainer stage uses, built in `setup` (others are built when first asked for).
STAGE_SETS = {"fit": ("train_set", "val_set"), "validate": ("val_set",), "test": ("test_set",), "predict": ("val_set",)}


@dataclass(frozen=True)
class ClipSettings:
    """How every source cuts, transforms and batches clips (the data module's arguments of the same names)."""

    clip_duration: float
    num_frames: int
    crop_size: int
    min_short_side: int
    max_short_side: int
    hflip_prob: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    uint8: bool  # the presets leave clips uint8 (`KineticsDataModule.uint8_batches`)
    test_clips: int
    test_crops: int
    batch_size: int
    num_workers: int
    loader_timeout_s: float
    augment: str | None = None  # the training clips' RandAugment or TrivialAugmentWide (`transforms.py`)

    def train_transform(self) -> Transform:
        return train_preset(
            crop_size=self.crop_size,
            min_short_side=self.min_short_side,
            max_short_side=self.max_short_side,
            hflip_prob=self.hflip_prob,
            mean=self.mean,
            std=self.std,
            uint8=self.uint8,
            augment=self.augment,
        )

    def eval_transform(self) -> Transform:
        return eval_preset(
            crop_size=self.crop_size, short_side=self.min_short_side, mean=self.mean, std=self.std, uint8=self.uint8
        )

    def test_transform(self) -> Transform:
        return multi_view_preset(
            crop_size=self.crop_size,
            short_side=self.min_short_side,
            num_crops=self.test_crops,
            mean=self.mean,
            std=self.std,
            uint8=self.uint8,
        )

    def check_test_views(self) -> None:
        """Raise ValueError, naming the fix, when the test stage would have no views of a video."""
        if self.test_clips < 1 or self.test_crops < 1:
            raise ValueError(
                f"test_clips={self.test_clips} x test_crops={self.test_crops} leave the test no view of a video: "
                "pass --data.test_clips 10 --data.test_crops 3 (the model zoo's protocol; 1 x 1 is the quickest)"
            )


class Source(ABC):
    """Datasets and loaders of one kind of storage; `train_set`, `val_set`, `test_set` are built on first use."""

    def __init__(self, location: str | Path, clips: ClipSettings):
        self.location = location
        self.clips = clips
        self.warned_paths: set[str] = set()  # files warned about as skipped, once over all loaders

    @property
    @abstractmethod
    def classes(self) -> list[str]: ...

    @abstractmethod
    def headers(self) -> list[VideoInfo]:
        """Header facts of a sample of the videos, for the clip checks."""

    @abstractmethod
    def make_train_set(self) -> Dataset: ...

    @abstractmethod
    def make_val_set(self) -> Dataset: ...

    @abstractmethod
    def make_test_set(self) -> Dataset: ...

    @abstractmethod
    def train_loader(self) -> DataLoader: ...

    @abstractmethod
    def val_loader(self) -> DataLoader:
        """Every clip of whole videos, each video once, in order (under DDP each rank takes whole videos)."""

    @abstractmethod
    def test_loader(self) -> DataLoader:
        """Every view of whole videos, as `val_loader` takes them."""

    @cached_property
    def train_set(self) -> Dataset:
        return self.make_train_set()

    @cached_property
    def val_set(self) -> Dataset:
        return self.make_val_set()

    @cached_property
    def test_set(self) -> Dataset:
        self.clips.check_test_views()  # asked for only by the test stage: test_clips=0 does not stop a fit
        return self.make_test_set()

    def setup(self, stage: str | None) -> None:
        """Check that clips fit the videos, then build the stage's datasets (before any loader worker starts)."""
        check_clips_fit(self.headers(), self.clips.clip_duration, self.clips.num_frames, self.location)
        for name in STAGE_SETS.get(stage, STAGE_SETS["fit"]):
            getattr(self, name)

    @abstractmethod
    def state_dict(self) -> dict:
        """What a checkpoint keeps to resume the training loader mid-epoch."""

    @abstractmethod
    def load_state_dict(self, state_dict: dict) -> None:
        """Resume from what `state_dict` gave."""


def check_clips_fit(infos: list[VideoInfo], clip_duration_s: float, num_frames: int, data_path: str | Path) -> None:
    """Raise ValueError, naming the argument and the fix, when no sampled video holds a full clip."""
    if not infos:
        raise ValueError(
            f"none of the videos sampled from {data_path} can be opened; find out why with "
            f"`python -m video_processing.check_data {data_path}`"
        )
    longest_s = max(info.duration_s for info in infos)
    if clip_duration_s > longest_s:
        raise ValueError(
            f"clip_duration={clip_duration_s} s is longer than every one of {len(infos)} videos sampled from "
            f"{data_path} (the longest lasts {longest_s:.2f} s): pass --data.clip_duration "
            f"{math.floor(longest_s * 10) / 10} or less"
        )
    most_frames = max(min(info.duration_s, clip_duration_s) * info.fps for info in infos)
    if most_frames < num_frames:
        raise ValueError(
            f"num_frames={num_frames} is more than a clip of {clip_duration_s} s holds in any of "
            f"{len(infos)} videos sampled from {data_path} (at most {most_frames:.0f} frames): lower "
            "--data.num_frames or raise --data.clip_duration"
        )
