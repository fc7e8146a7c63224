"""Clear errors before training, resuming, determinism, no hung loaders, damaged files: on a tiny dataset."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pytorch_lightning import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader, get_worker_info

from video_processing.__main__ import VideoClassificationCLI
from video_processing.check_data import check_file
from video_processing.classification import VideoClassificationLightningModule, make_kinetics_resnet
from video_processing.data.datasets import RandomClipDataset
from video_processing.data.items import collate_clips
from video_processing.data.layouts import LayoutError
from video_processing.data.loaders import LoaderError
from video_processing.data.samplers import BalancedDistributedSampler
from video_processing.data.video import write_video
from video_processing.kinetics_module import KineticsDataModule

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("bright", "dark", "mid")
FPS = 12
# Small enough for seconds per run on a CPU: 4 frames of 32 x 32, a ResNet with 4 stem channels.
DATA_ARGS = dict(
    clip_duration=1.0,
    batch_size=4,
    num_workers=0,
    num_frames=4,
    crop_size=32,
    min_short_side=40,
    max_short_side=48,
)
MODEL_ARGS = dict(num_classes=len(CLASSES), class_names=list(CLASSES), stem_dim_out=4, num_frames=4, crop_size=32)


def write_tiny_dataset(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> Path:
    """Class folders of 64 x 48 noise videos, 1.25-2.4 s at 12 fps, whose class is their brightness."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c, label in enumerate(CLASSES):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                num_frames = int(rng.integers(15, 29))
                frames = rng.integers(0, 80, (num_frames, 48, 64, 3), dtype=np.uint8) + np.uint8(80 * c)
                write_video(root / split / label / f"{label}_{i}.mp4", frames, FPS)
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def quiet_trainer(**kwargs) -> Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**{**defaults, **kwargs})


# --- clear errors before training ------------------------------------------------------------------------


def _listed(root: Path, files: dict[str, list[str]]) -> Path:
    """A class-folder layout of empty files: enough for the errors raised while listing, before any read."""
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / folder / name).touch()
    return root


@pytest.mark.parametrize(
    "files, message",
    [
        ({}, r"does not exist\. Pass --data\.data_path DIR \(or data_path=DIR\)"),
        ({"train/a": ["notes.txt"], "train/b": [], "val/a": []}, r"lists no training videos"),
        (
            {"train/a": ["1.mp4", "2.mp4"], "val/a": ["3.mp4"]},
            r"training split has videos of 1 class \['a'\]",
        ),
        ({"train/a": ["1.mp4"], "train/b": ["2.mp4"], "val/a": []}, r"lists no validation videos"),
        (
            {"train/a": ["1.mp4"], "train/b": ["2.mp4"], "val/a": ["3.mp4"]},
            r"validation split has videos of one",
        ),
        (
            {"train/a": ["1.mp4"], "train/b": ["2.mp4"], "val/c": ["3.mp4"]},
            r"label 'c' does not occur in the trai",
        ),
    ],
    ids=["absent", "no-videos", "one-train-class", "no-val", "one-val-class", "unknown-val-label"],
)
def test_unusable_dataset_folders_are_refused_with_path_and_fix(tmp_path, files, message):
    root = _listed(tmp_path / "data", files) if files else tmp_path / "data"
    with pytest.raises(LayoutError, match=message) as error:
        _ = KineticsDataModule(str(root)).classes
    assert str(root) in str(error.value)


def test_the_missing_data_path_error_says_where_the_path_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("KINETICS_DATA_PATH", str(tmp_path / "from_env"))
    with pytest.raises(LayoutError, match="from_env does not exist. It came from KINETICS_DATA_PATH"):
        _ = KineticsDataModule().classes
    # a data_path given (by a config, a flag or in Python) wins over the environment, and the fix says so
    with pytest.raises(LayoutError, match="given does not exist. Pass --data.data_path DIR") as error:
        _ = KineticsDataModule(str(tmp_path / "given")).classes
    assert "KINETICS_DATA_PATH" not in str(error.value)
    monkeypatch.delenv("KINETICS_DATA_PATH")
    with pytest.raises(LayoutError, match="Set KINETICS_DATA_PATH or pass --data.data_path DIR"):
        _ = KineticsDataModule().classes


