"""checkpoints: the package's own checkpoints load as data; a checkpoint that would run code is refused everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import SMALL_DATA_KWARGS

from video_processing import export
from video_processing.data import shards
from video_processing.inference.checkpoints import TRUST_FLAG, UntrustedCheckpointError, load_checkpoint
from video_processing.inference.classifiers import load_classifier
from video_processing.lessons import runs
from video_processing.lessons.runs import Run
from video_processing.predict import main as predict

# The notebooks' builders at the small set's sizes: 2 epochs of 1 batch, logged and checkpointed as a lesson does.
RUN = Run(
    "tiny",
    clip_duration=SMALL_DATA_KWARGS["clip_duration"],
    num_frames=SMALL_DATA_KWARGS["num_frames"],
    crop_size=SMALL_DATA_KWARGS["crop_size"],
    min_short_side=SMALL_DATA_KWARGS["min_short_side"],
    max_short_side=SMALL_DATA_KWARGS["max_short_side"],
    stem_dim_out=8,
    batch_size=6,
    max_epochs=2,
    lr=1e-3,
    num_workers=0,
    limit_batches=1,
)


def _train(data_path: Path, run: Run, logs: Path) -> Path:
    data = runs.build_data(data_path, run)
    runs.build_trainer(run, logs).fit(runs.build_model(data, run), data)
    return runs.latest_run(logs, run) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def own_checkpoints(small_dataset, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints as this package writes them: plain, fine-tuned (BackboneFinetuning's state), from shards, and
    from a `compile: true` run (its keys are the plain module's; only the hyperparameter differs)."""
    root = tmp_path_factory.mktemp("checkpoints")
    assert shards.write_shards(small_dataset, root / "shards", chunk_bytes="200KB", workers=1) == []
    saved = {
        "plain": _train(small_dataset, RUN, root / "logs"),
        "finetuned": _train(small_dataset, Run(**{**vars(RUN), "name": "ft", "unfreeze_at_epoch": 1}), root / "logs"),
        "shards": _train(root / "shards", Run(**{**vars(RUN), "name": "shards"}), root / "logs"),
    }
    compiled = torch.load(saved["plain"], weights_only=True)
    compiled["hyper_parameters"]["compile"] = True
    torch.save(compiled, root / "compiled.ckpt")
    return {**saved, "compiled": root / "compiled.ckpt"}


class WritesAFile:
    """Unpickling this calls exec: what a malicious checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.fixture
def malicious(own_checkpoints, tmp_path) -> tuple[Path, Path]:
    """A real checkpoint with a payload that writes `marker` when unpickled, and the marker's path."""
    checkpoint = torch.load(own_checkpoints["plain"], weights_only=True)
    marker = tmp_path / "written_by_the_checkpoint"
    checkpoint["payload"] = WritesAFile(marker)
    torch.save(checkpoint, tmp_path / "shared.ckpt")
    return tmp_path / "shared.ckpt", marker


@pytest.mark.parametrize("kind", ["plain", "finetuned", "shards", "compiled"])
def test_the_packages_own_checkpoints_load_as_data_uncompiled(own_checkpoints, kind):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(own_checkpoints[kind]) == []
    classifier = load_classifier(own_checkpoints[kind])
    module = classifier.module
    assert module.hparams.compile is False and module.model._compiled_call_impl is None
    assert classifier.clips.clip_duration == SMALL_DATA_KWARGS["clip_duration"] and len(classifier.class_names) == 6
    with torch.no_grad():
        assert module(torch.zeros(1, 3, 4, 48, 48)).shape == (1, 6)


def test_the_payload_is_live_when_trusted(malicious):
    """The refusals below are not vacuous: loaded as a full pickle, the file does write."""
    path, marker = malicious
    assert "payload" in load_checkpoint(path, trust=True) and marker.read_text() == "ran"


def test_a_checkpoint_that_would_run_code_is_refused_naming_the_file_and_the_opt_in(malicious):
    path, marker = malicious
    with pytest.raises(UntrustedCheckpointError, match="builtins.exec") as refused:
        load_classifier(path)
    assert str(path) in str(refused.value) and TRUST_FLAG in str(refused.value) and "trust=True" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["predict", "export"])
def test_predict_and_export_refuse_it_and_write_nothing(malicious, small_dataset, tmp_path, capsys, command):
    path, marker = malicious
    video = next((small_dataset / "val").rglob("*.mp4"))
    if command == "predict":
        status = predict([str(path), str(video)])
    else:
        status = export.main([str(path), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert status == 2 and str(path) in err and TRUST_FLAG in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "m.pt").exists()


def test_the_notebooks_loader_loads_its_own_run(own_checkpoints, small_dataset):
    logs = own_checkpoints["plain"].parents[3]  # logs/tiny/version_0/checkpoints/last.ckpt
    model, folder, epoch = runs.load_latest(runs.build_data(small_dataset, RUN), RUN, logs)
    assert folder == own_checkpoints["plain"].parents[1] and model.hparams.num_classes == 6 and epoch == 1


def test_the_notebooks_loader_refuses_it(malicious, small_dataset, tmp_path):
    path, marker = malicious
    folder = tmp_path / "logs" / RUN.name / "version_0"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch\n0\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(path.read_bytes())
    with pytest.raises(UntrustedCheckpointError):
        runs.load_latest(runs.build_data(small_dataset, RUN), RUN, tmp_path / "logs")
    assert not marker.exists()


def test_a_trusted_checkpoint_predicts(malicious, small_dataset, capsys):
    path, marker = malicious
    assert predict([str(path), str(next((small_dataset / "val").rglob("*.mp4"))), TRUST_FLAG]) == 0
    assert marker.exists() and "clips)" in capsys.readouterr().out
