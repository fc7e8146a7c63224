"""What the notebooks share: smoke mode, the dataset path, run sizes, building or reloading a training run.

`VIDEO_PROCESSING_SMOKE=1` (set by `make test` and CI) shrinks data, model and epochs so every notebook runs
on a CPU in a minute or two; unset, the notebooks run at full size: Kinetics-sized on a GPU, `make demo`-sized
on a CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import make_dataset
from video_processing.transforms import KINETICS_MEAN, KINETICS_STD

if TYPE_CHECKING:
    from video_processing.finetuning import FinetuneRun

SMOKE_ENV = "VIDEO_PROCESSING_SMOKE"


def smoke_mode() -> bool:
    """True when `VIDEO_PROCESSING_SMOKE` is set to 1, true or yes."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes")


def project_root(start: str | Path | None = None) -> Path:
    """The checkout holding `start` (default: the working directory), else `start` itself (e.g. on Colab).

    Notebooks run in notebooks/, so data/ and lightning_logs/ land next to the ones `make demo` uses.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "video_processing").is_dir():
            return folder
    return start


def dataset_path(root: str | Path, *, smoke: bool, kinetics_path: str | Path | None = None) -> Path:
    """`kinetics_path` when given; else the self-made dataset under root/data, written when missing.

    Smoke mode uses the small set (data/synthetic_small, 36 videos), full size the default one
    (data/synthetic, 300 videos, the one `make demo` trains on).
    """
    if kinetics_path:
        return Path(kinetics_path)
    folder = Path(root) / "data" / ("synthetic_small" if smoke else "synthetic")
    return make_dataset(folder, size="small" if smoke else "default")


@dataclass(frozen=True)
class RunSize:
    """Data, model and trainer sizes of a notebook run; `name` is its folder under lightning_logs/."""

    name: str
    clip_duration_s: float
    num_frames: int
    crop_size: int
    min_short_side: int
    max_short_side: int
    stem_dim_out: int
    batch_size: int
    num_workers: int
    max_epochs: int
    lr: float
    limit_batches: int | float = 1.0  # an int caps train and val batches per epoch
    transforms_on_device: bool = False  # uint8 batches, normalized on the GPU (KineticsDataModule's option)


# Both CPU sizes: a thin ResNet-50 (stem_dim_out 8) on 64 px crops. CPU has configs/synthetic.yaml's sizes
# (what `make demo` trains; tests/test_notebook.py checks that they agree).
_THIN = dict(clip_duration_s=1.5, num_frames=8, crop_size=64, min_short_side=64, max_short_side=80, stem_dim_out=8)
SMOKE = RunSize("notebook_smoke", **_THIN, batch_size=8, num_workers=0, max_epochs=2, lr=3e-3, limit_batches=4)
CPU = RunSize("notebook_cpu", **_THIN, batch_size=8, num_workers=2, max_epochs=30, lr=5e-3)
# The Kinetics model: ResNet-50 at full width, 8 frames of 2 s clips, 224 px crops of a 256-320 px short side.
GPU = RunSize(
    "notebook_gpu",
    clip_duration_s=2.0,
    num_frames=8,
    crop_size=224,
    min_short_side=256,
    max_short_side=320,
    stem_dim_out=64,
    batch_size=8,
    num_workers=os.cpu_count() or 2,
    max_epochs=10,
    lr=1e-3,
)


def run_size(*, smoke: bool, cuda: bool) -> RunSize:
    """SMOKE in smoke mode (even on a GPU, so CI numbers mean the same everywhere), else GPU or CPU."""
    return SMOKE if smoke else GPU if cuda else CPU


def build_data_module(
    data_path: str | Path,
    run: RunSize | FinetuneRun,
    *,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> KineticsDataModule:
    """The data module for `run`'s clip, frame and crop sizes, normalized with `mean` and `std`."""
    return KineticsDataModule(
        data_path=str(data_path),
        clip_duration=run.clip_duration_s,
        batch_size=run.batch_size,
        num_workers=run.num_workers,
        num_frames=run.num_frames,
        crop_size=run.crop_size,
        min_short_side=run.min_short_side,
        max_short_side=run.max_short_side,
        mean=mean,
        std=std,
        transforms_on_device=run.transforms_on_device,
    )


