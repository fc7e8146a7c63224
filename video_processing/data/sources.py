"""Where a data module's clips come from: the `Source` interface, and its three kinds.

A source is video files decoded in loader workers (`FileSource`), video files planned in workers and decoded on a
device (`PlannedSource`), or shards (`ShardSource`). It answers what the data module asks of it (the classes, how
many videos each split holds, the file layout or a clear no for shards), owns its datasets (built when a stage
first needs them, each reading clips through one of `reads.py`'s reads), its loaders, its resume state and the
checks of its settings: what cannot work together is refused when the source is made, naming what works instead.
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
from pytorch_lightning.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from video_processing.data import reads, shards
from video_processing.data.datasets import RandomClipDataset, Read, WholeVideoDataset
from video_processing.data.decoders import clip_decoders
from video_processing.data.gpu_decode import PlanDecodingDataLoader, PlannedClipDecoder
from video_processing.data.items import Clips, collate_clips, no_clips
from video_processing.data.layouts import TEST_SPLIT, Layout, LayoutError, check_splits, load_dataset
from video_processing.data.loaders import HintingDataLoader
from video_processing.data.samplers import BalancedDistributedSampler
from video_processing.data.transforms import ClipSettings
from video_processing.data.video import VideoError, VideoInfo, open_video, plan_uniform_clips, video_info

# The datasets a Trainer stage uses, built in `setup` (others are built when first asked for).
STAGE_SETS = {"fit": ("train_set", "val_set"), "validate": ("val_set",), "test": ("test_set",), "predict": ("val_set",)}
# Headers read in setup to check that clips fit the videos: enough to catch a wrong unit, quick on Kinetics.
HEADER_SAMPLE_SIZE = 32


@dataclass(frozen=True)
class LoaderSettings:
    """How a source batches clips, and the test's views of a video (the data module's arguments of these names)."""

    batch_size: int
    num_workers: int
    loader_timeout_s: float
    uint8: bool  # the presets leave clips uint8 (`KineticsDataModule.uint8_batches`)
    test_clips: int
    test_crops: int

    def check_test_views(self) -> None:
        """Raise ValueError, naming the fix, when the test stage would have no views of a video."""
        if self.test_clips < 1 or self.test_crops < 1:
            raise ValueError(
                f"test_clips={self.test_clips} x test_crops={self.test_crops} leave the test no view of a video: "
                "pass --data.test_clips 10 --data.test_crops 3 (the model zoo's protocol; 1 x 1 is the quickest)"
            )


class Source(ABC):
    """Datasets and loaders of one kind of storage; `train_set`, `val_set`, `test_set` are built on first use."""

    decoder = "pyav"  # the backend that decodes clips in the loader workers (`decoders.clip_decoders`)

    def __init__(self, location: str | Path, clips: ClipSettings, loader: LoaderSettings):
        self.location = location
        self.clips = clips
        self.loader = loader
        self.warned_paths: set[str] = set()  # files warned about as skipped, once over all loaders

    @property
    @abstractmethod
    def classes(self) -> list[str]: ...

    @abstractmethod
    def video_counts(self) -> dict[str, int]:
        """How many videos each split lists: {"train": ..., "val": ...}, and "test" where there is a test split."""

    @property
    @abstractmethod
    def layout(self) -> Layout:
        """The file layout's splits and class list; LayoutError, saying what to use instead, where there is none."""

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

    def pin(self, device: torch.device) -> None:
        """Decode on `device` (the Trainer's root device: each DDP rank its own GPU) where the source decodes on
        one; a source decoding in loader workers has nothing to pin."""
        return None

    @cached_property
    def train_set(self) -> Dataset:
        return self.make_train_set()

    @cached_property
    def val_set(self) -> Dataset:
        return self.make_val_set()

    @abstractmethod
    def test_split(self) -> str:
        """The split the test stage takes: "test" where the data has one, else "val"."""

    @cached_property
    def test_set(self) -> Dataset:
        self.loader.check_test_views()  # asked for only by the test stage: test_clips=0 does not stop a fit
        split, videos = self.test_split(), self.video_counts()
        if split == TEST_SPLIT:
            rank_zero_info(f"test stage: the test split of {self.location} ({videos[split]} videos)")
        else:
            rank_zero_info(
                f"test stage: {self.location} has no test split, so the test takes the validation split "
                f"({videos['val']} videos)"
            )
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

    def _clip_sizes(self) -> dict:
        return dict(clip_duration_s=self.clips.clip_duration, num_frames=self.clips.num_frames)

    def train_read(self) -> Read:
        """Training's read: one random clip, decoded by `decoder` and transformed."""
        return self._decoded(reads.random_clip, clip_decoders(self.decoder)[0], self.clips.train_transform)

    def val_read(self) -> Read:
        """Validation's read: every back-to-back clip, decoded by `decoder` and transformed."""
        return self._decoded(reads.uniform_clips, clip_decoders(self.decoder)[1], self.clips.eval_transform)

    def test_read(self) -> Read:
        """The test's read: `test_clips` evenly spaced clips x `test_crops` crops, decoded with PyAV."""
        transform = self.clips.test_transform(self.loader.test_crops, uint8=self.loader.uint8)
        return partial(
            reads.test_views, transform=transform, clips_per_video=self.loader.test_clips, **self._clip_sizes()
        )

    def _decoded(self, read, decode, transform) -> Read:
        return partial(read, decode=decode, transform=transform(uint8=self.loader.uint8), **self._clip_sizes())

    def empty_clips(self) -> Clips:
        """The clips of a video that could not be read by the training and validation reads: none."""
        return no_clips(self.clips.num_frames, self.clips.crop_size)


