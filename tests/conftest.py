"""Shared fixtures: small self-made videos in a temporary folder, in the class-folder layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser

from video_processing.data.decoders import FFMPEG_PACKAGES
from video_processing.data.sources import PlannedSource
from video_processing.data.video import write_video
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import make_dataset

# Sizes that keep the tests fast on 2 CPU cores: the small set is 96x72.
SMALL_DATA_KWARGS = dict(clip_duration=1.0, num_frames=4, crop_size=48, min_short_side=56, max_short_side=64)


# The smallest clip (frames, crop) each entry takes: MViT's fixed 16 x 224; S3D's 224 px crop and the 16 frames its
# final 2 x 7 x 7 pooling needs after a temporal stride of 8; SlowFast's 8 fast frames (2 slow); 2 x 32 elsewhere.
SMALLEST_INPUT = {"mvit_v2_s": (16, 224), "s3d": (16, 224), "slowfast_r50": (8, 32)}


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """The small self-made dataset (6 classes, 4 train + 2 val videos each), made once per test session."""
    return make_dataset(tmp_path_factory.mktemp("synthetic") / "small", size="small", seed=0, workers=1)


@pytest.fixture
def dataset_copy(small_dataset, tmp_path) -> Path:
    """A copy of the small dataset that a test may damage."""
    return Path(shutil.copytree(small_dataset, tmp_path / "data"))


def write_clip(path: Path, seconds: float, fps: int = 24, size: tuple[int, int] = (64, 48)) -> Path:
    """A plain moving-gradient H.264 clip of `seconds` (for tests needing a specific length)."""
    width, height = size
    t = np.arange(round(seconds * fps))[:, None, None, None]
    x = np.arange(width)[None, None, :, None]
    frames = ((x * 4 + t * 8) % 256).astype(np.uint8) * np.ones((1, height, 1, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps)
    return path


@pytest.fixture
def torchcodec_ffmpeg() -> None:
    """Skip a test that needs torchcodec when FFmpeg's shared libraries are missing, saying so.

    CI installs the libraries and sets VIDEO_PROCESSING_REQUIRE_TORCHCODEC=1, which turns the skip into a
    failure: there the parity tests must run. torchcodec itself is a dev dependency: its absence fails.
    """
    import torchcodec

    if torchcodec.ffmpeg_major_version is None:
        reason = "torchcodec cannot load FFmpeg's shared libraries; install them: " + FFMPEG_PACKAGES
        if os.environ.get("VIDEO_PROCESSING_REQUIRE_TORCHCODEC") == "1":
            pytest.fail(reason + " (VIDEO_PROCESSING_REQUIRE_TORCHCODEC=1: this run must test torchcodec)")
        pytest.skip(reason)


def fit_one_step_and_save(module: pl.LightningModule, data: pl.LightningDataModule, root: Path, **trainer_args) -> Path:
    """Train `module` one step on `data`, quietly, and save its checkpoint as root/model.ckpt."""
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **trainer_args,
    )
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(root / "model.ckpt")
    return root / "model.ckpt"


def planned_on_cpu(data_path: Path, **data_kwargs) -> KineticsDataModule:
    """A data module whose clips are planned in the workers and decoded in the main process, as with
    decoder_device="cuda", but by torchcodec on the CPU: the GPU path's loader, run where no GPU is."""
    data = KineticsDataModule(str(data_path), **data_kwargs, decoder="torchcodec", transforms_on_device=True)
    files = data.source
    data.source = PlannedSource(
        files.location,
        files.clips,
        files.loader,
        decoder_device="cpu",
        decoder=files.decoder,
        balanced_sampling=files.balanced_sampling,
        missing_hint=files.missing_hint,
    )
    return data


def break_frames(path: Path) -> Path:
    """Zero a video's coded frames, keeping its container intact: it opens and plans, and fails to decode."""
    data = bytearray(path.read_bytes())
    at = data.index(b"mdat") - 4  # the box: a 4-byte size, then its type
    size = int.from_bytes(data[at : at + 4], "big")
    data[at + 8 : at + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
    return path


def config_callbacks(config: Path, **init_args) -> list[pl.Callback]:
    """The callbacks a config's `trainer.callbacks` names, built as the command line builds them (class_path and
    init_args through jsonargparse); `init_args` replace those of the callbacks that have them."""
    entries = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    for entry in entries:
        args = entry.setdefault("init_args", {})
        args.update({key: value for key, value in init_args.items() if key in args})
    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[pl.Callback])
    return parser.instantiate(parser.parse_object({"callbacks": entries})).callbacks


class FallingValAccuracy(pl.Callback):
    """Reports validation top-1 as falling every epoch (1.0, 0.9, ...) to the checkpoint callbacks, which read it
    after validation: the best epoch by val_acc_top1 is then the first, and a run's last epoch is not its best."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            trainer.callback_metrics["val_acc_top1"] = torch.tensor(1.0 - 0.1 * trainer.current_epoch)


def random_batches(
    count: int, num_classes: int, clip_shape: tuple[int, ...] = (3, 4, 32, 32), batch_size: int = 4
) -> list[dict]:
    """`count` batches of `batch_size` random clips with random labels, shaped like the data module's batches."""
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "video": torch.randn(batch_size, *clip_shape, generator=generator),
            "label": torch.randint(num_classes, (batch_size,), generator=generator),
            "video_name": [f"v{i}" for i in range(batch_size)],
            "video_index": torch.arange(batch_size),
            "skipped": [],
        }
        for _ in range(count)
    ]
