"""One description of a training run, and the one place that turns it into data, model and trainer.

The notebooks, fine-tuning and the tests build their runs here, so a size or a precision rule is written once:

    run = finetune_runs("x3d_xs", smoke=False)[0]
    data = build_data("data/ucf101_subset", run)
    model = build_model(data, run)
    build_trainer(run, "lightning_logs").fit(model, data)

(`03_training.ipynb` and `05_finetuning_and_inference.ipynb` write these Lightning objects out, since they are
the lesson; `04` reloads or retrains through the builders.)
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from video_processing.classification import VideoClassificationLightningModule
from video_processing.inference.checkpoints import load_module
from video_processing.kinetics_module import KineticsDataModule
from video_processing.models.backbones import get_backbone
from video_processing.models.finetuning import FrozenBackboneFinetuning


@dataclass(frozen=True)
class Run:
    """Data, model and trainer settings of one run; `name` is its folder under the logs folder.

    Data and model settings carry the names of `KineticsDataModule`'s and `VideoClassificationLightningModule`'s
    arguments, and `build_data`/`build_model` pass each on by that name: one spelling, nothing to keep in step.
    `backbone` is a registry name (`backbones.BACKBONES`); `stem_dim_out` sizes the from-scratch "resnet" only.
    `unfreeze_at_epoch` None trains every layer from the start; a number freezes a pretrained backbone until then.
    `num_workers` None means one loader process per CPU core, counted when the loaders are built.
    `limit_batches` as an int caps the training and validation batches per epoch (smoke runs).
    `transforms_on_device` has workers return uint8 clips, normalized on the GPU (KineticsDataModule's option).
    """

    name: str
    clip_duration: float
    num_frames: int
    crop_size: int
    min_short_side: int
    max_short_side: int
    batch_size: int
    max_epochs: int
    lr: float
    backbone: str = "resnet"
    pretrained: bool = False
    unfreeze_at_epoch: int | None = None
    stem_dim_out: int = 64
    num_workers: int | None = None
    limit_batches: int | float = 1.0
    transforms_on_device: bool = False


# A thin ResNet-50 (stem_dim_out 8) on 64 px crops: trains on a CPU. CPU has configs/synthetic.yaml's sizes
# (what `make demo` trains; tests/test_runs.py checks that they agree). Validation scales the short side to 72 px
# before its 64 px centre crop (torchvision's reference: 128 before 112), so the crop crops the square self-made
# frames too, as lesson 02 shows.
_THIN = dict(clip_duration=1.5, num_frames=8, crop_size=64, min_short_side=72, max_short_side=88, stem_dim_out=8)
SMOKE = Run("notebook_smoke", **_THIN, batch_size=8, num_workers=0, max_epochs=2, lr=3e-3, limit_batches=4)
CPU = Run("notebook_cpu", **_THIN, batch_size=8, num_workers=2, max_epochs=30, lr=5e-3)
# On a GPU: 8 frames of 2 s clips, transformed on the device.
_GPU = dict(clip_duration=2.0, num_frames=8, transforms_on_device=True)
# fmt: off
# A few hundred real clips (the UCF101 subset) from scratch: a half-width ResNet-50 on 112 px crops of 8 frames,
# trained for many short epochs. A full Kinetics-sized model would only memorise so little data.
UCF101 = Run("notebook_ucf101", **_GPU, crop_size=112, min_short_side=128, max_short_side=160, stem_dim_out=32,
             batch_size=16, max_epochs=30, lr=1e-3)
# The Kinetics model: ResNet-50 at full width, 224 px crops of a 256-320 px short side.
KINETICS = Run("notebook_kinetics", **_GPU, crop_size=224, min_short_side=256, max_short_side=320,
               batch_size=8, max_epochs=10, lr=1e-3)
# fmt: on


def lesson_run(*, smoke: bool, cuda: bool, data: str) -> Run:
    """The notebooks' run for their data ("synthetic", "ucf101" or "kinetics") and device.

    Smoke mode is SMOKE everywhere (so CI numbers mean the same on any machine); a CPU trains the thin CPU run
    whatever the data; a GPU trains the size that suits the data.
    """
    if smoke:
        return SMOKE
    if not cuda:
        return CPU
    return {"ucf101": UCF101, "kinetics": KINETICS}.get(data, CPU)


def finetune_runs(backbone: str, *, smoke: bool, pretrained: bool = True) -> tuple[Run, Run]:
    """A fine-tuning run of `backbone` and its from-scratch twin, at the input its registry entry expects.

    Smoke mode shrinks clips to 64 px crops, 2 epochs of 1 batch.
    """
    entry = get_backbone(backbone)
    finetune = Run(
        name=f"finetune_{backbone}",
        backbone=backbone,
        pretrained=pretrained,
        unfreeze_at_epoch=2,
        num_frames=entry.num_frames,
        crop_size=entry.crop_size,
        clip_duration=entry.clip_duration_s,
        min_short_side=entry.short_side,
        max_short_side=round(entry.short_side * 1.25),
        # the transformers: batches of 8 fit a 16 GB T4 (docs/benchmarks.md) and a lower rate suits them
        batch_size=8 if entry.blocks else 16,
        max_epochs=8,
        lr=1e-4 if entry.blocks else 1e-3,
        transforms_on_device=True,  # on a GPU; on a CPU the same work moves from the workers to the main process
    )
    if smoke:
        finetune = replace(
            finetune,
            # 64 px where the network takes it; MViT takes its 224 only, S3D 224 or more
            crop_size=entry.crop_size if entry.fixed_input else max(64, entry.min_crop_size),
            min_short_side=entry.short_side if entry.fixed_input else max(72, entry.min_crop_size),
            max_short_side=round(entry.short_side * 1.25) if entry.fixed_input else max(88, entry.min_crop_size),
            clip_duration=min(entry.clip_duration_s, 1.5),
            batch_size=8,
            num_workers=0,
            max_epochs=2,
            unfreeze_at_epoch=1,
            limit_batches=1,
            transforms_on_device=False,
        )
    scratch = replace(finetune, name=f"scratch_{backbone}", pretrained=False, unfreeze_at_epoch=None)
    return finetune, scratch


def loader_workers(run: Run) -> int:
    """`run.num_workers`, or one per CPU core of this machine."""
    return (os.cpu_count() or 2) if run.num_workers is None else run.num_workers


def _arguments_of(cls: type, run: Run) -> dict:
    """The run's settings that `cls.__init__` takes, by their shared names."""
    accepted = inspect.signature(cls).parameters
    return {field.name: getattr(run, field.name) for field in fields(run) if field.name in accepted}


def build_data(data_path: str | Path, run: Run) -> KineticsDataModule:
    """The data module for `run`'s clips, normalized as the backbone's registry entry expects."""
    entry = get_backbone(run.backbone)
    settings = _arguments_of(KineticsDataModule, run) | {"num_workers": loader_workers(run)}
    return KineticsDataModule(data_path=str(data_path), mean=entry.mean, std=entry.std, **settings)


def build_model(
    data: KineticsDataModule, run: Run, *, weights_url: str | None = None
) -> VideoClassificationLightningModule:
    """`run.backbone` for the data's classes, pretrained or not (`weights_url`: a mirror of the weights)."""
    return VideoClassificationLightningModule(
        num_classes=data.num_classes,
        class_names=data.classes,
        weights_url=weights_url,
        **_arguments_of(VideoClassificationLightningModule, run),
    )


def precision_for_device() -> str:
    """bf16-mixed on GPUs with native bfloat16, 16-mixed on older GPUs, 32-true on a CPU.

    Emulated bfloat16 (e.g. on a T4) is slower than float16 with loss scaling: `including_emulation=False`.
    """
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


def run_loggers(run: Run, logs_dir: str | Path) -> list[pl.loggers.Logger]:
    """A CSVLogger (metrics.csv) and a TensorBoardLogger writing into the same logs_dir/run.name/version_N."""
    csv = CSVLogger(str(logs_dir), name=run.name)
    return [csv, TensorBoardLogger(str(logs_dir), name=run.name, version=csv.version, default_hp_metric=False)]


def build_trainer(run: Run, logs_dir: str | Path, *, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """Trainer on whatever accelerator there is, at the device's best precision (`precision_for_device`).

    Logs to logs_dir/run.name/version_N/ (metrics.csv and TensorBoard events), keeps the best epoch (validation
    top-1, epoch=N-step=M.ckpt) and the last epoch (last.ckpt) in that folder's checkpoints/, and adds
    `FrozenBackboneFinetuning` when the run freezes its backbone at first. `callbacks` are added after those.
    """
    extra = []
    if run.unfreeze_at_epoch is not None:
        # Until that epoch the backbone, batch norms included, does not change and no gradient flows through it,
        # so the head-only epochs cost little more than inference; then every layer trains.
        extra.append(FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=run.unfreeze_at_epoch))
    return pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision_for_device(),
        max_epochs=run.max_epochs,
        limit_train_batches=run.limit_batches,
        limit_val_batches=run.limit_batches,
        logger=run_loggers(run, logs_dir),
        callbacks=[
            ModelCheckpoint(monitor="val_acc_top1", mode="max"),  # the best epoch
            # the last epoch, last.ckpt (configs/synthetic.yaml says why not save_last=True)
            ModelCheckpoint(filename="last", enable_version_counter=False),
            *extra,
            *callbacks,
        ],
        log_every_n_steps=1,
    )