def test_unknown_validation_label_in_a_pytorchvideo_csv_is_refused(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).touch()
    (tmp_path / "train.csv").write_text("a.mp4 0\nb.mp4 1\n")
    (tmp_path / "val.csv").write_text("c.mp4 2\n")
    with pytest.raises(LayoutError, match=r"val\.csv.*label '2' does not occur in the training split"):
        _ = KineticsDataModule(str(tmp_path)).classes


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"clip_duration": 30.0},
            r"clip_duration=30\.0 s is longer than every one of 18 videos.*--data\.clip_duration 2\.\d",
        ),
        ({"num_frames": 40}, r"num_frames=40 is more than a clip of 1\.0 s holds.*lower --data\.num_frames"),
    ],
    ids=["clip-too-long", "too-many-frames"],
)
def test_clips_that_fit_no_video_are_refused_in_setup_without_leaving_files_open(tiny_data, override, message):
    datamodule = KineticsDataModule(str(tiny_data), **{**DATA_ARGS, **override})
    open_before = _open_files()
    with pytest.raises(ValueError, match=message):
        datamodule.setup("fit")
    assert _open_files() == open_before
    KineticsDataModule(str(tiny_data), **DATA_ARGS).setup("fit")  # the fitting settings pass
    assert _open_files() == open_before


@pytest.mark.parametrize(
    "override, message",
    [
        ({"crop_size": 16}, r"crop_size=16: .*pass --data\.crop_size 32 or more"),
        ({"num_frames": 0}, r"num_frames=0: .*pass --data\.num_frames"),
    ],
)
def test_a_model_input_the_network_cannot_take_is_refused_with_the_fix(override, message):
    with pytest.raises(ValueError, match=message):
        make_kinetics_resnet(**{"num_classes": 3, "stem_dim_out": 4, **override})


# --- resuming --------------------------------------------------------------------------------------------


class Preempted(RuntimeError):
    """Stands for a job killed mid-epoch."""


class InterruptAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Preempted(f"stopped at step {self.step}")


