"""The notebooks' plumbing: smoke flag, where they work, which data they use."""

from pathlib import Path

import pytest

from video_processing.data.video import open_video, video_info
from video_processing.download import ensure_dataset
from video_processing.lessons import notebook
from video_processing.models.backbones import build_backbone, load_pretrained_state

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


def test_chance_bound_is_a_binomial_tail():
    # 20 videos of 2 classes: P(>= 15 right by coin flips) = 0.0207, P(>= 16) = 0.0059
    assert notebook.chance_accuracy_bound(20, 2, alpha=0.01) == 16 / 20
    assert notebook.chance_accuracy_bound(20, 2, alpha=0.05) == 15 / 20
    assert notebook.chance_accuracy_bound(1000, 10) < 0.13  # many items: just above 1/10
    assert notebook.chance_accuracy_bound(3, 2) == 1.0  # too few items to tell


def test_quick_lesson_feeds_the_real_download_of_data_and_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDEO_PROCESSING_SMOKE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(notebook, "workspace", lambda drive_folder: tmp_path)
    lesson = notebook.start_lesson("05", ucf101=True)
    assert not lesson.full_size and lesson.run is None and lesson.ucf101_folder.name != "ucf101_subset"
    assert lesson.archive_url.startswith("http://127.0.0.1:")
    data = ensure_dataset("ucf101-subset", lesson.ucf101_folder, url=lesson.archive_url, sha256=lesson.archive_sha256)
    state = load_pretrained_state("x3d_xs", lesson.weights_url("x3d_xs"))
    assert sorted(p.name for p in (data / "train").iterdir()) == ["Growing", "MovingDown", "MovingSideways"]
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "x3d_xs_standin.pth").is_file()
    assert state.keys() == build_backbone("x3d_xs", num_frames=4, crop_size=64).state_dict().keys()
    finetune, scratch = lesson.finetune_runs("x3d_xs")
    assert finetune.max_epochs == scratch.max_epochs <= 2


def test_full_size_lesson_uses_the_real_addresses(monkeypatch, tmp_path):
    monkeypatch.delenv("VIDEO_PROCESSING_SMOKE", raising=False)
    monkeypatch.setattr(notebook, "workspace", lambda drive_folder: tmp_path)
    lesson = notebook.start_lesson("05", ucf101=True)
    assert lesson.full_size and lesson.archive_url is None and lesson.weights_url("x3d_xs") is None
    assert lesson.ucf101_folder == tmp_path / "data" / "ucf101_subset"


@pytest.mark.parametrize(("smoke", "size"), [("1", "small"), ("", "medium")])
def test_own_videos_lesson_uses_the_self_made_set_at_quick_size(monkeypatch, tmp_path, smoke, size):
    made = []
    monkeypatch.setenv("VIDEO_PROCESSING_SMOKE", smoke)
    monkeypatch.setattr(notebook, "workspace", lambda drive_folder: tmp_path)
    monkeypatch.setattr(notebook, "make_dataset", lambda folder, size: made.append((folder, size)) or folder)
    lesson = notebook.start_lesson("06", own_videos=True)
    assert made == [(tmp_path / "data" / f"synthetic_{size}", size)]
    assert lesson.data == notebook.LessonData(tmp_path / "data" / f"synthetic_{size}", "synthetic")
    assert lesson.run == notebook.lesson_run(smoke=bool(smoke), cuda=lesson.cuda, data="synthetic")


def test_the_video_to_classify(tmp_path):
    lesson = notebook.Lesson("05", False, False, False, tmp_path, None, None)
    with pytest.raises(FileNotFoundError, match="MY_VIDEO"):
        lesson.video_to_classify(tmp_path / "missing.mp4")
    made = lesson.video_to_classify(None)  # nothing brought, not on Colab: a self-made two-action video
    with open_video(made) as container:
        assert video_info(container).duration_s == pytest.approx(6.0, abs=0.1)
    assert lesson.video_to_classify(made) == made