def latest_run(logs_dir: str | Path, run: Run) -> Path | None:
    """The newest logs_dir/run.name/version_N holding metrics.csv and checkpoints/last.ckpt, or None."""
    finished = [
        folder
        for folder in (Path(logs_dir) / run.name).glob("version_*")
        if (folder / "metrics.csv").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
    ]
    return max(finished, key=lambda folder: int(folder.name.removeprefix("version_")), default=None)


def load_latest(
    data: KineticsDataModule, run: Run, logs_dir: str | Path
) -> tuple[VideoClassificationLightningModule, Path, int] | None:
    """The newest finished run of this size on these classes: its last epoch's model (last.ckpt), its folder and
    that epoch's number (counted from 0, as metrics.csv counts), or None."""
    folder = latest_run(logs_dir, run)
    if folder is None:
        return None
    model, checkpoint = load_module(folder / "checkpoints" / "last.ckpt")  # as data: see checkpoints.py
    if list(model.hparams.class_names or []) != list(data.classes):
        return None
    return model, folder, checkpoint["epoch"]


class _StepClock(pl.Callback):
    """When each training and validation epoch started and when each of its batches ended."""

    def __init__(self) -> None:
        self.marks: dict[str, list[float]] = {"train": [], "val": []}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.marks["train"] = [time.perf_counter()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.marks["train"].append(time.perf_counter())

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.marks["val"] = [time.perf_counter()]

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.marks["val"].append(time.perf_counter())


def _epoch_seconds(marks: list[float], batches: int) -> float:
    """An epoch of `batches` from a timed one: its first batch (loader start-up included), then the steady pace."""
    start, first, *rest = marks
    steady = (rest[-1] - first) / len(rest) if rest else first - start
    return (first - start) + (batches - 1) * steady


def _limited(batches: int, limit: int | float) -> int:
    """The batches an epoch runs under Lightning's limit_*_batches (an int: at most that many; a float: a share)."""
    return min(batches, limit) if isinstance(limit, int) else max(1, int(batches * limit))


def measure_fit_seconds(model: pl.LightningModule, data: pl.LightningDataModule, run: Run, *, steps: int = 3) -> float:
    """Seconds a fit of `run` takes here, from a few real steps: a copy of `model` trains `steps` batches and
    validates `steps` batches under a Trainer like the run's. Each epoch pays its first batch (loader start-up
    included) and then the measured steady pace per batch, training and validation alike."""
    clock = _StepClock()
    lightning_log = logging.getLogger("pytorch_lightning")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # the trial's "GPU available" lines would repeat the real run's
    try:
        trial = pl.Trainer(
            accelerator="auto",
            devices=1,
            precision=precision_for_device(),
            max_epochs=1,
            limit_train_batches=steps,
            limit_val_batches=steps,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[clock],
        )
        trial.fit(copy.deepcopy(model), data)
    finally:
        lightning_log.setLevel(level)
    train_batches = _limited(len(data.train_dataloader()), run.limit_batches)
    val_batches = _limited(len(data.val_dataloader()), run.limit_batches)
    epoch = _epoch_seconds(clock.marks["train"], train_batches) + _epoch_seconds(clock.marks["val"], val_batches)
    return run.max_epochs * epoch


def describe_training(
    run: Run, data: KineticsDataModule, *, cuda: bool, model: pl.LightningModule | None = None
) -> str:
    """One sentence: what a run of `run` on `data` trains, and how long it takes on this machine, measured on a
    few real steps of `model` (default: `build_model(data, run)` without pretrained weights, the same cost)."""
    model = model or build_model(data, replace(run, pretrained=False))
    minutes = measure_fit_seconds(model, data, run) / 60
    counts = data.video_counts  # files and shards alike
    return (
        f"training {run.name}: {run.backbone} ({'pretrained' if run.pretrained else 'from scratch'}) for "
        f"{run.max_epochs} epochs over {counts['train']} training and {counts['val']} validation "
        f"videos, about {minutes:.1f} min on this {'GPU' if cuda else 'CPU'} (timed on a few real steps)"
    )