class FirstStepRecorder(Callback):
    """Training state as the first training batch starts."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if hasattr(self, "global_step"):
            return
        optimizer = trainer.optimizers[0]
        self.global_step, self.epoch = trainer.global_step, trainer.current_epoch
        self.lr = optimizer.param_groups[0]["lr"]
        self.scheduler_step = trainer.lr_scheduler_configs[0].scheduler.last_epoch
        self.adam_state = {k: v.clone() for k, v in optimizer.state[optimizer.param_groups[0]["params"][0]].items()}


def _fit_cli(config: Path, data: Path, callback: Callback, ckpt_path: str | None = None) -> None:
    args = ["fit", "--config", str(config), "--data.data_path", str(data), "--model.stem_dim_out", "4"]
    args += [f"--data.{key}={value}" for key, value in DATA_ARGS.items()]
    args += [
        "--trainer.max_epochs",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
    ]
    args += ["--trainer.enable_model_summary", "false"]
    args += ["--ckpt_path", ckpt_path] if ckpt_path else []
    VideoClassificationCLI(
        VideoClassificationLightningModule,
        KineticsDataModule,
        save_config_kwargs={"overwrite": True},
        args=args,
        trainer_defaults={"callbacks": [callback]},
    )


def _load_last_checkpoint(folder: Path) -> dict:
    newest = max(folder.glob("lightning_logs/**/last.ckpt"), key=lambda path: path.stat().st_mtime)
    return torch.load(newest, weights_only=False)


def test_interrupted_fit_resumes_from_last_checkpoint_with_its_step_epoch_optimizer_and_lr(
    tiny_data, tmp_path, monkeypatch
):
    """12 videos, batches of 4: 3 steps per epoch, 2 epochs; a checkpoint every 2 steps, stopped at step 5."""
    config = yaml.safe_load((REPO / "configs" / "synthetic.yaml").read_text())
    (keep_last,) = [c for c in config["trainer"]["callbacks"] if c["init_args"].get("filename") == "last"]
    keep_last["init_args"]["every_n_train_steps"] = 2  # last.ckpt every 2 steps instead of every epoch
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)  # the config's logs and checkpoints are relative paths
    with pytest.raises(Preempted):
        _fit_cli(tmp_path / "run.yaml", tiny_data, InterruptAt(step=5))
    saved = _load_last_checkpoint(tmp_path)
    assert (saved["global_step"], saved["epoch"]) == (4, 1)

    resumed = FirstStepRecorder()
    _fit_cli(tmp_path / "run.yaml", tiny_data, resumed, ckpt_path="last")
    assert (resumed.global_step, resumed.epoch) == (4, 1)
    assert resumed.scheduler_step == 4
    total_steps = 6
    assert resumed.lr == pytest.approx(config["model"]["lr"] * (1 + np.cos(np.pi * 4 / total_steps)) / 2)
    saved_adam = saved["optimizer_states"][0]["state"][0]
    assert float(resumed.adam_state["step"]) == 4
    assert torch.equal(resumed.adam_state["exp_avg"], saved_adam["exp_avg"])
    final = _load_last_checkpoint(tmp_path)
    # where an uninterrupted run ends: step 6, saved by the every-2-steps save at the last batch of epoch 1 (the
    # second), which a save inside an epoch records as that epoch
    assert (final["epoch"], final["global_step"]) == (1, total_steps)


# --- determinism -----------------------------------------------------------------------------------------


class BatchRecorder(Callback):
    def __init__(self):
        self.videos, self.losses = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.videos.append(batch["video"].clone())
        self.losses.append(float(outputs["loss"]))


def _first_steps(data: Path, seed: int, num_workers: int) -> BatchRecorder:
    seed_everything(seed, workers=True)
    recorder = BatchRecorder()
    datamodule = KineticsDataModule(str(data), **{**DATA_ARGS, "num_workers": num_workers})
    model = VideoClassificationLightningModule(**MODEL_ARGS)
    quiet_trainer(max_steps=2, limit_val_batches=0, callbacks=[recorder]).fit(model, datamodule)
    return recorder


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_seed_repeats_the_first_batches_and_losses(tiny_data, num_workers):
    first, second = _first_steps(tiny_data, 7, num_workers), _first_steps(tiny_data, 7, num_workers)
    assert len(first.videos) == 2
    assert all(torch.equal(a, b) for a, b in zip(first.videos, second.videos, strict=True))
    assert first.losses == second.losses


def test_another_seed_gives_other_batches(tiny_data):
    assert not torch.equal(_first_steps(tiny_data, 7, 0).videos[0], _first_steps(tiny_data, 8, 0).videos[0])


# --- no hangs --------------------------------------------------------------------------------------------


def _misbehave_in_workers(monkeypatch, action) -> None:
    """Make every training item `action()` when read in a loader worker (the main process is left alone)."""
    read = RandomClipDataset.__getitem__

    def getitem(self, index):
        if get_worker_info() is not None:
            action()
        return read(self, index)

    monkeypatch.setattr(RandomClipDataset, "__getitem__", getitem)


def test_a_stalled_worker_ends_the_run_with_an_error_naming_the_timeout(tiny_data, monkeypatch):
    # a stall just longer than the timeout: once the run has failed, the worker wakes and exits promptly
    _misbehave_in_workers(monkeypatch, lambda: time.sleep(4))
    datamodule = KineticsDataModule(str(tiny_data), **{**DATA_ARGS, "num_workers": 1, "loader_timeout_s": 2})
    model = VideoClassificationLightningModule(**MODEL_ARGS)
    start = time.monotonic()
    with pytest.raises(LoaderError, match=r"within loader_timeout_s=2 s.*raise --data\.loader_timeout_s"):
        quiet_trainer(max_steps=2, limit_val_batches=0).fit(model, datamodule)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    "die", [lambda: os._exit(3), lambda: os.kill(os.getpid(), signal.SIGKILL)], ids=["exit", "sigkill"]
)
def test_a_dead_worker_ends_the_loader_with_an_error(tiny_data, monkeypatch, die):
    _misbehave_in_workers(monkeypatch, die)
    datamodule = KineticsDataModule(str(tiny_data), **{**DATA_ARGS, "num_workers": 1, "loader_timeout_s": 2})
    datamodule.setup("fit")
    start = time.monotonic()
    with pytest.raises(LoaderError, match=r"DataLoader worker \(pid.*a loader worker died.*--data\.num_workers"):
        next(iter(datamodule.train_dataloader()))
    assert time.monotonic() - start < 30


# --- damaged bytes ---------------------------------------------------------------------------------------


def _truncation_points(data: bytes) -> list[int]:
    """64 bytes, 5% to 95% of the file, and inside the mp4 index (moov) where the codec parameters are."""
    return [
        64,
        *(int(len(data) * f) for f in (0.05, 0.25, 0.5, 0.95)),
        data.find(b"minf", data.find(b"moov")) + 4,
    ]


def _damaged_copies(good: list[Path], out: Path) -> list[Path]:
    """12 seeded damages: 6 with bytes flipped in the middle of the file, 6 truncations."""
    rng = np.random.default_rng(5)
    damaged = []
    for i, src in enumerate(good[:12]):
        data = bytearray(src.read_bytes())
        if i < 6:
            spots = rng.integers(len(data) // 5, 4 * len(data) // 5, size=8 * (i + 1))
            for spot in spots:
                data[spot] ^= int(rng.integers(1, 256))
        else:
            data = data[: _truncation_points(data)[i - 6]]
        path = out / src.parent.name / f"damaged_{i}.mp4"
        path.write_bytes(bytes(data))
        damaged.append(path)
    return damaged


def test_damaged_videos_are_decoded_or_skipped_with_a_reason_never_crash_or_hang(tiny_data, tmp_path):
    for split in ("train", "val"):  # good videos of both splits, interleaved with the damaged ones
        for label in CLASSES:
            (tmp_path / split / label).mkdir(parents=True)
            for src in (tiny_data / split / label).iterdir():
                (tmp_path / split / label / src.name).write_bytes(src.read_bytes())
    sources = sorted((tiny_data / "train").glob("*/*.mp4"))
    damaged = _damaged_copies(sources, tmp_path / "train") + _damaged_copies(sources, tmp_path / "val")
    datamodule = KineticsDataModule(str(tmp_path), **DATA_ARGS)
    datamodule.setup("fit")
    outcomes = {}
    for dataset in (datamodule.train_set, datamodule.val_set):
        loader = DataLoader(dataset, batch_size=1, num_workers=1, timeout=60, collate_fn=collate_clips)
        for index, batch in enumerate(loader):
            path = str(dataset.records[index].path)
            own_reasons = [reason for skipped_path, reason in batch["skipped"] if skipped_path == path]
            decoded = len(batch["video"]) > 0 and int(batch["video_index"][0]) == index
            assert decoded != bool(own_reasons), (path, batch["skipped"])
            assert all(reason for reason in own_reasons)
            assert tuple(batch["video"].shape[1:]) == (3, 4, 32, 32) or not decoded
            outcomes[path] = "decoded" if decoded else "skipped"
    assert {outcomes[str(p)] for p in damaged} == {"decoded", "skipped"}
    assert all(check_file((str(p), "train", "x", 1.0, 4)).status in ("ok", "unreadable") for p in damaged)


# --- distributed -----------------------------------------------------------------------------------------


def test_ddp_on_two_processes_agrees_with_one_process_and_splits_the_videos(tiny_data, tmp_path):
    """5 validation videos: a sampler padding ranks to equal length would count one video twice.

    Training draws class-balanced (`balanced_sampling`) from 9 videos, 1 of them "bright": each rank must read
    its own share of one draw sequence, as the sampler deals it, not a copy of every rank's draws.
    """
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "val" / "mid" / "mid_1.mp4").unlink()
    for name in ("bright_1", "bright_2", "bright_3"):
        (data / "train" / "bright" / f"{name}.mp4").unlink()
    seed_everything(0)
    model = VideoClassificationLightningModule(**MODEL_ARGS)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    data_args = {**DATA_ARGS, "batch_size": 2, "balanced_sampling": True}
    command = [sys.executable, str(REPO / "tests" / "distributed_run.py"), str(tmp_path), str(data)]
    command += [str(tmp_path / "weights.pt"), json.dumps(data_args), json.dumps(MODEL_ARGS)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]

    (single,) = quiet_trainer().validate(model, KineticsDataModule(str(data), **data_args), verbose=False)
    ddp = json.loads((tmp_path / "val.json").read_text())
    for name in ("val_loss", "val_acc_top1", "val_acc_top5", "val_acc_mean_class", "val_video_acc_top1"):
        assert ddp[name] == pytest.approx(single[name], abs=1e-5), name
    val_videos = [json.loads((tmp_path / f"val_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert val_videos[0] and val_videos[1] and not set(val_videos[0]) & set(val_videos[1])  # each video on one rank
    assert set(val_videos[0]) | set(val_videos[1]) == set(range(5))  # every video, with all its clips

    shares = [json.loads((tmp_path / f"train_rank{rank}.json").read_text()) for rank in (0, 1)]
    labels = [record.label for record in KineticsDataModule(str(data), **data_args).dataset.train]
    for rank, share in enumerate(shares):  # epoch 0 of the rank's sampler: draws rank, rank + 2, ... of one sequence
        assert share["video_indices"] == list(BalancedDistributedSampler(labels, num_replicas=2, rank=rank))
    drawn = Counter(labels[i] for share in shares for i in share["video_indices"])
    assert len(shares[0]["video_indices"]) == len(shares[1]["video_indices"]) == 5
    assert sorted(drawn.values()) == [3, 3, 4]  # 10 draws over 3 classes; plain shuffling reads "bright" once
    assert all(np.isfinite(share["losses"]).all() for share in shares)
