"""download: a tiny UCF101-named archive served on 127.0.0.1, checksum, progress bar, group-wise split."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from offline_helpers import serve_directory, write_avi

from video_processing import download
from video_processing.download import ChecksumError, prepare
from video_processing.layouts import load_dataset

# (class, group, clip); groups 1-7 are UCF101's official test groups.
CLIPS = [
    ("ApplyEyeMakeup", 1, 1),
    ("ApplyEyeMakeup", 1, 2),
    ("ApplyEyeMakeup", 8, 1),
    ("ApplyEyeMakeup", 12, 3),
    ("Archery", 7, 1),
    ("Archery", 9, 1),
    ("Archery", 9, 2),
    ("Archery", 25, 4),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, str]:
    """A .tar.gz in the subset's own layout (its own train/test split, which the helper must ignore)."""
    root = tmp_path_factory.mktemp("ucf")
    video = root / "clip.avi"
    write_avi(video, np.random.default_rng(0).integers(0, 256, (10, 32, 48, 3), dtype=np.uint8), 25)
    archive = root / "served" / "UCF101_subset.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for i, (label, group, clip) in enumerate(CLIPS):
            folder = "train" if i % 2 else "test"  # deliberately mixes groups across the archive's splits
            tar.add(video, f"UCF101_subset/{folder}/{label}/v_{label}_g{group:02d}_c{clip:02d}.avi")
        readme = b"not a video"
        info = tarfile.TarInfo("UCF101_subset/README.txt")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_extracts_the_class_folder_layout_split_by_group(served, tmp_path, capsys):
    archive, sha256 = served
    with serve_directory(archive.parent) as url:
        code = download.main(
            [
                "ucf101-subset",
                "--out",
                str(tmp_path / "ucf"),
                "--url",
                f"{url}/{archive.name}",
                "--sha256",
                sha256,
            ]
        )
    assert code == 0
    captured = capsys.readouterr()
    assert "UCF101_subset.tar.gz" in captured.err and "100%" in captured.err  # tqdm's bar
    assert "dataset ready" in captured.out
    dataset = load_dataset(tmp_path / "ucf")
    assert dataset.classes == ["ApplyEyeMakeup", "Archery"]
    groups = {
        split: {(r.path.parent.name, int(r.path.stem.split("_g")[1][:2])) for r in dataset.split(split)}
        for split in ("train", "val")
    }
    assert groups["val"] == {("ApplyEyeMakeup", 1), ("Archery", 7)}
    assert groups["train"] == {("ApplyEyeMakeup", 8), ("ApplyEyeMakeup", 12), ("Archery", 9), ("Archery", 25)}
    assert len(dataset.train) + len(dataset.val) == len(CLIPS)
    extracted = tmp_path / "ucf" / "train" / "Archery" / "v_Archery_g09_c02.avi"
    assert extracted.read_bytes() == (archive.parent.parent / "clip.avi").read_bytes()


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
    assert sum(counts.values()) == len(CLIPS)


def test_an_archive_without_ucf101_videos_is_refused(tmp_path):
    archive = tmp_path / "other.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(__file__, "data/notes.txt")
    with pytest.raises(ValueError, match="v_<Class>_g<group>_c<clip>.avi"):
        download.extract_ucf101(archive, tmp_path / "out")
