"""The notebooks' plumbing: smoke flag, where they work, which data they use."""

from pathlib import Path

import pytest

from video_processing import notebook

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


def test_lesson_data_prefers_a_kinetics_copy(tmp_path):
    data = notebook.lesson_data(tmp_path, smoke=False, cuda=True, kinetics_path=tmp_path / "k400")
    assert data == notebook.LessonData(tmp_path / "k400", "kinetics")
    assert not (tmp_path / "data").exists()  # nothing made or downloaded when a dataset is given


def test_lesson_data_self_made_in_smoke_mode_and_on_a_cpu_ucf101_on_a_gpu(monkeypatch, tmp_path):
    made, downloaded = [], []
    monkeypatch.setattr(notebook, "make_dataset", lambda folder, size: made.append((folder, size)) or folder)
    monkeypatch.setattr(notebook, "ensure_dataset", lambda name, out: downloaded.append((name, out)) or out)
    data = tmp_path / "data"
    assert notebook.lesson_data(tmp_path, smoke=True, cuda=True).path == data / "synthetic_small"
    assert notebook.lesson_data(tmp_path, smoke=False, cuda=False, kinetics_path="").path == data / "synthetic"
    assert notebook.lesson_data(tmp_path, smoke=False, cuda=True) == notebook.LessonData(
        data / "ucf101_subset", "ucf101"
    )
    assert made == [(data / "synthetic_small", "small"), (data / "synthetic", "default")]
    assert downloaded == [("ucf101-subset", data / "ucf101_subset")]


def test_workspace_is_the_checkout_outside_colab(monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    assert notebook.workspace("MyDrive/video-classification") == ROOT
