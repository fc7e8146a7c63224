"""last.ckpt is the last epoch and the best epoch is kept apart: in every config, in build_trainer, and what
the lessons load, on runs whose best epoch is the first, not the last."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import SMALL_DATA_KWARGS, FallingValAccuracy, config_callbacks
from pytorch_lightning.callbacks import ModelCheckpoint

from video_processing.lessons import runs
from video_processing.lessons.result_plots import read_epoch_metrics

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


class _FallingAccuracy(pl.LightningModule):
    """A linear model whose logged validation top-1 falls each epoch: its best epoch is the first."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).square().mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_acc_top1", 1.0 - 0.1 * self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_with(callbacks: list[pl.Callback], epochs: int) -> pl.LightningModule:
    """Three epochs of two steps of `_FallingAccuracy` under `callbacks`; the trained module."""
    module = _FallingAccuracy()
    loader = torch.utils.data.DataLoader(torch.randn(4, 4), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=epochs, callbacks=callbacks, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return module


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_a_config_keeps_the_last_epoch_as_last_ckpt_and_the_best_apart(config, tmp_path, monkeypatch):
    """The config's checkpoint callbacks, built from its YAML; kinetics400's every-1000-steps callback at every 4
    steps, so a 6-step run saves at step 4 and still ends with its final weights in last.ckpt."""
    monkeypatch.chdir(tmp_path)  # the configs' folders are relative
    callbacks = [c for c in config_callbacks(config, every_n_train_steps=4) if isinstance(c, ModelCheckpoint)]
    module = _fit_with(callbacks, epochs=3)
    folder = tmp_path / "lightning_logs" / config.stem / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 6), "last.ckpt is not the last epoch"
    for name, value in module.state_dict().items():
        assert torch.equal(last["state_dict"][name], value), f"last.ckpt's {name} is not the final weight"
    assert [path.name for path in folder.glob("epoch=*.ckpt")] == ["epoch=0-step=2.ckpt"]  # the best, apart
    assert torch.load(folder / "epoch=0-step=2.ckpt", weights_only=True)["epoch"] == 0

    # a second run in the same fixed folder rewrites last.ckpt in place (no last-v1.ckpt beside it)
    _fit_with([c for c in config_callbacks(config) if isinstance(c, ModelCheckpoint)], epochs=1)
    assert [path.name for path in folder.glob("last*.ckpt")] == ["last.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 2


TINY = replace(
    runs.SMOKE, name="tiny", **SMALL_DATA_KWARGS, stem_dim_out=4, batch_size=6, max_epochs=2, limit_batches=2
)


def test_build_trainer_and_load_latest_give_the_last_epoch_and_its_logged_numbers(small_dataset, tmp_path):
    """What lesson 04 does with 03's run: load its last epoch, say which, and validate it to the numbers logged."""
    data = runs.build_data(small_dataset, TINY)
    model = runs.build_model(data, TINY)
    trainer = runs.build_trainer(TINY, tmp_path, callbacks=[FallingValAccuracy()])
    trainer.fit(model, data)
    folder = tmp_path / "tiny" / "version_0" / "checkpoints"
    assert sorted(path.name for path in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]

    loaded, run_dir, epoch = runs.load_latest(data, TINY, tmp_path)
    assert run_dir == folder.parent and epoch == TINY.max_epochs - 1
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value.cpu()), f"{name} is not the last epoch's"

    logged = read_epoch_metrics(run_dir / "metrics.csv")
    evaluator = pl.Trainer(logger=False, limit_val_batches=TINY.limit_batches, enable_progress_bar=False)
    (validation,) = evaluator.validate(loaded, datamodule=data, verbose=False)
    for name in ("val_loss", "val_acc_top1", "val_video_acc_top1"):
        assert validation[name] == pytest.approx(logged[name][epoch], abs=1e-5), name
