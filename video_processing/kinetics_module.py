"""KineticsDataModule: dataset layouts + decoding + transform presets -> train, validation and test loaders."""

from __future__ import annotations

import logging
import math
import os
from functools import cached_property
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from video_processing.datasets import MultiViewClipsDataset, RandomClipDataset, UniformClipsDataset, collate_clips
from video_processing.layouts import Dataset, LayoutError, check_splits, load_dataset
from video_processing.samplers import BalancedDistributedSampler
from video_processing.transforms import KINETICS_MEAN, KINETICS_STD, eval_preset, multi_view_preset, train_preset
from video_processing.video import VideoError, VideoInfo, open_video, video_info

logger = logging.getLogger("video_processing")

DEFAULT_DATA_PATH = "data/kinetics"

# Headers read in setup to check that clips fit the videos: enough to catch a wrong unit, quick on Kinetics.
HEADER_SAMPLE_SIZE = 32


def default_data_path() -> str:
    """`KINETICS_DATA_PATH` from the environment, else data/kinetics."""
    return os.environ.get("KINETICS_DATA_PATH", DEFAULT_DATA_PATH)


class KineticsDataModule(pl.LightningDataModule):
    """Kinetics (or any dataset in a supported layout) as batches of clips.

    Args:
        data_path: dataset folder in one of the layouts of `layouts.py`; default `KINETICS_DATA_PATH` or
            data/kinetics.
        clip_duration: seconds of video per clip.
        batch_size: training clips per batch; validation batches hold every clip of `batch_size` videos.
        num_workers: loader processes.
        num_frames: frames kept per clip, evenly spaced over the clip.
        crop_size: side of the square crop fed to the model.
        min_short_side, max_short_side: training rescales the short side to a random length in this range;
            validation rescales it to `min_short_side`.
        hflip_prob: probability of a horizontal flip in training.
        loader_timeout_s: seconds a loader may wait for a worker's batch before the run fails with an error
            (0: forever). A stalled worker (hung storage, a decoder stuck on a damaged file) then ends the run
            instead of hanging it.
        mean, std: per-channel normalization; pretrained weights expect the values they were trained with
            (configs/finetune_*.yaml set them per backbone).
        test_clips, test_crops: the `test` stage's views of each validation video: `test_clips` evenly spaced
            clips (PyTorchVideo's constant-clips-per-video sampler) x `test_crops` crops along the long side of
            each clip scaled to `min_short_side` (3: left, centre, right; 1: centre). 10 x 3 is the protocol
            of PyTorchVideo's model zoo and PySlowFast. A test batch holds all views of `batch_size` videos.
        balanced_sampling: draw training videos so that every class is drawn equally often per epoch
            (`samplers.BalancedDistributedSampler`; under DDP each rank takes a disjoint share of the draws).

    Batches are dicts: video float (B, C, T, H, W), label long (B,), video_name (list of B), video_index long
    (B,), skipped (list of (path, reason) for videos that could not be read).
    """

    def __init__(
        self,
        data_path: str | None = None,
        clip_duration: float = 2.0,
        batch_size: int = 8,
        num_workers: int = 8,
        num_frames: int = 8,
        crop_size: int = 224,
        min_short_side: int = 256,
        max_short_side: int = 320,
        hflip_prob: float = 0.5,
        loader_timeout_s: float = 600,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
        test_clips: int = 10,
        test_crops: int = 3,
        balanced_sampling: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.data_path = Path(data_path or default_data_path())
        self.clip_duration = clip_duration
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.min_short_side = min_short_side
        self.max_short_side = max_short_side
        self.hflip_prob = hflip_prob
        self.loader_timeout_s = loader_timeout_s
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.test_clips = test_clips
        self.test_crops = test_crops
        self.balanced_sampling = balanced_sampling
        self._warned_paths: set[str] = set()

    @cached_property
    def dataset(self) -> Dataset:
        """Both splits and the class list, read from `data_path` (files are listed, not opened).

        Raises LayoutError naming the path and the fix when the data cannot train a classifier.
        """
        if not self.data_path.is_dir():
            raise LayoutError(
                f"data_path {self.data_path} does not exist. Pass --data.data_path DIR (or set "
                "KINETICS_DATA_PATH) to a dataset folder; `python -m video_processing.synthetic --out "
                "data/synthetic` makes a small one."
            )
        dataset = load_dataset(self.data_path)
        check_splits(dataset, self.data_path)
        return dataset

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        check_clips_fit(self._sample_headers(), self.clip_duration, self.num_frames, self.data_path)
        self.train_set = RandomClipDataset(
            self.dataset.train,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            root=self.data_path,
            transform=train_preset(
                crop_size=self.crop_size,
                min_short_side=self.min_short_side,
                max_short_side=self.max_short_side,
                hflip_prob=self.hflip_prob,
                mean=self.mean,
                std=self.std,
            ),
        )
        self.val_set = UniformClipsDataset(
            self.dataset.val,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            root=self.data_path,
            transform=eval_preset(
                crop_size=self.crop_size, short_side=self.min_short_side, mean=self.mean, std=self.std
            ),
        )
        self.test_set = MultiViewClipsDataset(
            self.dataset.val,
            clips_per_video=self.test_clips,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            root=self.data_path,
            transform=multi_view_preset(
                crop_size=self.crop_size,
                short_side=self.min_short_side,
                num_crops=self.test_crops,
                mean=self.mean,
                std=self.std,
            ),
        )

    def _sample_headers(self) -> list[VideoInfo]:
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

    def train_dataloader(self) -> DataLoader:
        if self.balanced_sampling:
            # rank-aware itself: Lightning would otherwise wrap a custom sampler in a DistributedSampler
            sampler = BalancedDistributedSampler([record.label for record in self.train_set.records])
            return self._loader(self.train_set, shuffle=False, sampler=sampler)
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._whole_videos_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        """Multi-view test of the validation split (Kinetics' test labels are not public)."""
        return self._whole_videos_loader(self.test_set)

    def _whole_videos_loader(self, dataset: UniformClipsDataset) -> DataLoader:
        # Under DDP each rank takes whole videos, each exactly once (no padding with repeats), so clip and
        # video accuracy summed over ranks equal a single-process run's.
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return self._loader(dataset, shuffle=False, sampler=sampler)

    def _loader(self, dataset, *, shuffle: bool, sampler=None) -> DataLoader:
        return HintingDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            timeout=self.loader_timeout_s if self.num_workers > 0 else 0,
            warned_paths=self._warned_paths,
        )