class FileSource(Source):
    """Video files in a layout of `layouts.py`, decoded and transformed in loader workers by `decoder`."""

    def __init__(
        self,
        data_path: Path,
        clips: ClipSettings,
        loader: LoaderSettings,
        *,
        decoder: str,
        balanced_sampling: bool,
        missing_hint: str,
    ):
        super().__init__(data_path, clips, loader)
        self.decoder = decoder
        self.balanced_sampling = balanced_sampling
        self.missing_hint = missing_hint
        self.clip_loader = HintingDataLoader  # the loader of the training and validation clips

    @cached_property
    def layout(self) -> Layout:
        """Both splits and the class list (files are listed, not opened); LayoutError naming the path and fix."""
        if not self.location.is_dir():
            raise LayoutError(
                f"data_path {self.location} does not exist. {self.missing_hint} to a dataset folder; "
                "`python -m video_processing.synthetic --out data/synthetic` makes a small one."
            )
        layout = load_dataset(self.location)
        check_splits(layout, self.location)
        return layout

    @property
    def classes(self) -> list[str]:
        return self.layout.classes

    def video_counts(self) -> dict[str, int]:
        return {split: len(self.layout.split(split)) for split in self.layout.splits()}

    def test_split(self) -> str:
        return TEST_SPLIT if self.layout.test else "val"

    def headers(self) -> list[VideoInfo]:
        """Headers of up to HEADER_SAMPLE_SIZE videos spread over both splits (unreadable ones left out).

        Each file is opened and closed here, in the main process before any loader worker starts, so no open
        container is ever inherited by a forked worker.
        """
        records = self.layout.train + self.layout.val
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
        return RandomClipDataset(self.layout.train, self.train_read(), root=self.location)

    def make_val_set(self) -> Dataset:
        return WholeVideoDataset(self.layout.val, self.val_read(), empty=self.empty_clips(), root=self.location)

    def make_test_set(self) -> Dataset:
        empty = no_clips(self.clips.num_frames, self.clips.crop_size)  # the test's views are decoded in the workers
        records = self.layout.split(self.test_split())
        return WholeVideoDataset(records, self.test_read(), empty=empty, root=self.location)

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
        workers = self.loader.num_workers
        return loader(
            dataset,
            batch_size=self.loader.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            timeout=self.loader.loader_timeout_s if workers > 0 else 0,
            warned_paths=self.warned_paths,
        )


class PlannedSource(FileSource):
    """Video files planned in loader workers (`reads.py`) and decoded on `decoder_device` in the main process
    (`gpu_decode.py`); batches are uint8. The test's views are decoded in the workers, as `FileSource` does."""

    def __init__(self, data_path: Path, clips: ClipSettings, loader: LoaderSettings, *, decoder_device: str, **kwargs):
        super().__init__(data_path, clips, loader, **kwargs)
        self.clip_decoder = PlannedClipDecoder(
            decoder_device, crop_size=clips.crop_size, short_side=clips.min_short_side, augment=clips.augment
        )
        self.clip_loader = partial(PlanDecodingDataLoader, clip_decoder=self.clip_decoder)

    def pin(self, device: torch.device) -> None:
        self.clip_decoder.pin(device)

    def train_read(self) -> Read:
        planner = reads.TrainClipPlanner(
            crop_size=self.clips.crop_size,
            min_short_side=self.clips.min_short_side,
            max_short_side=self.clips.max_short_side,
            hflip_prob=self.clips.hflip_prob,
        )
        return partial(reads.planned_clip, planner=planner, **self._clip_sizes())

    def val_read(self) -> Read:
        return partial(plan_uniform_clips, **self._clip_sizes())  # the eval preset draws nothing

    def empty_clips(self) -> Clips:
        return []


class ShardSource(Source):
    """Shards in a folder or at a bucket URL; streamed splits are shuffled and shared out over ranks by LitData.

    Samples are decoded from memory with PyAV in the loader workers, through the file sources' reads, giving the
    same items. Refuses, naming what works instead, the settings that need video files: another decoder or GPU
    decoding, and balanced sampling (the stream sets the order).
    """

    def __init__(
        self,
        location: str,
        clips: ClipSettings,
        loader: LoaderSettings,
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
        super().__init__(location, clips, loader)
        self.cache_dir = cache_dir
        self._train_stream = None
        self._train_stream_state = None

    @cached_property
    def info(self) -> shards.ShardsInfo:
        return shards.read_info(self.location, self.cache_dir)

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def video_counts(self) -> dict[str, int]:
        return dict(self.info.videos)

    def test_split(self) -> str:
        return TEST_SPLIT if self.info.videos.get(TEST_SPLIT) else "val"

    @property
    def layout(self) -> Layout:
        raise LayoutError(
            f"{self.location} holds shards, which keep no list of video files: a file layout is for a dataset "
            "folder. The classes and the videos per split are `data.classes` and `data.video_counts`."
        )

    def headers(self) -> list[VideoInfo]:
        return self.info.headers  # a sample written into shards.json

    def make_train_set(self) -> Dataset:
        return self._split("train", self.train_read(), shuffle=True)

    def make_val_set(self) -> Dataset:
        return self._split("val", self.val_read(), shuffle=False)

    def make_test_set(self) -> Dataset:
        return self._split(self.test_split(), self.test_read(), shuffle=False)

    def _split(self, split: str, read: Read, *, shuffle: bool) -> Dataset:
        to_item = partial(shards.sample_item, read=read, empty=self.empty_clips())
        return shards.streaming_split(self.location, split, to_item, shuffle=shuffle, cache_dir=self.cache_dir)

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
            batch_size=self.loader.batch_size,
            num_workers=self.loader.num_workers,
            timeout_s=self.loader.loader_timeout_s,
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
