"""download: an archive laid out like the UCF101 subset, served on 127.0.0.1, through to one training step."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import pytorch_lightning as pl

from tests.conftest import SMALL_DATA_KWARGS
from video_processing import download
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import downloads
from video_processing.data.layouts import load_dataset
from video_processing.download import ChecksumError, ensure_dataset, prepare
from video_processing.kinetics_module import KineticsDataModule
from video_processing.lessons.standins import make_ucf101_archive, serve_directory

# 3 classes x groups 1, 8, 9 x 2 clips; groups 1-7 are UCF101's official test groups.
GROUPS = (1, 8, 9)
CLASSES = ["Growing", "MovingDown", "MovingSideways"]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, str]:
    """The stand-in subset: a plain tar named .tar.gz, its own train/val/test split mixing groups."""
    archive = tmp_path_factory.mktemp("ucf") / "served" / "UCF101_subset.tar.gz"
    return archive, make_ucf101_archive(archive, num_classes=3, groups=GROUPS, clips_per_group=2)


def _group(path: Path) -> int:
    return int(download.UCF101_NAME.fullmatch(path.name)["group"])


def test_extracts_the_class_folder_layout_split_by_group(served, tmp_path, capsys, monkeypatch):
    archive, sha256 = served
    monkeypatch.setattr(downloads, "watched", lambda: True)  # a terminal: the bar is drawn
    with serve_directory(archive.parent) as url:
        code = download.main(
            ["ucf101-subset", "--out", str(tmp_path / "ucf"), "--url", f"{url}/{archive.name}", "--sha256", sha256]
        )
    assert code == 0
    captured = capsys.readouterr()
    assert "UCF101_subset.tar.gz" in captured.err and "100%" in captured.err  # tqdm's bar
    assert "dataset ready" in captured.out and "MovingDown" in captured.out  # the per-class summary
    dataset = load_dataset(tmp_path / "ucf")
    assert dataset.classes == CLASSES
    val_groups = {_group(r.path) for r in dataset.val}
    train_groups = {_group(r.path) for r in dataset.train}
    assert val_groups == {1} and train_groups == {8, 9}  # official split 1: no group in both splits
    assert len(dataset.train) + len(dataset.val) == len(CLASSES) * len(GROUPS) * 2
    with tarfile.open(archive) as tar:
        member = tar.extractfile("UCF101_subset/val/Growing/v_Growing_g01_c02.avi").read()
    assert (tmp_path / "ucf" / "val" / "Growing" / "v_Growing_g01_c02.avi").read_bytes() == member


def test_the_downloaded_subset_trains_one_step(served, tmp_path):
    archive, sha256 = served
    with serve_directory(archive.parent) as url:
        root = ensure_dataset("ucf101-subset", tmp_path / "ucf", url=f"{url}/{archive.name}", sha256=sha256)
    data = KineticsDataModule(str(root), **{**SMALL_DATA_KWARGS, "batch_size": 4, "num_workers": 0})
    model = VideoClassificationLightningModule(num_classes=3, class_names=CLASSES, stem_dim_out=8, num_frames=4,
                                               crop_size=48)  # fmt: skip
    trainer = pl.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, data)
    assert data.classes == CLASSES
    assert trainer.global_step == 1 and "train_loss_step" in trainer.logged_metrics
    assert "val_acc_top1" in trainer.logged_metrics


def test_a_complete_folder_is_reused_without_the_network_and_an_interrupted_one_redone(served, tmp_path):
    archive, sha256 = served
    with serve_directory(archive.parent) as url:
        root = ensure_dataset("ucf101-subset", tmp_path, url=f"{url}/{archive.name}", sha256=sha256)
    gone = f"{url}/{archive.name}"  # the server has stopped: any download would be refused
    clip = root / "train" / "Growing" / "v_Growing_g08_c01.avi"
    clips = sorted(root.glob("*/*/*.avi"))
    modified = clip.stat().st_mtime_ns
    # The server is gone: a complete folder is returned as it is.
    assert ensure_dataset("ucf101-subset", tmp_path, url=gone, sha256=sha256) == root
    assert clip.stat().st_mtime_ns == modified
    # Interrupted: no record of a finished extraction, a clip missing, a stray file. Redone from the kept archive.
    (root / download.EXTRACTED_MARKER).unlink()
    clip.unlink()
    (root / "train" / "Growing" / "v_Other_g10_c01.avi").write_bytes(b"left over")
    ensure_dataset("ucf101-subset", tmp_path, url=gone, sha256=sha256)
    assert sorted(root.glob("*/*/*.avi")) == clips
    # Another archive expected (a new sha256): neither the old extraction nor the kept archive is taken for it,
    # so it is downloaded again (refused here: the server is gone).
    with pytest.raises(OSError, match="Connection refused"):
        ensure_dataset("ucf101-subset", tmp_path, url=gone, sha256="0" * 64)


def test_a_wrong_checksum_stops_before_extraction(served, tmp_path, capsys):
    archive, _ = served
    with serve_directory(archive.parent) as url:
        code = download.main(
            ["ucf101-subset", "--out", str(tmp_path), "--url", f"{url}/{archive.name}", "--sha256", "0" * 64]
        )
    err = capsys.readouterr().err
    assert code == 1 and "differs from the expected" in err and "Traceback" not in err
    assert not (tmp_path / "train").exists()
    assert not (tmp_path / ".downloads" / archive.name).exists()  # a corrupt download is not reused


def test_a_wrong_size_names_the_file_and_both_sizes(served, tmp_path, monkeypatch):
    archive, sha256 = served
    size = archive.stat().st_size
    with serve_directory(archive.parent) as url:
        pinned = download.RemoteArchive(f"{url}/{archive.name}", sha256, "test", size_bytes=size + 512)
        monkeypatch.setitem(download.ARCHIVES, "ucf101-subset", pinned)
        with pytest.raises(ChecksumError, match=rf"UCF101_subset.tar.gz: {size:,} bytes, expected {size + 512:,}"):
            ensure_dataset("ucf101-subset", tmp_path)
    assert not (tmp_path / ".downloads" / archive.name).exists() and not (tmp_path / "train").exists()


def test_an_unpinned_checksum_is_reported_not_accepted(served, tmp_path, monkeypatch):
    archive, sha256 = served
    with serve_directory(archive.parent) as url:
        monkeypatch.setitem(
            download.ARCHIVES, "ucf101-subset", download.RemoteArchive(f"{url}/{archive.name}", None, "test")
        )
        with pytest.raises(ChecksumError, match=f"--sha256 {sha256}"):
            prepare("ucf101-subset", tmp_path)
    assert not (tmp_path / "train").exists()
    # Rerun with the checked value: the kept download is used (the server is gone).
    counts = prepare("ucf101-subset", tmp_path, sha256=sha256)
    assert sum(counts.values()) == len(CLASSES) * len(GROUPS) * 2


@pytest.mark.parametrize("compression", ["", "gz"])
def test_the_archive_opens_whatever_its_compression_and_name(compression, tmp_path):
    archive = tmp_path / "UCF101_subset.tar.gz"  # the same name either way: the bytes decide
    make_ucf101_archive(archive, num_classes=1, groups=(1, 8), clips_per_group=1, seconds=0.4, compression=compression)
    if not compression:  # other files in the archive are passed over
        with tarfile.open(archive, "a") as tar:
            tar.add(__file__, "UCF101_subset/README.txt")
    counts = download.extract_ucf101(archive, tmp_path / "out")
    assert counts == {("val", "Growing"): 1, ("train", "Growing"): 1}


def test_a_folder_with_data_this_command_did_not_write_is_left_alone(served, tmp_path, capsys):
    archive, sha256 = served
    own = tmp_path / "train" / "mine" / "a.mp4"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"someone's video")
    code = download.main(["ucf101-subset", "--out", str(tmp_path), "--url", "http://127.0.0.1:9/x", "--sha256", sha256])
    assert code == 1 and "did not write" in capsys.readouterr().err
    assert own.read_bytes() == b"someone's video"


def test_an_archive_without_ucf101_videos_is_refused(tmp_path):
    archive = tmp_path / "other.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(__file__, "data/notes.txt")
    with pytest.raises(ValueError, match="v_<Class>_g<group>_c<clip>.avi"):
        download.extract_ucf101(archive, tmp_path / "out")


def test_a_kept_archive_that_is_no_longer_the_expected_one_is_downloaded_again(tmp_path):
    served = tmp_path / "served"
    old_sha = make_ucf101_archive(served / "UCF101_subset.tar.gz", seconds=1.0)
    with serve_directory(served) as url:
        ensure_dataset("ucf101-subset", tmp_path / "data", url=f"{url}/UCF101_subset.tar.gz", sha256=old_sha)
        new_sha = make_ucf101_archive(served / "UCF101_subset.tar.gz", seconds=1.5)
        assert new_sha != old_sha
        ensure_dataset("ucf101-subset", tmp_path / "data", url=f"{url}/UCF101_subset.tar.gz", sha256=new_sha)
    assert (tmp_path / "data" / ".extracted").read_text().strip() == new_sha


def test_no_bar_where_no_one_watches(served, tmp_path, capsys, monkeypatch):
    """Output sent to a file or a notebook executed unattended gets no bar: its redraws would stay as lines."""
    archive, sha256 = served
    monkeypatch.setattr(downloads, "watched", lambda: False)
    with serve_directory(archive.parent) as url:
        download.ensure_dataset("ucf101-subset", tmp_path / "ucf", url=f"{url}/{archive.name}", sha256=sha256)
    assert "%|" not in capsys.readouterr().err
