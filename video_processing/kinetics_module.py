"""KineticsDataModule: dataset layouts + decoding + transform presets -> train, validation and test loaders."""

from __future__ import annotations

import math
import os
from functools import cached_property
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from video_processing import shards
from video_processing.datasets import (
    MultiViewClipsDataset,
    RandomClipDataset,
    Transform,
    UniformClipsDataset,
    collate_clips,
)
from video_processing.decoders import check_decoder, clip_decoders
from video_processing.gpu_decode import (
    PlannedClipDecoder,
    PlannedRandomClipDataset,
    PlannedUniformClipsDataset,
    TrainClipPlanner,
    decode_ahead,
)
from video_processing.layouts import Dataset, LayoutError, check_splits, load_dataset
from video_processing.loaders import HintingDataLoader
from video_processing.samplers import BalancedDistributedSampler
from video_processing.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    eval_preset,
    multi_view_preset,
    normalize_clips,
    train_preset,
)
from video_processing.video import VideoError, VideoInfo, open_video, video_info

DEFAULT_DATA_PATH = "data/kinetics"

# Headers read in setup to check that clips fit the videos: enough to catch a wrong unit, quick on Kinetics.
HEADER_SAMPLE_SIZE = 32


def default_data_path() -> str:
    """`KINETICS_DATA_PATH` from the environment, else data/kinetics."""
    return os.environ.get("KINETICS_DATA_PATH", DEFAULT_DATA_PATH)


