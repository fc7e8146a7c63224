"""Runs: the sizes of the notebooks' and fine-tuning runs, and the builders that turn a run into objects."""

import inspect
import time
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import eval_preset
from video_processing.kinetics_module import KineticsDataModule
from video_processing.lessons import runs
from video_processing.lessons.clip_plots import run_steps
from video_processing.lessons.runs import CPU, KINETICS, SMOKE, UCF101, Run
from video_processing.models.backbones import BACKBONES, get_backbone
from video_processing.models.finetuning import FrozenBackboneFinetuning

ROOT = Path(__file__).resolve().parents[1]


def test_lesson_run_follows_smoke_device_and_data():
    assert runs.lesson_run(smoke=True, cuda=True, data="kinetics") is SMOKE
    assert runs.lesson_run(smoke=False, cuda=False, data="kinetics") is CPU
    assert runs.lesson_run(smoke=False, cuda=True, data="ucf101") is UCF101
    assert runs.lesson_run(smoke=False, cuda=True, data="kinetics") is KINETICS
    assert runs.lesson_run(smoke=False, cuda=True, data="synthetic") is CPU
    assert KINETICS.crop_size == 224 and KINETICS.stem_dim_out == 64
    # a few hundred clips do not get the Kinetics-sized network
    assert UCF101.crop_size < KINETICS.crop_size and UCF101.stem_dim_out < KINETICS.stem_dim_out
    assert SMOKE.max_epochs <= 2 and isinstance(SMOKE.limit_batches, int)


@pytest.mark.parametrize("run", [SMOKE, CPU, UCF101, KINETICS, *runs.finetune_runs("x3d_xs", smoke=True)])
def test_validation_centre_crop_crops_even_a_square_frame(run):
    """Lesson 02 shows CenterCrop at the run's sizes: the short side is scaled above the crop, so it crops."""
    steps = run_steps(
        eval_preset(crop_size=run.crop_size, short_side=run.min_short_side),
        torch.zeros(2, 3, 112, 112, dtype=torch.uint8),
    )
    resized, cropped = (next(r.output for r in steps if r.name == name) for name in ("Resize", "CenterCrop"))
    assert cropped.shape[-1] == run.crop_size < resized.shape[-1]


def test_cpu_size_is_make_demo_size():
    config = yaml.safe_load((ROOT / "configs" / "synthetic.yaml").read_text())
    data, model = config["data"], config["model"]
    assert (CPU.clip_duration, CPU.num_frames, CPU.crop_size) == (
        data["clip_duration"],
        data["num_frames"],
        data["crop_size"],
    )
    assert (CPU.min_short_side, CPU.max_short_side, CPU.batch_size) == (
        data["min_short_side"],
        data["max_short_side"],
        data["batch_size"],
    )
    assert (CPU.stem_dim_out, CPU.lr, CPU.max_epochs) == (
        model["stem_dim_out"],
        model["lr"],
        config["trainer"]["max_epochs"],
    )


def test_worker_count_is_read_when_the_loaders_are_built(monkeypatch, tmp_path):
    assert UCF101.num_workers is None
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 5)
    assert runs.build_data(tmp_path, UCF101).hparams.num_workers == 5
    assert runs.build_data(tmp_path, SMOKE).hparams.num_workers == 0


def test_builders_pass_the_sizes_on(tmp_path, monkeypatch):
    data = runs.build_data(tmp_path, SMOKE)
    hparams = data.hparams
    assert (hparams.clip_duration, hparams.crop_size, hparams.num_frames, hparams.num_workers) == (1.5, 64, 8, 0)
    monkeypatch.setattr(type(data), "classes", property(lambda self: ["a", "b", "c"]))
    model = runs.build_model(data, SMOKE)
    assert model.hparams.num_classes == 3 and model.hparams.class_names == ["a", "b", "c"]
    assert model.hparams.stem_dim_out == 8 and model.hparams.backbone == "resnet"
    assert model.example_input_array.shape == (1, 3, 8, 64, 64)


def test_trainer_logs_csv_and_tensorboard_under_the_run_name(tmp_path):
    trainer = runs.build_trainer(SMOKE, tmp_path)
    assert [type(logger) for logger in trainer.loggers] == [CSVLogger, TensorBoardLogger]
    assert {Path(logger.log_dir) for logger in trainer.loggers} == {tmp_path / "notebook_smoke" / "version_0"}
    assert trainer.max_epochs == SMOKE.max_epochs
    assert trainer.checkpoint_callback.monitor == "val_acc_top1"


