"""The notebooks' plumbing: smoke flag, dataset path, run sizes, finding the latest finished run."""

from pathlib import Path

import pytest
import torch
import yaml

from video_processing import notebook
from video_processing.notebook import CPU, GPU, SMOKE, RunSize
from video_processing.transforms import normalize_clips

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_smoke_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("VIDEO_PROCESSING_SMOKE", value)
    assert notebook.smoke_mode() is expected


def test_smoke_mode_off_when_unset(monkeypatch):
    monkeypatch.delenv("VIDEO_PROCESSING_SMOKE", raising=False)
    assert notebook.smoke_mode() is False


def test_project_root_from_the_notebooks_folder(tmp_path):
    assert notebook.project_root(ROOT / "notebooks") == ROOT
    assert notebook.project_root(tmp_path) == tmp_path.resolve()  # outside a checkout, e.g. on Colab


def test_dataset_path_prefers_a_kinetics_copy(tmp_path):
    assert notebook.dataset_path(tmp_path, smoke=True, kinetics_path=tmp_path / "k400") == tmp_path / "k400"
    assert not (tmp_path / "data").exists()  # nothing self-made when a dataset is given


def test_dataset_path_makes_the_self_made_set(monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(notebook, "make_dataset", lambda folder, size: made.append((folder, size)) or folder)
    assert notebook.dataset_path(tmp_path, smoke=True) == tmp_path / "data" / "synthetic_small"
    assert notebook.dataset_path(tmp_path, smoke=False, kinetics_path="") == tmp_path / "data" / "synthetic"
    assert made == [
        (tmp_path / "data" / "synthetic_small", "small"),
        (tmp_path / "data" / "synthetic", "default"),
    ]


def test_run_size_choice():
    assert notebook.run_size(smoke=True, cuda=True) is SMOKE
    assert notebook.run_size(smoke=False, cuda=True) is GPU
    assert notebook.run_size(smoke=False, cuda=False) is CPU
    assert GPU.crop_size == 224 and GPU.stem_dim_out == 64
    assert SMOKE.max_epochs <= 2 and isinstance(SMOKE.limit_batches, int)


def test_cpu_size_is_make_demo_size():
    config = yaml.safe_load((ROOT / "configs" / "synthetic.yaml").read_text())
    data, model = config["data"], config["model"]
    assert (CPU.clip_duration_s, CPU.num_frames, CPU.crop_size) == (
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


def test_builders_pass_the_sizes_on(tmp_path, monkeypatch):
    data = notebook.build_data_module(tmp_path, SMOKE)
    assert (data.clip_duration, data.crop_size, data.num_frames, data.num_workers) == (1.5, 64, 8, 0)
    monkeypatch.setattr(type(data), "classes", property(lambda self: ["a", "b", "c"]))
    model = notebook.build_model(data, SMOKE)
    assert model.hparams.num_classes == 3 and model.hparams.class_names == ["a", "b", "c"]
    assert model.example_input_array.shape == (1, 3, 8, 64, 64)


def test_trainer_logs_under_the_run_name(tmp_path):
    trainer = notebook.build_trainer(SMOKE, tmp_path)
    assert Path(trainer.logger.log_dir) == tmp_path / "notebook_smoke" / "version_0"
    assert trainer.max_epochs == SMOKE.max_epochs
    assert trainer.checkpoint_callback.monitor == "val_acc_top1"


@pytest.mark.parametrize(
    "cuda, native_bf16, expected",
    [(False, False, "32-true"), (True, True, "bf16-mixed"), (True, False, "16-mixed")],
)
def test_precision_follows_the_device(monkeypatch, cuda, native_bf16, expected):
    monkeypatch.setattr(notebook.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(notebook.torch.cuda, "is_bf16_supported", lambda including_emulation: native_bf16)
    assert notebook.precision_for_device() == expected


def _finished(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch,step\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
    return folder


def test_latest_run_is_the_newest_finished_version(tmp_path):
    run = RunSize("r", 1.0, 8, 64, 72, 88, 8, batch_size=2, num_workers=0, max_epochs=1, lr=1e-3)
    assert notebook.latest_run(tmp_path, run) is None
    _finished(tmp_path / "r" / "version_2")
    newest = _finished(tmp_path / "r" / "version_10")
    (tmp_path / "r" / "version_11").mkdir()  # started, never checkpointed
    _finished(tmp_path / "other" / "version_12")
    assert notebook.latest_run(tmp_path, run) == newest


def test_collect_predictions_concatenates_batches():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 5))
    batches = [
        {"video": torch.randn(n, 3, 2, 4, 4), "label": torch.arange(n), "video_index": torch.full((n,), i)}
        for i, n in enumerate((2, 3, 1))
    ]
    predictions = notebook.collect_predictions(model, batches)
    assert predictions.logits.shape == (6, 5) and predictions.logits.dtype == torch.float32
    assert predictions.labels.tolist() == [0, 1, 0, 1, 2, 0]
    assert predictions.video_index.tolist() == [0, 0, 1, 1, 1, 2]
    with torch.no_grad():
        torch.testing.assert_close(predictions.logits[:2], model(batches[0]["video"]))
    assert len(notebook.collect_predictions(model, batches, max_batches=2).labels) == 5


def test_collect_predictions_finishes_uint8_batches_with_the_device_transform():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 5))
    uint8 = torch.randint(0, 256, (2, 3, 2, 4, 4), dtype=torch.uint8)
    batch = {"label": torch.tensor([0, 1]), "video_index": torch.tensor([0, 1])}
    finished = notebook.collect_predictions(model, [{**batch, "video": uint8}], device_transform=normalize_clips)
    with torch.no_grad():
        torch.testing.assert_close(finished.logits, model(normalize_clips(uint8)))
