"""Fine-tuning: the backbone/head split under Lightning's BackboneFinetuning, and the fine-tuning configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import random_batches
from pytorch_lightning.callbacks import BackboneFinetuning, Callback

from video_processing.__main__ import main
from video_processing.classification import VideoClassificationLightningModule

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("finetune_*.yaml"))


class _Snapshots(Callback):
    """The backbone's first weight and the head's weight after every training epoch."""

    def __init__(self):
        self.backbone: list[torch.Tensor] = []
        self.head: list[torch.Tensor] = []

    def on_fit_start(self, trainer, pl_module):
        self._record(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._record(pl_module)

    def _record(self, pl_module):
        self.backbone.append(next(pl_module.backbone.parameters()).detach().clone())  # the stem's first weight
        self.head.append(pl_module.head.weight.detach().clone())


@pytest.mark.parametrize(
    "name, num_frames, crop_size",
    [("x3d_xs", 4, 32), ("slowfast_r50", 8, 32), ("swin3d_t", 4, 32), ("videomae_base", 2, 32)],
    ids=["x3d_xs", "slowfast_r50", "swin3d_t", "videomae_base"],
)
def test_backbone_finetuning_trains_the_head_alone_then_everything(name, num_frames, crop_size):
    """Through the head each registry entry names: a 3D CNN, SlowFast, a Swin and a ViT."""
    torch.manual_seed(0)
    module = VideoClassificationLightningModule(
        num_classes=3, backbone=name, num_frames=num_frames, crop_size=crop_size, lr=0.01
    )
    batches = random_batches(1, 3, (3, num_frames, crop_size, crop_size))
    snapshots = _Snapshots()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=1, train_bn=False), snapshots],
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    first, after_frozen, after_unfrozen = snapshots.backbone
    assert torch.equal(first, after_frozen), "the backbone moved while frozen"
    assert not torch.equal(after_frozen, after_unfrozen), "the backbone did not train once unfrozen"
    assert not torch.equal(snapshots.head[0], snapshots.head[1]), "the head did not train"
    assert len(trainer.optimizers[0].param_groups) == 2  # the head's, then the backbone's


def test_default_module_is_the_from_scratch_resnet_split_in_two():
    module = VideoClassificationLightningModule(num_classes=3, stem_dim_out=8, num_frames=4, crop_size=32)
    assert module.hparams.backbone == "resnet" and module.hparams.pretrained is False
    assert module.head.out_features == 3
    assert not any(isinstance(m, torch.nn.Linear) for m in module.backbone.modules())
    assert module(torch.randn(2, 3, 4, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_the_command_line_accepts_the_finetuning_configs(config, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["video_processing"])  # not pytest's own arguments
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "BackboneFinetuning" in printed and f"backbone: {config.stem.removeprefix('finetune_')}" in printed