def check_clips_fit(infos: list[VideoInfo], clip_duration_s: float, num_frames: int, data_path: Path) -> None:
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


class LoaderError(RuntimeError):
    """A loader worker stalled or died; the message says which and what to change."""


class HintingDataLoader(DataLoader):
    """A DataLoader whose worker timeouts and deaths raise a LoaderError saying what happened and what to do.

    PyTorch raises "DataLoader timed out" or "worker exited unexpectedly", which names neither the setting
    nor the likely cause. It also warns, once per file, about the videos its batches report as skipped: in the
    main process (workers' logs may go nowhere), however the loader is used, with or without a Trainer.
    `warned_paths` holds the files warned about already; loaders sharing one set warn once in all.
    """

    def __init__(self, *args, warned_paths: set[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.warned_paths = warned_paths if warned_paths is not None else set()

    def __iter__(self):
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as e:
                hint = _loader_failure_hint(str(e), self.timeout)
                if hint is None:  # an error of the data itself, raised in a worker: keep it as it is
                    raise
                raise LoaderError(f"{e}: {hint}") from e
            self._warn_skipped(batch)
            yield batch

    def _warn_skipped(self, batch: dict) -> None:
        for path, reason in batch["skipped"]:
            if path not in self.warned_paths:
                self.warned_paths.add(path)
                logger.warning("skipped video %s: %s", path, reason)


def _loader_failure_hint(message: str, timeout_s: float) -> str | None:
    if message.startswith("DataLoader timed out"):
        return (
            f"no loader worker delivered a batch within loader_timeout_s={timeout_s} s, so a worker "
            "is stalled (hung storage, or a decoder stuck on a damaged file). If your storage is merely "
            "slow, raise --data.loader_timeout_s (0 waits forever); find damaged files with "
            "`python -m video_processing.check_data DATA_PATH`."
        )
    if message.startswith("DataLoader worker"):
        return (
            "a loader worker died, most often killed for lack of memory (lower --data.num_workers "
            "or --data.batch_size) or by a decoder crash on a damaged file (find it with "
            "`python -m video_processing.check_data DATA_PATH`)."
        )
    return None