def build_model(data: KineticsDataModule, run: RunSize) -> VideoClassificationLightningModule:
    """A Kinetics ResNet-50 sized by `run`, with the data's classes."""
    return VideoClassificationLightningModule(
        num_classes=data.num_classes,
        class_names=data.classes,
        lr=run.lr,
        stem_dim_out=run.stem_dim_out,
        num_frames=run.num_frames,
        crop_size=run.crop_size,
    )


def precision_for_device() -> str:
    """bf16-mixed on GPUs with native bfloat16, 16-mixed on older GPUs, 32-true on a CPU.

    Emulated bfloat16 (e.g. on a T4) is slower than float16 with loss scaling: `including_emulation=False`.
    """
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


def build_trainer(
    run: RunSize | FinetuneRun,
    logs_dir: str | Path,
    *,
    precision: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
) -> pl.Trainer:
    """Trainer on whatever accelerator there is, logging to logs_dir/run.name/version_N/metrics.csv and
    keeping the best (validation top-1) and the last checkpoint in that folder's checkpoints/.

    `precision` defaults to the device's best (`precision_for_device`); `callbacks` are added to the checkpoint.
    """
    return pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision or precision_for_device(),
        max_epochs=run.max_epochs,
        limit_train_batches=run.limit_batches,
        limit_val_batches=run.limit_batches,
        logger=CSVLogger(str(logs_dir), name=run.name),
        callbacks=[ModelCheckpoint(monitor="val_acc_top1", mode="max", save_last=True), *callbacks],
        log_every_n_steps=1,
        enable_progress_bar=True,
    )


def latest_run(logs_dir: str | Path, run: RunSize) -> Path | None:
    """The newest logs_dir/run.name/version_N holding metrics.csv and checkpoints/last.ckpt, or None."""
    finished = [
        folder
        for folder in (Path(logs_dir) / run.name).glob("version_*")
        if (folder / "metrics.csv").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    ]
    return max(finished, key=lambda folder: int(folder.name.removeprefix("version_")), default=None)


def train_or_load_latest(
    data: KineticsDataModule, run: RunSize, logs_dir: str | Path
) -> tuple[VideoClassificationLightningModule, Path]:
    """The last checkpoint of the newest finished run of this size on these classes, else a new run's.

    Returns the model (in eval mode, on the GPU when there is one) and its run folder (with metrics.csv).
    """
    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = latest_run(logs_dir, run)
    if folder is not None:
        model = VideoClassificationLightningModule.load_from_checkpoint(
            folder / "checkpoints" / "last.ckpt", map_location=device
        )
        if list(model.hparams.class_names or []) == list(data.classes):
            return model.eval(), folder
    trainer = build_trainer(run, logs_dir)
    trainer.fit(build_model(data, run), data)
    folder = Path(trainer.logger.log_dir)
    model = VideoClassificationLightningModule.load_from_checkpoint(
        folder / "checkpoints" / "last.ckpt", map_location=device
    )
    return model.eval(), folder


@dataclass(frozen=True)
class Predictions:
    """Clip logits of a loader's every clip (CPU, float), with each clip's label and video index."""

    logits: torch.Tensor
    labels: torch.Tensor
    video_index: torch.Tensor


@torch.no_grad()
def predict_logits(model: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Logits of a (B, C, T, H, W) batch, computed on the model's device, returned as float on the CPU."""
    device = next(model.parameters()).device
    return model.eval()(video.to(device)).float().cpu()


def collect_predictions(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    *,
    max_batches: int | None = None,
    device_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Predictions:
    """Run the model over (the first `max_batches` batches of) a validation loader.

    `device_transform` (the data module's) finishes uint8 batches on the model's device, as a Trainer would.
    """
    device = next(model.parameters()).device
    finish = device_transform or (lambda video: video)
    batches = [
        (predict_logits(model, finish(batch["video"].to(device))), batch["label"], batch["video_index"])
        for batch in islice(loader, max_batches)
    ]
    logits, labels, video_index = (torch.cat(parts) for parts in zip(*batches, strict=True))
    return Predictions(logits, labels, video_index)