class KineticsDataModule(pl.LightningDataModule):
    """Kinetics (or any dataset in a supported layout) as batches of clips.

    Args:
        data_path: dataset folder in one of the layouts of `layouts.py`, or shards (`shards.py`: a folder or a
            bucket URL such as s3://bucket/kinetics); default `KINETICS_DATA_PATH` or data/kinetics.
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
        transforms_on_device: workers return the resized, cropped (and flipped) clips as uint8, a quarter of the
            bytes through shared memory and to the GPU; `on_after_batch_transfer` converts them to float and
            normalizes them on the batch's device. The clips equal the float path's within rounding.
        decoder: "pyav" (default) or "torchcodec" (optional: `decoders.TORCHCODEC_INSTALL`); same clips.
        decoder_device: "cpu", or "cuda" to decode on the GPU (NVDEC, needs decoder torchcodec): workers then
            only plan clips and the main process decodes them on the GPU (see `gpu_decode.py`); batches are
            uint8 as with transforms_on_device.
        cache_dir: where shards streamed from a URL are cached (default: LitData's cache folder).
        test_clips, test_crops: the `test` stage's views of each validation video: `test_clips` evenly spaced
            clips (PyTorchVideo's constant-clips-per-video sampler) x `test_crops` crops along the long side of
            each clip scaled to `min_short_side` (3: left, centre, right; 1: centre). 10 x 3 is the protocol
            of PyTorchVideo's model zoo and PySlowFast. A test batch holds all views of `batch_size` videos.
        balanced_sampling: draw training videos so that every class is drawn equally often per epoch
            (`samplers.BalancedDistributedSampler`; under DDP each rank takes a disjoint share of the draws).

    Batches are dicts: video float (B, C, T, H, W), label long (B,), video_name (list of B), video_index long
    (B,), skipped (list of (path, reason) for videos that could not be read). With transforms_on_device (or
    decoder_device cuda) the loaders' video is uint8 (B, C, T, H, W) instead, and the Trainer makes it the
    float clips above in `on_after_batch_transfer`; iterating a loader without a Trainer, call
    `data.device_transform(batch["video"])` (after moving it to its device) to get them.
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
        transforms_on_device: bool = False,
        decoder: str = "pyav",
        decoder_device: str = "cpu",
        cache_dir: str | None = None,
        test_clips: int = 10,
        test_crops: int = 3,
        balanced_sampling: bool = False,
    ):
        super().__init__()
        check_decoder(decoder, decoder_device)  # fails here, naming the option, not in a worker or a hang later
        self.save_hyperparameters()
        # How to point the module elsewhere depends on where the path came from: KINETICS_DATA_PATH is only
        # read when no data_path is given (a config's data_path wins over it).
        if data_path:
            self._data_path_fix = "Pass --data.data_path DIR (or data_path=DIR)"
        elif "KINETICS_DATA_PATH" in os.environ:
            self._data_path_fix = "It came from KINETICS_DATA_PATH: set it (or pass --data.data_path DIR)"
        else:
            self._data_path_fix = "Set KINETICS_DATA_PATH or pass --data.data_path DIR"
        data_path = data_path or default_data_path()
        self.data_path = data_path if shards.is_remote(data_path) else Path(data_path)
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
        self.transforms_on_device = transforms_on_device
        self.decoder = decoder
        self.decoder_device = decoder_device
        self.cache_dir = cache_dir
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
                f"data_path {self.data_path} does not exist. {self._data_path_fix} to a dataset folder; "
                "`python -m video_processing.synthetic --out data/synthetic` makes a small one."
            )
        dataset = load_dataset(self.data_path)
        check_splits(dataset, self.data_path)
        return dataset

    @cached_property
    def shards_info(self) -> shards.ShardsInfo | None:
        """What a shard folder or URL's shards.json says; None for the file layouts."""
        return shards.read_info(self.data_path, self.cache_dir) if shards.is_shard_location(self.data_path) else None

    @property
    def classes(self) -> list[str]:
        return self.shards_info.classes if self.shards_info else self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        if self.shards_info is not None:
            return self._setup_shards()
        check_clips_fit(self._sample_headers(), self.clip_duration, self.num_frames, self.data_path)
        if self._decodes_on_gpu:
            self._setup_planned()
        else:
            self._setup_decoded()
        self.test_set = MultiViewClipsDataset(
            self.dataset.val,
            clips_per_video=self.test_clips,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            root=self.data_path,
            transform=self._test_transform(),
        )

    def _setup_decoded(self) -> None:
        """Datasets whose workers decode and transform clips with the chosen decoder."""
        decode_random, decode_uniform = clip_decoders(self.decoder)
        self.train_set = RandomClipDataset(
            self.dataset.train,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            root=self.data_path,
            transform=self._train_transform(),
            decode=decode_random,
        )
        self.val_set = UniformClipsDataset(
            self.dataset.val,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            root=self.data_path,
            transform=self._eval_transform(),
            decode=decode_uniform,
        )

    @property
    def _decodes_on_gpu(self) -> bool:
        return torch.device(self.decoder_device).type == "cuda"

    def _setup_planned(self) -> None:
        """Datasets whose workers plan clips (same sampling as `setup`'s), and the decoder of their batches."""
        self.train_set = PlannedRandomClipDataset(
            self.dataset.train,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            root=self.data_path,
            planner=TrainClipPlanner(
                crop_size=self.crop_size,
                min_short_side=self.min_short_side,
                max_short_side=self.max_short_side,
                hflip_prob=self.hflip_prob,
            ),
        )
        self.val_set = PlannedUniformClipsDataset(
            self.dataset.val,
            clip_duration_s=self.clip_duration,
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            root=self.data_path,
        )
        self.clip_decoder = PlannedClipDecoder(
            self.decoder_device, crop_size=self.crop_size, short_side=self.min_short_side
        )

    def _setup_shards(self) -> None:
        """Streaming splits giving the same items as the file datasets, decoded from the shards' bytes."""
        if self.decoder != "pyav":
            raise ValueError(
                f"shards ({self.data_path}) are decoded from memory with PyAV: drop --data.decoder {self.decoder}"
            )
        if self.balanced_sampling:
            raise ValueError(
                f"balanced_sampling draws videos by label from a file layout; shards ({self.data_path}) are "
                "shuffled by the stream: drop --data.balanced_sampling, or train from the files"
            )
        check_clips_fit(self.shards_info.headers, self.clip_duration, self.num_frames, self.data_path)
        sizes = dict(clip_duration_s=self.clip_duration, num_frames=self.num_frames, crop_size=self.crop_size)
        to_train_item = shards.RandomClipFromSample(**sizes, transform=self._train_transform())
        to_val_item = shards.UniformClipsFromSample(**sizes, transform=self._eval_transform())
        to_test_item = shards.MultiViewClipsFromSample(
            **sizes, transform=self._test_transform(), clips_per_video=self.test_clips
        )
        self.train_set = shards.streaming_split(
            self.data_path, "train", to_train_item, shuffle=True, cache_dir=self.cache_dir
        )
        self.val_set = shards.streaming_split(
            self.data_path, "val", to_val_item, shuffle=False, cache_dir=self.cache_dir
        )
        self.test_set = shards.streaming_split(
            self.data_path, "val", to_test_item, shuffle=False, cache_dir=self.cache_dir
        )

    def _train_transform(self) -> Transform:
        return train_preset(
            crop_size=self.crop_size,
            min_short_side=self.min_short_side,
            max_short_side=self.max_short_side,
            hflip_prob=self.hflip_prob,
            mean=self.mean,
            std=self.std,
            uint8=self.transforms_on_device,
        )

    def _eval_transform(self) -> Transform:
        return eval_preset(
            crop_size=self.crop_size,
            short_side=self.min_short_side,
            mean=self.mean,
            std=self.std,
            uint8=self.transforms_on_device,
        )

    def _test_transform(self) -> Transform:
        return multi_view_preset(
            crop_size=self.crop_size,
            short_side=self.min_short_side,
            num_crops=self.test_crops,
            mean=self.mean,
            std=self.std,
            uint8=self.transforms_on_device or self._decodes_on_gpu,
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
        if self.shards_info is not None:  # a stream's position within the epoch is saved and resumed
            self._train_stream = self._loader(self.train_set, shuffle=True)
            self._resume_train_stream()
            return self._train_stream
        if self.balanced_sampling:
            # rank-aware itself: Lightning would otherwise wrap a custom sampler in a DistributedSampler
            sampler = BalancedDistributedSampler([record.label for record in self.train_set.records])
            return self._loader(self.train_set, shuffle=False, sampler=sampler)
        return self._loader(self.train_set, shuffle=True)

    # Lightning 2.6 saves a stateful train loader's state_dict in the fit loop's checkpoint state, but restores
    # it only into a loader made after the checkpoint is read; the learning-rate schedule's
    # `estimated_stepping_batches` makes the loader before. The data module's own state is restored in time.
    def state_dict(self) -> dict:
        stream = getattr(self, "_train_stream", None)
        return {"train_stream": stream.state_dict()} if stream is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._train_stream_state = state_dict.get("train_stream")
        if getattr(self, "_train_stream", None) is not None:  # strategies that restore after making loaders
            self._resume_train_stream()

    def _resume_train_stream(self) -> None:
        if getattr(self, "_train_stream_state", None) is not None:
            self._train_stream.load_state_dict(self._train_stream_state)
            self._train_stream_state = None

    def val_dataloader(self) -> DataLoader:
        return self._whole_videos_loader(self.val_set)

    def predict_dataloader(self) -> DataLoader:
        """`trainer.predict(model, datamodule=data)`: every clip of the validation videos, as in validation."""
        return self.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        """Multi-view test of the validation split (Kinetics' test labels are not public)."""
        return self._whole_videos_loader(self.test_set)

    def _whole_videos_loader(self, dataset: UniformClipsDataset) -> DataLoader:
        # Under DDP each rank takes whole videos, each exactly once (no padding with repeats), so clip and
        # video accuracy summed over ranks equal a single-process run's.
        sampler = None
        if self.shards_info is not None:  # the stream shares out whole videos itself
            return self._loader(dataset, shuffle=False)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return self._loader(dataset, shuffle=False, sampler=sampler)

    def _loader(self, dataset, *, shuffle: bool, sampler=None) -> DataLoader:
        if self.shards_info is not None:  # shuffled (or not) by the stream itself
            return shards.streaming_loader(
                dataset,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                timeout_s=self.loader_timeout_s,
                warned_paths=self._warned_paths,
            )
        planned_sets = (PlannedRandomClipDataset, PlannedUniformClipsDataset)  # the test's views are decoded by PyAV
        planned = {"clip_decoder": self.clip_decoder} if isinstance(dataset, planned_sets) else {}
        return (PlanDecodingDataLoader if planned else HintingDataLoader)(
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
            **planned,
        )

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """uint8 clips (transforms_on_device, GPU decoding) -> float, normalized, on the batch's device."""
        if not isinstance(batch, dict):  # the model summary's example input, a bare tensor
            return batch
        return {**batch, "video": self.device_transform(batch["video"])}

    def device_transform(self, video: torch.Tensor) -> torch.Tensor:
        """A batch's uint8 clips (B, C, T, H, W) -> float, normalized, on their device; float clips unchanged.

        What the Trainer applies to every batch; call it yourself when iterating a loader without one.
        """
        return normalize_clips(video, self.mean, self.std) if video.dtype == torch.uint8 else video


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


class PlanDecodingDataLoader(HintingDataLoader):
    """A loader of planned clips (see `gpu_decode.py`) whose batches arrive decoded on `clip_decoder`'s device."""

    def __init__(self, *args, clip_decoder: PlannedClipDecoder, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_decoder = clip_decoder

    def __iter__(self):
        return decode_ahead(super().__iter__(), self.clip_decoder)
