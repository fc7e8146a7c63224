"""Validate, then train one epoch, under DDP with 2 CPU processes (gloo): run by test_reliability.py.

    python tests/distributed_run.py OUT_DIR DATA_PATH WEIGHTS DATA_ARGS_JSON MODEL_ARGS_JSON

Lightning's "ddp" strategy starts rank 1 by running this file again, so it is a script, not a test. Rank 0
writes OUT_DIR/val.json (the validation metrics); every rank writes OUT_DIR/val_rank<r>.json (the indices of the
validation videos of the clips it read) and OUT_DIR/train_rank<r>.json (the indices of the videos it read in the
training epoch and its losses).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from pytorch_lightning import Callback, Trainer

from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule


class Recorder(Callback):
    def __init__(self):
        self.val_video_indices: list[int] = []
        self.video_indices: list[int] = []
        self.losses: list[float] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.val_video_indices += batch["video_index"].tolist()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.video_indices += batch["video_index"].tolist()
        self.losses.append(float(outputs["loss"]))


def main(out_dir: str, data_path: str, weights: str, data_args: str, model_args: str) -> None:
    run(Path(out_dir), KineticsDataModule(data_path, **json.loads(data_args)), weights, model_args)


def run(
    out: Path, datamodule: KineticsDataModule, weights: str, model_args: str, callbacks: Sequence[Callback] = ()
) -> None:
    """Validate, then fit one epoch, on 2 CPU ranks, writing what the module's docstring names to `out`."""
    model = VideoClassificationLightningModule(**json.loads(model_args))
    model.load_state_dict(torch.load(weights))
    recorder = Recorder()
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        callbacks=[recorder, *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (metrics,) = trainer.validate(model, datamodule, verbose=False)
    if trainer.is_global_zero:
        (out / "val.json").write_text(json.dumps(metrics))
    (out / f"val_rank{trainer.global_rank}.json").write_text(json.dumps(recorder.val_video_indices))
    trainer.fit(model, datamodule)
    record = {"video_indices": recorder.video_indices, "losses": recorder.losses}
    (out / f"train_rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:])