@pytest.mark.parametrize(
    "cuda, native_bf16, expected",
    [(False, False, "32-true"), (True, True, "bf16-mixed"), (True, False, "16-mixed")],
)
def test_precision_follows_the_device(monkeypatch, cuda, native_bf16, expected):
    monkeypatch.setattr(runs.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(runs.torch.cuda, "is_bf16_supported", lambda including_emulation: native_bf16)
    assert runs.precision_for_device() == expected


def _finished(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch,step\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    return folder


def test_latest_run_is_the_newest_finished_version(tmp_path):
    run = replace(SMOKE, name="r")
    assert runs.latest_run(tmp_path, run) is None
    _finished(tmp_path / "r" / "version_2")
    newest = _finished(tmp_path / "r" / "version_10")
    (tmp_path / "r" / "version_11").mkdir()  # started, never checkpointed
    _finished(tmp_path / "other" / "version_12")
    assert runs.latest_run(tmp_path, run) == newest


def test_finetune_and_scratch_runs_differ_only_in_weights_and_freezing(tmp_path):
    finetune, scratch = runs.finetune_runs("r2plus1d_18", smoke=False)
    entry = get_backbone("r2plus1d_18")
    assert (finetune.num_frames, finetune.crop_size, finetune.min_short_side) == (16, 112, entry.short_side)
    assert finetune.pretrained and not scratch.pretrained
    assert finetune.unfreeze_at_epoch == 2 and scratch.unfreeze_at_epoch is None
    assert replace(scratch, name=finetune.name, pretrained=True, unfreeze_at_epoch=2) == finetune
    data = runs.build_data(tmp_path, finetune)
    assert (data.hparams.mean, data.hparams.std) == (entry.mean, entry.std)
    callbacks = {
        run.name: [type(c) for c in runs.build_trainer(run, tmp_path).callbacks] for run in (finetune, scratch)
    }
    assert FrozenBackboneFinetuning in callbacks[finetune.name]
    assert FrozenBackboneFinetuning not in callbacks[scratch.name]


def test_smoke_finetuning_runs_are_small():
    finetune, _ = runs.finetune_runs("x3d_xs", smoke=True, pretrained=False)
    assert not finetune.pretrained and finetune.unfreeze_at_epoch < finetune.max_epochs <= 2
    assert finetune.crop_size == 64 and finetune.limit_batches == 1 and finetune.num_workers == 0


def test_a_run_is_one_description_for_every_builder():
    fields = set(Run.__dataclass_fields__)
    assert {"backbone", "pretrained", "unfreeze_at_epoch", "stem_dim_out", "num_workers"} <= fields
    # every setting reaches a builder under its own name: the data module's, the model's, or the trainer's
    data_args = set(inspect.signature(KineticsDataModule).parameters)
    model_args = set(inspect.signature(VideoClassificationLightningModule).parameters)
    trainer_side = {"name", "max_epochs", "limit_batches", "unfreeze_at_epoch"}
    assert fields - data_args - model_args - trainer_side == set()


def test_builders_take_every_data_and_model_setting_from_the_run(tmp_path, monkeypatch):
    run = replace(CPU, clip_duration=1.0, num_frames=4, crop_size=48, min_short_side=48, lr=0.02, stem_dim_out=4)
    data = runs.build_data(tmp_path, run)
    hparams = data.hparams
    assert (hparams.clip_duration, hparams.num_frames, hparams.crop_size, hparams.min_short_side) == (1.0, 4, 48, 48)
    monkeypatch.setattr(type(data), "classes", property(lambda self: ["a", "b"]))
    model = runs.build_model(data, run)
    assert (model.hparams.lr, model.hparams.stem_dim_out, model.hparams.num_frames) == (0.02, 4, 4)


class _Steps(pl.LightningModule):
    """A stand-in model whose every training and validation step takes `delay` seconds."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.layer = delay, torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        time.sleep(self.delay)
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        time.sleep(self.delay)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Batches(pl.LightningDataModule):
    """20 training and 10 validation batches of random numbers: no time spent loading."""

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(20, 4)), batch_size=1)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(10, 4)), batch_size=1)


def test_fit_time_is_measured_on_real_steps():
    """The estimate follows the step time it measures: steps 50 ms slower make each of the run's 3 epochs of
    20 + 10 batches 1.5 s slower, whatever a constant would say."""
    run = replace(CPU, max_epochs=3, limit_batches=1.0)
    fast = runs.measure_fit_seconds(_Steps(0.0), _Batches(), run)
    slow = runs.measure_fit_seconds(_Steps(0.05), _Batches(), run)
    assert slow - fast == pytest.approx(3 * 30 * 0.05, rel=0.3)
    capped = runs.measure_fit_seconds(_Steps(0.05), _Batches(), replace(run, limit_batches=4))
    assert capped == pytest.approx(3 * 8 * 0.05, rel=0.4)  # limit_batches caps both loops at 4 batches


def test_describe_training_names_the_run_and_its_measured_time(small_dataset):
    data = runs.build_data(small_dataset, SMOKE)
    data.setup("fit")
    text = runs.describe_training(SMOKE, data, cuda=False)
    assert "notebook_smoke" in text and "2 epochs over 24 training and 12 validation videos" in text
    assert "timed on a few real steps" in text and float(text.split("about ")[1].split(" min")[0]) >= 0


@pytest.mark.parametrize("smoke", [True, False])
def test_every_backbone_has_fine_tuning_runs_at_an_input_it_takes(smoke):
    for name, entry in BACKBONES.items():
        finetune, scratch = runs.finetune_runs(name, smoke=smoke)
        assert (finetune.num_frames, finetune.crop_size) == (scratch.num_frames, scratch.crop_size)
        assert finetune.crop_size >= entry.min_crop_size and finetune.min_short_side >= finetune.crop_size
        if entry.fixed_input:
            assert (finetune.num_frames, finetune.crop_size) == (entry.num_frames, entry.crop_size)
        if not smoke:
            assert finetune.batch_size == (8 if entry.blocks else 16)
