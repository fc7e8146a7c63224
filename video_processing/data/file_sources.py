"""Sources of video files in a layout of `layouts.py`: decoded in loader workers (`FileSource`), or planned in the
workers and decoded on a device in the main process (`PlannedSource`)."""

from __future__ import annotations

from functools import cached_property, partial
from pathlib import Path

import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from video_processing.data.datasets import MultiViewClipsDataset, RandomClipDataset, UniformClipsDataset
from video_processing.data.decoders import clip_decoders
from video_processing.data.gpu_decode import PlanDecodingDataLoader, PlannedClipDecoder
from video_processing.data.items import collate_clips
from video_processing.data.layouts import Dataset as Layout
from video_processing.data.layouts import LayoutError, check_splits, load_dataset
from video_processing.data.loaders import HintingDataLoader
from video_processing.data.planning import PlannedRandomClipDataset, PlannedUniformClipsDataset, TrainClipPlanner
from video_processing.data.samplers import BalancedDistributedSampler
from video_processing.data.source import ClipSettings, Source
from video_processing.data.video import VideoError, VideoInfo, open_video, video_info

# Headers read in setup to check that clips fit the videos: enough to catch a wrong unit, quick on Kinetics.
HEADER_SAMPLE_SIZE = 32


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
            decoder_device, crop_size=clips.crop_size, short_side=clips.min_short_side, augment=clips.augment
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
