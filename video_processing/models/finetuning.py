"""Fine-tuning a pretrained backbone: the head alone first, on features that do not move, then everything.

Lightning's `BackboneFinetuning` freezes the backbone with `freeze(backbone)`, whose `train_bn=True` default
leaves every batch norm trainable whatever `train_bn` the callback was given: during the "frozen" epochs the
batch norms' weights train and their running statistics follow the new data. `FrozenBackboneFinetuning` freezes
them too, so until `unfreeze_backbone_at_epoch` the backbone is a fixed function of its pretrained weights:

    callbacks=[FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=2)]   # in a config: its class_path
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BackboneFinetuning
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenBackboneFinetuning(BackboneFinetuning):
    """`BackboneFinetuning` whose frozen backbone is frozen, batch norms included.

    Before `unfreeze_backbone_at_epoch`: no backbone parameter requires a gradient or is in the optimizer (the
    head's group is the only one), and the backbone's batch norms run in eval mode, normalizing with their
    pretrained running statistics and leaving them unchanged. From that epoch on, Lightning's schedule: the
    backbone joins the optimizer at `backbone_initial_ratio_lr` of the head's learning rate, rising each epoch
    until it matches it. `train_bn` says whether its batch norms train then too (weights and statistics);
    False keeps them frozen for the whole run. A run resumed after the unfreeze epoch trains the backbone again
    (Lightning's callback restores its optimizer group, but leaves its parameters frozen).
    """

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=False)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)  # adds the backbone's group at the unfreeze epoch
        frozen = trainer.current_epoch < self.unfreeze_backbone_at_epoch
        for module in self.flatten_modules(pl_module.backbone):
            trains = not frozen and (self.train_bn or not isinstance(module, _BatchNorm))
            if trains:
                self.make_trainable(module)
            else:
                self.freeze_module(module)
            if isinstance(module, _BatchNorm):
                module.train(trains)  # eval mode: its running statistics are used, not updated
