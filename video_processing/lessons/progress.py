"""How a training run shows its progress: Lightning's live bar where someone watches, a line per epoch where not.

A live bar redraws itself many times a second; a notebook executed unattended (a web page, a CI log) keeps every
redraw as a line of its output. `EpochLines` prints one line when an epoch ends (after its validation) and
nothing while validating, testing or predicting on their own.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar

from video_processing.data.console import watched


class EpochLines(ProgressBar):
    """One line per training epoch: its number, its time and the metrics Lightning's bar would show."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled:
            return
        metrics = {
            name: value
            for name, value in self.get_metrics(trainer, pl_module).items()
            if name != "v_num" and not name.endswith("_step")
        }
        shown = ", ".join(
            f"{name} {value:.3f}" if isinstance(value, float) else f"{name} {value}" for name, value in metrics.items()
        )
        seconds = time.perf_counter() - self._epoch_start
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} ({seconds:.1f} s): {shown}", flush=True)


def progress_bar(live: bool | None = None) -> ProgressBar:
    """Lightning's TQDM bar when `live` (default: `watched()`), else `EpochLines`."""
    return TQDMProgressBar() if (watched() if live is None else live) else EpochLines()
