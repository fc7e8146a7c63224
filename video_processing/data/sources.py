"""Where a data module's clips come from: the clip settings, the `Source` interface, and its three kinds.

A source is video files decoded in loader workers (`FileSource`), video files planned in workers and decoded on a
device (`PlannedSource`), or shards (`ShardSource`). It owns its datasets (built when a stage first needs them),
its loaders, its resume state and the checks of its settings: what cannot work together is refused when the
source is made, naming what works instead. `KineticsDataModule` chooses one from its arguments and hands it
everything but the Lightning hooks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from video_processing.data import shards
from video_processing.data.datasets import MultiViewClipsDataset, RandomClipDataset, Transform, UniformClipsDataset
from video_processing.data.decoders import clip_decoders
from video_processing.data.gpu_decode import PlanDecodingDataLoader, PlannedClipDecoder
from video_processing.data.items import collate_clips
from video_processing.data.layouts import Dataset as Layout
from video_processing.data.layouts import LayoutError, check_splits, load_dataset
from video_processing.data.loaders import HintingDataLoader
from video_processing.data.planning import PlannedRandomClipDataset, PlannedUniformClipsDataset, TrainClipPlanner
from video_processing.data.samplers import BalancedDistributedSampler
from video_processing.data.transforms import eval_preset, multi_view_preset, train_preset
from video_processing.data.video import VideoError, VideoInfo, open_video, video_info

# The datasets a Trainer stage uses, built in `setup` (others are built when first asked for).
STAGE_SETS = {"fit": ("train_set", "val_set"), "validate": ("val_set",), "test": ("test_set",), "predict": ("val_set",)}
# Headers read in setup to check that clips fit the videos: enough to catch a wrong unit, quick on Kinetics.
HEADER_SAMPLE_SIZE = 32


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

    def train_transform(self) -> Transform:
        return train_preset(
            crop_size=self.crop_size,
            min_short_side=self.min_short_side,
            max_short_side=self.max_short_side,
            hflip_prob=self.hflip_prob,
            mean=self.mean,
            std=self.std,
            uint8=self.uint8,
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


class FileSource(Source):
    """Video files in a layout of `layouts.py`, decoded and transformed in loader workers by `decoder`."""

    def __init__(
        self, data_path: Path, clips: ClipSettings, *, decoder: str, balanced_sampling: bool, missing_hint: str
    ):
        super().__init__(data_path, clips)
        self.decoder = decoder
        self.balanced_sampling = balanced_sampling
        self.missing_hint = missing_hint
        self.clip_loader = HintingDataLoader  # the loader of the training and validation clips

    @cached_property
    def dataset(self) -> Layout:
        """Both splits and the class list (files are listed, not opened); LayoutError naming the path and fix."""
        if not self.location.is_dir():
            raise LayoutError(
                f"data_path {self.location} does not exist. {self.missing_hint} to a dataset folder; "
                "`python -m video_processing.synthetic --out data/synthetic` makes a small one."
            )
        dataset = load_dataset(self.location)
        check_splits(dataset, self.location)
        return dataset

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    def headers(self) -> list[VideoInfo]:
        """Headers of up to HEADER_SAMPLE_SIZE videos spread over both splits (unreadable ones left out).

        Each file is opened and closed here, in the main process before any loader worker starts, so no open
        container is ever inherited by a forked worker.
        """
        records = self.dataset.train + self.dataset.val
        infos = []
        for record in records[:: max(1, len(records) // HEADER_SAMPLE_SIZE)][:HEADER_SAMPLE_SIZE]:
            try:
                container = open_video(record.path)
            except VideoError:
                continue
            try:
                infos.append(video_info(container))
            finally:
                container.close()
        return infos

    def make_train_set(self) -> Dataset:
        return RandomClipDataset(
            self.dataset.train,
            clip_duration_s=self.clips.clip_duration,
            num_frames=self.clips.num_frames,
            root=self.location,
            transform=self.clips.train_transform(),
            decode=clip_decoders(self.decoder)[0],
        )

    def make_val_set(self) -> Dataset:
        return UniformClipsDataset(
            self.dataset.val,
            clip_duration_s=self.clips.clip_duration,
            num_frames=self.clips.num_frames,
            crop_size=self.clips.crop_size,
            root=self.location,
            transform=self.clips.eval_transform(),
            decode=clip_decoders(self.decoder)[1],
        )

    def make_test_set(self) -> Dataset:
        return MultiViewClipsDataset(
            self.dataset.val,
            clips_per_video=self.clips.test_clips,
            clip_duration_s=self.clips.clip_duration,
            num_frames=self.clips.num_frames,
            crop_size=self.clips.crop_size,
            root=self.location,
            transform=self.clips.test_transform(),
        )

    def train_loader(self) -> DataLoader:
        if self.balanced_sampling:
            # rank-aware itself: Lightning would otherwise wrap a custom sampler in a DistributedSampler
            sampler = BalancedDistributedSampler([record.label for record in self.train_set.records])
            return self._loader(self.train_set, self.clip_loader, sampler=sampler)
        return self._loader(self.train_set, self.clip_loader, shuffle=True)

    def val_loader(self) -> DataLoader:
        return self._whole_videos_loader(self.val_set, self.clip_loader)

    def test_loader(self) -> DataLoader:
        return self._whole_videos_loader(self.test_set, HintingDataLoader)  # views decoded in the workers, always

    def _whole_videos_loader(self, dataset: Dataset, loader: type) -> DataLoader:
        # Under DDP each rank takes whole videos, each exactly once (no padding with repeats), so clip and
        # video accuracy summed over ranks equal a single-process run's.
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return self._loader(dataset, loader, sampler=sampler)

    def state_dict(self) -> dict:
        return {}  # a map-style epoch restarts: Lightning keeps no position within it

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    def _loader(self, dataset: Dataset, loader: type, *, shuffle: bool = False, sampler=None) -> DataLoader:
        workers = self.clips.num_workers
        return loader(
            dataset,
            batch_size=self.clips.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            timeout=self.clips.loader_timeout_s if workers > 0 else 0,
            warned_paths=self.warned_paths,
        )


class PlannedSource(FileSource):
    """Video files planned in loader workers (`planning.py`) and decoded on `decoder_device` in the main process
    (`gpu_decode.py`); batches are uint8. The test's views are decoded in the workers, as `FileSource` does."""

    def __init__(self, data_path: Path, clips: ClipSettings, *, decoder_device: str, **kwargs):
        super().__init__(data_path, clips, **kwargs)
        self.clip_decoder = PlannedClipDecoder(
            decoder_device, crop_size=clips.crop_size, short_side=clips.min_short_side
        )
        self.clip_loader = partial(PlanDecodingDataLoader, clip_decoder=self.clip_decoder)

    def make_train_set(self) -> Dataset:
        planner = TrainClipPlanner(
            crop_size=self.clips.crop_size,
            min_short_side=self.clips.min_short_side,
            max_short_side=self.clips.max_short_side,
            hflip_prob=self.clips.hflip_prob,
        )
        return PlannedRandomClipDataset(
            self.dataset.train,
            clip_duration_s=self.clips.clip_duration,
            num_frames=self.clips.num_frames,
            root=self.location,
            planner=planner,
        )

    def make_val_set(self) -> Dataset:
        return PlannedUniformClipsDataset(
            self.dataset.val,
            clip_duration_s=self.clips.clip_duration,
            num_frames=self.clips.num_frames,
            root=self.location,
        )


