"""Progress display: Lightning's live bar where someone watches, one line per epoch where no one does."""

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from video_processing.lessons.progress import EpochLines, progress_bar, watched


class _Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch[0]).pow(2).mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_page_executed_unattended_gets_one_line_per_epoch(capfd, tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(12, 4)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, callbacks=[EpochLines()], default_root_dir=tmp_path
    )
    trainer.fit(_Tiny(), loader, loader)
    trainer.validate(_Tiny(), loader)  # a stand-alone validation prints nothing
    printed = capfd.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if "epoch" in line.lower() or "%" in line]
    assert [line.split(" (")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "train_loss_epoch" in lines[-1] and "val_loss" in lines[-1] and "train_loss_step" not in lines[-1]


def test_jupyter_and_colab_keep_lightnings_live_bar(monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/notebooks/03_training.ipynb")  # set by jupyter_server
    assert watched() and isinstance(progress_bar(), TQDMProgressBar)
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert not watched() and isinstance(progress_bar(), EpochLines)  # nbclient, nbmake, a script
