"""KineticsDataModule: a dataset (files or shards) + decoding + transform presets -> train, validation, test loaders."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from video_processing.data import shards
from video_processing.data.decoders import check_decoder
from video_processing.data.items import with_video
from video_processing.data.layouts import Layout
from video_processing.data.sources import FileSource, LoaderSettings, PlannedSource, ShardSource, Source
from video_processing.data.transforms import KINETICS_MEAN, KINETICS_STD, ClipSettings, normalize_clips

DEFAULT_DATA_PATH = "data/kinetics"


def default_data_path() -> str:
    """`KINETICS_DATA_PATH` from the environment, else data/kinetics."""
    return os.environ.get("KINETICS_DATA_PATH", DEFAULT_DATA_PATH)


class KineticsDataModule(pl.LightningDataModule):
    """Kinetics (or any dataset in a supported layout) as batches of clips; the batches are described in `items.py`.

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
        test_clips, test_crops: the `test` stage's views of each test video (the test split where the data has one,
            else the validation split): `test_clips` evenly spaced clips (PyTorchVideo's constant-clips-per-video
            sampler) x `test_crops` crops along the long side of each clip scaled to `min_short_side` (3: left,
            centre, right; 1: centre). 10 x 3 is the protocol of PyTorchVideo's model zoo and PySlowFast. A test
            batch holds all views of `batch_size` videos. 0 leaves the test out (fit, validate and predict never
            build the test set).
        augment: "randaugment" or "trivialaugment": torchvision's RandAugment or TrivialAugmentWide on each
            training clip after its crop and flip, one draw of operation and magnitude for all the clip's frames,
            on the uint8 pixels (in the workers, or on the GPU with GPU decoding). None (default): none.
        balanced_sampling: draw training videos so that every class is drawn equally often per epoch
            (`samplers.BalancedDistributedSampler`; under DDP each rank takes a disjoint share of the draws).

    Settings that cannot work together (shards with torchcodec or GPU decoding, or with balanced sampling; GPU
    decoding without a GPU or torchcodec; negative test views) are refused here, naming what works instead.
    The arguments are kept once, in `self.hparams` (saved in checkpoints): `data.hparams.batch_size`. The clip
    settings among them (`transforms.ClipSettings`) are the ones a checkpoint's classifier and an exported model
    use. Everything else is the source's, chosen here from `data_path` and the decoder settings (`sources.py`):
    files decoded in the workers, files planned in the workers and decoded on a device, shards.
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
        augment: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        clips = ClipSettings.from_dict(self.hparams)
        loader = LoaderSettings(
            batch_size=batch_size,
            num_workers=num_workers,
            loader_timeout_s=loader_timeout_s,
            uint8=self.uint8_batches,
            test_clips=test_clips,
            test_crops=test_crops,
        )
        self.source = open_source(
            data_path,
            clips,
            loader,
            decoder=decoder,
            decoder_device=decoder_device,
            cache_dir=cache_dir,
            balanced_sampling=balanced_sampling,
        )

    @property
    def uint8_batches(self) -> bool:
        """Whether the loaders send uint8 clips, made float and normalized on the batch's device (`device_transform`):
        with transforms_on_device, and with GPU decoding (the decoder crops uint8 frames on the GPU)."""
        return self.hparams.transforms_on_device or torch.device(self.hparams.decoder_device).type == "cuda"

    @property
    def dataset(self) -> Layout:
        """A file layout's splits and class list, read from `data_path` (files are listed, not opened).

        Raises LayoutError naming the path and the fix when the data cannot train a classifier, or, for shards
        (which list no files), saying to use `classes` and `video_counts`.
        """
        return self.source.layout

    @property
    def video_counts(self) -> dict[str, int]:
        """How many videos each split holds, for files and shards alike: {"train": ..., "val": ...}."""
        return self.source.video_counts()

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_set(self) -> Dataset:
        return self.source.train_set

    @property
    def val_set(self) -> Dataset:
        return self.source.val_set

    @property
    def test_set(self) -> Dataset:
        return self.source.test_set

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None:
            self.source.pin(self.trainer.strategy.root_device)  # under DDP, each rank's own GPU
        self.source.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.source.train_loader()

    def val_dataloader(self) -> DataLoader:
        return self.source.val_loader()

    def predict_dataloader(self) -> DataLoader:
        """`trainer.predict(model, datamodule=data)`: every clip of the validation videos, as in validation."""
        return self.source.val_loader()

    def test_dataloader(self) -> DataLoader:
        """Multi-view test of the test split where the data has one (`test/`, `test.csv`, the release's
        annotations/test.csv), else of the validation split; the test stage says which."""
        return self.source.test_loader()

    def state_dict(self) -> dict:
        return self.source.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.source.load_state_dict(state_dict)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """uint8 clips (`uint8_batches`) -> float, normalized, on the batch's device."""
        if not isinstance(batch, dict):  # the model summary's example input, a bare tensor
            return batch
        return with_video(batch, self.device_transform(batch["video"]))

    def device_transform(self, video: torch.Tensor) -> torch.Tensor:
        """A batch's uint8 clips (B, C, T, H, W) -> float, normalized, on their device, when `uint8_batches`;
        otherwise (float clips), and for a batch whose videos were all unreadable, the clips unchanged.

        What the Trainer applies to every batch; call it yourself when iterating a loader without one.
        """
        if not self.uint8_batches or len(video) == 0:
            return video
        return normalize_clips(video, self.hparams.mean, self.hparams.std)


def open_source(
    data_path: str | None,
    clips: ClipSettings,
    loader: LoaderSettings,
    *,
    decoder: str,
    decoder_device: str,
    cache_dir: str | None,
    balanced_sampling: bool,
) -> Source:
    """The source of `data_path` (default: `default_data_path()`) for the decoder settings, its settings checked:
    raises ValueError (or `decoders.DecoderUnavailable`) naming the option and what works instead."""
    if loader.test_clips < 0 or loader.test_crops < 0:
        loader.check_test_views()
    location = data_path or default_data_path()
    if shards.is_shard_location(location):
        return ShardSource(
            location,
            clips,
            loader,
            cache_dir=cache_dir,
            decoder=decoder,
            decoder_device=decoder_device,
            balanced_sampling=balanced_sampling,
        )
    check_decoder(decoder, decoder_device)  # fails here, naming the option, not in a worker or a hang later
    files = dict(decoder=decoder, balanced_sampling=balanced_sampling, missing_hint=_missing_hint(data_path))
    if torch.device(decoder_device).type == "cuda":
        return PlannedSource(Path(location), clips, loader, decoder_device=decoder_device, **files)
    return FileSource(Path(location), clips, loader, **files)


def _missing_hint(data_path: str | None) -> str:
    """How to point the module at another folder, which depends on where the path came from: KINETICS_DATA_PATH
    is only read when no data_path is given (a config's data_path wins over it)."""
    if data_path:
        return "Pass --data.data_path DIR (or data_path=DIR)"
    if "KINETICS_DATA_PATH" in os.environ:
        return "It came from KINETICS_DATA_PATH: set it (or pass --data.data_path DIR)"
    return "Set KINETICS_DATA_PATH or pass --data.data_path DIR"