class ShardSource(Source):
    """Shards in a folder or at a bucket URL; streamed splits are shuffled and shared out over ranks by LitData.

    Refuses, naming what works instead, the settings that need video files: another decoder or GPU decoding
    (shards hold bytes decoded from memory with PyAV), and balanced sampling (the stream sets the order).
    """

    def __init__(
        self,
        location: str,
        clips: ClipSettings,
        *,
        cache_dir: str | None,
        decoder: str,
        decoder_device: str,
        balanced_sampling: bool,
    ):
        if decoder != "pyav" or torch.device(decoder_device).type != "cpu":
            raise ValueError(
                f"shards ({location}) are decoded from memory with PyAV on the CPU, so --data.decoder {decoder} "
                f"--data.decoder_device {decoder_device} cannot read them: leave both at their defaults (pyav, cpu), "
                "or train from the video files (`python -m video_processing.prepare SRC DST` writes them) to decode "
                "with torchcodec or on the GPU"
            )
        if balanced_sampling:
            raise ValueError(
                f"balanced_sampling draws videos by label from a file layout; shards ({location}) are shuffled by "
                "the stream: drop --data.balanced_sampling, or train from the video files to balance the classes"
            )
        super().__init__(location, clips)
        self.cache_dir = cache_dir
        self._train_stream = None
        self._train_stream_state = None

    @cached_property
    def info(self) -> shards.ShardsInfo:
        return shards.read_info(self.location, self.cache_dir)

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def headers(self) -> list[VideoInfo]:
        return self.info.headers  # a sample written into shards.json

    def _sizes(self) -> dict:
        return dict(
            clip_duration_s=self.clips.clip_duration, num_frames=self.clips.num_frames, crop_size=self.clips.crop_size
        )

    def make_train_set(self) -> Dataset:
        to_item = shards.RandomClipFromSample(**self._sizes(), transform=self.clips.train_transform())
        return shards.streaming_split(self.location, "train", to_item, shuffle=True, cache_dir=self.cache_dir)

    def make_val_set(self) -> Dataset:
        to_item = shards.UniformClipsFromSample(**self._sizes(), transform=self.clips.eval_transform())
        return shards.streaming_split(self.location, "val", to_item, shuffle=False, cache_dir=self.cache_dir)

    def make_test_set(self) -> Dataset:
        to_item = shards.MultiViewClipsFromSample(
            **self._sizes(), transform=self.clips.test_transform(), clips_per_video=self.clips.test_clips
        )
        return shards.streaming_split(self.location, "val", to_item, shuffle=False, cache_dir=self.cache_dir)

    def train_loader(self) -> DataLoader:
        self._train_stream = self._loader(self.train_set)  # a stream's position within the epoch is saved
        self._resume_train_stream()
        return self._train_stream

    def val_loader(self) -> DataLoader:
        return self._loader(self.val_set)  # the stream shares out whole videos itself

    def test_loader(self) -> DataLoader:
        return self._loader(self.test_set)

    def _loader(self, dataset: Dataset) -> DataLoader:
        return shards.streaming_loader(
            dataset,
            batch_size=self.clips.batch_size,
            num_workers=self.clips.num_workers,
            timeout_s=self.clips.loader_timeout_s,
            warned_paths=self.warned_paths,
        )

    # Lightning 2.6 saves a stateful train loader's state_dict in the fit loop's checkpoint state, but restores
    # it only into a loader made after the checkpoint is read; the learning-rate schedule's
    # `estimated_stepping_batches` makes the loader before. The data module's own state is restored in time.
    def state_dict(self) -> dict:
        return {"train_stream": self._train_stream.state_dict()} if self._train_stream is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._train_stream_state = state_dict.get("train_stream")
        if self._train_stream is not None:  # strategies that restore after making loaders
            self._resume_train_stream()

    def _resume_train_stream(self) -> None:
        if self._train_stream_state is not None:
            self._train_stream.load_state_dict(self._train_stream_state)
            self._train_stream_state = None
