"""Hostile and odd inputs to the data tools and predict, on files made here: nothing lost, nothing unbounded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_reliability import DATA_ARGS as TINY_DATA_ARGS
from video_processing.check_data import main as check_data_main
from video_processing.data.layouts import LayoutError
from video_processing.data.video import write_video
from video_processing.kinetics_module import KineticsDataModule
from video_processing.prepare import main as prepare_main
from video_processing.prepare import prepare_dataset

FPS = 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """1 s of 32 x 32 noise."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 256, (FPS, 32, 32, 3), dtype=np.uint8), FPS)
    return path


def _place(video: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(video, path)
    return path


def _class_folders(root: Path, clip: Path, labels: tuple[str, ...] = ("a", "b")) -> Path:
    for split in ("train", "val"):
        for label in labels:
            _place(clip, root / split / label / f"{label}1.mp4")
    return root


# --- 1-2. prepare: never overwrite, never write outside DST -------------------------------------------------


def test_prepare_keeps_two_videos_that_would_share_a_name_apart(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    _place(clip, src / "train" / "a" / "clip.mp4")
    other = _place(clip, src / "train" / "a" / "clip.avi")
    other.write_bytes(other.read_bytes())  # a second file (the content does not matter for names)
    assert prepare_dataset(src, tmp_path / "dst", short_side=32, workers=1) == []
    written = sorted(p.name for p in (tmp_path / "dst" / "train" / "a").iterdir())
    assert written == ["a1.mp4", "clip.avi.mp4", "clip.mp4"]


def test_prepare_refuses_names_that_still_collide_before_any_work(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    for name in ("clip.avi", "clip.mkv", "clip.avi.mp4", "clip.mkv.mp4"):
        _place(clip, src / "train" / "a" / name)
    with pytest.raises(SystemExit) as exit_info:
        prepare_main([str(src), str(tmp_path / "dst"), "--workers", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "clip.avi" in error and "one name" in error
    assert not (tmp_path / "dst").exists()  # refused before anything was written


def _pytorchvideo_csv(root: Path, clip: Path, train_rows: list[str]) -> Path:
    _place(clip, root / "clips" / "a.mp4")
    _place(clip, root / "clips" / "b.mp4")
    (root / "train.csv").write_text("".join(f"{row}\n" for row in ["clips/a.mp4 0", "clips/b.mp4 1", *train_rows]))
    (root / "val.csv").write_text("clips/a.mp4 0\nclips/b.mp4 1\n")
    return root


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_prepare_puts_a_video_listed_outside_the_source_under_external(tmp_path, clip):
    outside = _place(clip, tmp_path / "outside" / "x.mp4")
    src = _pytorchvideo_csv(tmp_path / "src", clip, ["../outside/x.mp4 1"])
    before = _files_under(tmp_path / "outside")
    dst = tmp_path / "dst"
    assert prepare_dataset(src, dst, short_side=32, workers=1) == []
    assert _files_under(tmp_path / "outside") == before  # nothing written beside DST
    external = dst / "external" / outside.relative_to("/")
    assert external.is_file()
    with open(dst / "train.csv") as f:
        assert f"external/{outside.relative_to('/')} 1" in f.read().splitlines()


def test_prepare_keeps_videos_reached_through_a_link_inside_dst(tmp_path, clip):
    _place(clip, tmp_path / "elsewhere" / "y.mp4")
    src = _pytorchvideo_csv(tmp_path / "src", clip, ["linked/y.mp4 1"])
    (src / "linked").symlink_to(tmp_path / "elsewhere")
    dst = tmp_path / "dst"
    assert prepare_dataset(src, dst, short_side=32, workers=1) == []
    assert (dst / "linked" / "y.mp4").is_file() and not (dst / "linked").is_symlink()
    assert {p.name for p in (tmp_path / "elsewhere").iterdir()} == {"y.mp4"}


def test_prepare_refuses_a_link_in_dst_that_leads_outside(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "train").symlink_to(outside)
    with pytest.raises(SystemExit):
        prepare_main([str(src), str(dst), "--workers", "1"])
    assert "leads outside" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


# --- 9. an empty class folder --------------------------------------------------------------------------------


def test_check_data_names_a_class_folder_without_videos(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    (src / "train" / "empty").mkdir()
    assert check_data_main([str(src), "--workers", "1", "--clip-duration", "1.0", "--num-frames", "4"]) == 1
    out = capsys.readouterr()
    assert "no usable training video of class 'empty'" in out.err
    assert "imbalance (largest / smallest class): train inf" in out.out


def test_the_data_module_refuses_a_training_class_without_videos_and_warns_for_validation(tmp_path, clip, caplog):
    src = _class_folders(tmp_path / "src", clip, ("a", "b", "c"))
    (src / "train" / "empty").mkdir()
    with pytest.raises(LayoutError, match=r"training split has no videos of class 'empty'"):
        KineticsDataModule(str(src), **TINY_DATA_ARGS).setup("fit")
    (src / "train" / "empty").rmdir()
    (src / "val" / "a" / "a1.mp4").unlink()
    KineticsDataModule(str(src), **TINY_DATA_ARGS).setup("fit")
    assert "validation split has no videos of class 'a'" in caplog.text
