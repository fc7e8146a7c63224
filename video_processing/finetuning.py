"""Fine-tuning a pretrained backbone next to training it from scratch: run sizes, data, model and trainer.

A fine-tuning run trains the new head alone for `unfreeze_at_epoch` epochs (Lightning's BackboneFinetuning),
then the whole network, the backbone at a tenth of the learning rate at first. A from-scratch run trains the
same architecture from random weights, everything from the first step. The configs/finetune_*.yaml files are
the command-line form of a fine-tuning run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BackboneFinetuning

from video_processing.backbones import get_backbone
from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule
from video_processing.notebook import build_data_module
from video_processing.notebook import build_trainer as build_notebook_trainer


@dataclass(frozen=True)
class FinetuneRun:
    """Data, model and trainer settings of one run; `name` is its folder under the logs folder.

    `unfreeze_at_epoch` None trains every layer from the start.
    """

    name: str
    backbone: str
    pretrained: bool
    unfreeze_at_epoch: int | None
    num_frames: int
    crop_size: int
    clip_duration_s: float
    min_short_side: int
    max_short_side: int
    batch_size: int
    num_workers: int
    max_epochs: int
    lr: float
    limit_batches: int | float = 1.0  # an int caps train and val batches per epoch
    transforms_on_device: bool = False  # uint8 batches, normalized on the GPU (KineticsDataModule's option)


def finetune_runs(backbone: str, *, smoke: bool, pretrained: bool = True) -> tuple[FinetuneRun, FinetuneRun]:
    """A fine-tuning run of `backbone` and its from-scratch twin, at the input its weights expect.

    Smoke mode shrinks clips to 64 px crops of the small self-made videos, 2 epochs of 1 batch.
    """
    entry = get_backbone(backbone)
    finetune = FinetuneRun(
        name=f"finetune_{backbone}",
        backbone=backbone,
        pretrained=pretrained,
        unfreeze_at_epoch=2,
        num_frames=entry.num_frames,
        crop_size=entry.crop_size,
        clip_duration_s=entry.clip_duration_s,
        min_short_side=entry.short_side,
        max_short_side=round(entry.short_side * 1.25),
        batch_size=16,
        num_workers=os.cpu_count() or 2,
        max_epochs=8,
        lr=1e-3,
    )
    if smoke:
        finetune = replace(
            finetune,
            crop_size=64,
            min_short_side=72,
            max_short_side=88,
            clip_duration_s=min(entry.clip_duration_s, 1.5),
            batch_size=8,
            num_workers=0,
            max_epochs=2,
            unfreeze_at_epoch=1,
            limit_batches=1,
        )
    scratch = replace(finetune, name=f"scratch_{backbone}", pretrained=False, unfreeze_at_epoch=None)
    return finetune, scratch


def build_data(data_path: str | Path, run: FinetuneRun) -> KineticsDataModule:
    """The data module for `run`, normalized as the backbone's pretrained weights expect."""
    entry = get_backbone(run.backbone)
    return build_data_module(data_path, run, mean=entry.mean, std=entry.std)


def build_model(data: KineticsDataModule, run: FinetuneRun) -> VideoClassificationLightningModule:
    """`run.backbone` with a new head for the data's classes, pretrained or not."""
    return VideoClassificationLightningModule(
        num_classes=data.num_classes,
        class_names=data.classes,
        lr=run.lr,
        num_frames=run.num_frames,
        crop_size=run.crop_size,
        backbone=run.backbone,
        pretrained=run.pretrained,
    )


def build_trainer(run: FinetuneRun, logs_dir: str | Path, precision: str = "32-true") -> pl.Trainer:
    """The notebooks' Trainer (`notebook.build_trainer`), with BackboneFinetuning when the run freezes its
    backbone at first."""
    callbacks = []
    if run.unfreeze_at_epoch is not None:
        # train_bn=False: frozen batch norms keep their pretrained statistics, and no gradient has to flow
        # through the frozen backbone, so the head-only epochs cost little more than inference.
        callbacks.append(BackboneFinetuning(unfreeze_backbone_at_epoch=run.unfreeze_at_epoch, train_bn=False))
    return build_notebook_trainer(run, logs_dir, precision=precision, callbacks=callbacks)
