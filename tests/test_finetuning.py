"""Fine-tuning: the backbone/head split, a frozen backbone that stays frozen, and the fine-tuning configs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import SMALLEST_INPUT, config_callbacks, random_batches
from pytorch_lightning.callbacks import BaseFinetuning, Callback, ModelCheckpoint
from torch.nn.modules.batchnorm import _BatchNorm

from video_processing.__main__ import main
from video_processing.classification import VideoClassificationLightningModule
from video_processing.lessons import runs
from video_processing.models.backbones import BACKBONES, build_backbone
from video_processing.models.finetuning import FrozenBackboneFinetuning

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("finetune_*.yaml"))


class _Recorder(Callback):
    """The backbone's state (weights and batch-norm statistics), the head's weight, and the parameters of each
    optimizer group, before training and after every training epoch."""

    def __init__(self):
        self.backbone: list[dict[str, torch.Tensor]] = []
        self.head: list[torch.Tensor] = []
        self.groups: list[list[set[int]]] = []

    def on_fit_start(self, trainer, pl_module):
        self._record(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._record(trainer, pl_module)

    def _record(self, trainer, pl_module):
        self.backbone.append({k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()})
        self.head.append(pl_module.head.weight.detach().clone())
        self.groups.append([{id(p) for p in group["params"]} for group in trainer.optimizers[0].param_groups])


def _module(backbone: str = "x3d_xs", num_frames: int = 4, crop_size: int = 32) -> VideoClassificationLightningModule:
    torch.manual_seed(0)
    return VideoClassificationLightningModule(
        num_classes=3, backbone=backbone, num_frames=num_frames, crop_size=crop_size, lr=0.01
    )


def _fit(module, trainer: pl.Trainer, epochs_of_batches: int = 1, batch_size: int = 4) -> list[str]:
    """Fit on random clips; the warnings the run raised."""
    batches = random_batches(epochs_of_batches, 3, tuple(module.example_input_array.shape[1:]), batch_size)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    return [str(w.message) for w in caught]


def _quiet_trainer(epochs: int, callbacks: list[Callback], **options) -> pl.Trainer:
    options = dict(logger=False, enable_checkpointing=False, limit_val_batches=0) | options
    return pl.Trainer(
        max_epochs=epochs, callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False, **options
    )


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


def _assert_frozen(recorder: _Recorder, module, epochs: int) -> None:
    """The first `epochs` epochs: nothing of the backbone changes (weights, batch-norm statistics and counters), the
    head trains, the optimizer holds the head alone."""
    head = {id(p) for p in module.head.parameters()}
    for epoch in range(epochs):
        before, after = recorder.backbone[epoch], recorder.backbone[epoch + 1]
        changed = sorted(_changed(before, after))
        assert not changed, f"epoch {epoch}: {len(changed)} tensors of the frozen backbone changed: {changed[:4]}"
        assert not torch.equal(recorder.head[epoch], recorder.head[epoch + 1]), f"epoch {epoch}: the head did not train"
        assert recorder.groups[epoch + 1] == [head], f"epoch {epoch}: the optimizer holds more than the head"


def _assert_frozen_then_trained(recorder: _Recorder, module, unfreeze_at: int, train_bn: bool = True) -> None:
    """Frozen epochs as `_assert_frozen` says. The epoch after: the backbone trains, in a group of its own."""
    _assert_frozen(recorder, module, unfreeze_at)
    head = {id(p) for p in module.head.parameters()}
    norms = [name for name, m in module.backbone.named_modules() if isinstance(m, _BatchNorm)]  # none in a ViT
    changed = _changed(recorder.backbone[unfreeze_at], recorder.backbone[unfreeze_at + 1])
    trains = {id(p) for m in module.backbone.modules() if train_bn or not isinstance(m, _BatchNorm)
              for p in m.parameters(recurse=False)}  # fmt: skip
    assert recorder.groups[unfreeze_at + 1] == [head, trains]  # the head's group, then the backbone's
    if norms:
        assert f"{norms[0]}.running_mean" in changed if train_bn else not any(n.startswith(norms[0]) for n in changed)
    assert [name for name in changed if name.endswith("weight")], "the backbone did not train once unfrozen"


@pytest.mark.parametrize(
    "name, num_frames, crop_size",
    [("x3d_xs", 4, 32), ("slowfast_r50", 8, 32), ("swin3d_t", 4, 32), ("videomae_base", 2, 32)],
    ids=["x3d_xs", "slowfast_r50", "swin3d_t", "videomae_base"],
)
def test_the_frozen_backbone_does_not_change_and_the_head_trains(name, num_frames, crop_size):
    """Through the head each registry entry names: a 3D CNN, SlowFast, a Swin and a ViT."""
    module, recorder = _module(name, num_frames, crop_size), _Recorder()
    trainer = _quiet_trainer(2, [FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=1), recorder])
    caught = _fit(module, trainer)
    _assert_frozen_then_trained(recorder, module, unfreeze_at=1)
    assert not [message for message in caught if "already exist within another group" in message]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_entry_trains_its_head_alone_while_the_backbone_is_frozen(name):
    """Each registry entry, random weights, at its smallest input: the layer its entry names as the head is the
    network's final classifier (its output is the logits), and during a frozen epoch (batches of 2 clips) only
    that head trains: no backbone tensor changes (weights, batch-norm statistics) and the optimizer holds the head
    alone. The unfrozen epochs are checked on the four architectures above."""
    frames, crop = SMALLEST_INPUT.get(name, (2, 32))
    torch.manual_seed(0)
    network = build_backbone(name, num_frames=frames, crop_size=crop).eval()
    head, outputs = network.get_submodule(BACKBONES[name].head), []
    head.register_forward_hook(lambda module, args, output: outputs.append(output))
    with torch.no_grad():
        logits = network(torch.randn(1, 3, frames, crop, crop))
    assert isinstance(head, torch.nn.Linear) and logits.shape == (1, 400)
    torch.testing.assert_close(outputs[0].reshape(logits.shape), logits, rtol=0, atol=0)
    module, recorder = _module(name, frames, crop), _Recorder()
    _fit(module, _quiet_trainer(1, [FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=1), recorder]), batch_size=2)
    _assert_frozen(recorder, module, epochs=1)


def test_train_bn_false_keeps_the_batch_norms_frozen_after_the_unfreeze_epoch():
    module, recorder = _module(), _Recorder()
    trainer = _quiet_trainer(2, [FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=1, train_bn=False), recorder])
    _fit(module, trainer)
    _assert_frozen_then_trained(recorder, module, unfreeze_at=1, train_bn=False)


def test_build_trainer_freezes_a_finetuning_run(tmp_path):
    run, _ = runs.finetune_runs("x3d_xs", smoke=True, pretrained=False)
    assert (run.unfreeze_at_epoch, run.max_epochs) == (1, 2)
    module, recorder = _module(), _Recorder()
    caught = _fit(module, runs.build_trainer(run, tmp_path, callbacks=[recorder]))
    _assert_frozen_then_trained(recorder, module, unfreeze_at=1)
    assert not [message for message in caught if "already exist within another group" in message]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_the_finetuning_configs_freeze_the_backbone(config):
    """Each config's own fine-tuning callback, built from its YAML, on its backbone (random weights, small clips).

    MViTv2-S and S3D take only 224 px clips (S3D 64 frames): training them here would take minutes and over 10 GB,
    so their configs' callbacks run on X3D-XS at 4 x 32: the callback does not depend on the backbone."""
    (finetuning,) = [c for c in config_callbacks(config) if isinstance(c, BaseFinetuning)]
    unfreeze_at = finetuning.unfreeze_backbone_at_epoch
    assert unfreeze_at == 2
    settings = yaml.safe_load(config.read_text())
    backbone, frames = settings["model"]["backbone"], settings["data"]["num_frames"]
    if backbone in ("mvit_v2_s", "s3d"):
        backbone, frames = "x3d_xs", 4
    module, recorder = _module(backbone, frames, 32), _Recorder()
    caught = _fit(module, _quiet_trainer(unfreeze_at + 1, [finetuning, recorder]))
    _assert_frozen_then_trained(recorder, module, unfreeze_at=unfreeze_at)
    assert not [message for message in caught if "already exist within another group" in message]


class _StopAfterEpoch(Callback):
    """Stops a run at the end of `epoch`, as an interrupted run stops."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = trainer.current_epoch == self.epoch


def test_a_run_resumed_after_the_unfreeze_epoch_trains_the_backbone(tmp_path):
    """Lightning's callback restores the backbone's optimizer group on resuming, but leaves it frozen."""
    saving = ModelCheckpoint(dirpath=tmp_path, filename="last")
    callbacks = [FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=1), saving, _StopAfterEpoch(1)]
    _fit(_module(), _quiet_trainer(3, callbacks, enable_checkpointing=True))
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 1
    resumed, recorder = _module(), _Recorder()
    trainer = _quiet_trainer(3, [FrozenBackboneFinetuning(unfreeze_backbone_at_epoch=1), recorder])
    loader = torch.utils.data.DataLoader(random_batches(1, 3), batch_size=None)
    trainer.fit(resumed, train_dataloaders=loader, ckpt_path=tmp_path / "last.ckpt")
    assert trainer.current_epoch == 3 and len(trainer.optimizers[0].param_groups) == 2
    changed = _changed(recorder.backbone[0], recorder.backbone[1])
    assert [name for name in changed if name.endswith("weight") and "conv" in name], "the backbone stayed frozen"


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
