"""prepare.py: re-encoding datasets in the three layouts, on tiny videos made here."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from video_processing.data.layouts import load_dataset
from video_processing.data.video import write_video
from video_processing.prepare import FAILURES_CSV, main, prepare_dataset, scaled_size

FPS = 10
SRC_SIZE = (160, 120)  # width, height
SHORT_SIDE = 64
KEYFRAME_INTERVAL_S = 0.5


@pytest.fixture(scope="module")
def source_video(tmp_path_factory) -> Path:
    """2 s of noise at 160x120 with a single keyframe, like a download with a long keyframe interval."""
    path = tmp_path_factory.mktemp("source") / "source.mp4"
    frames = np.random.default_rng(0).integers(0, 256, (2 * FPS, SRC_SIZE[1], SRC_SIZE[0], 3), dtype=np.uint8)
    write_video(path, frames, FPS, keyframe_interval_s=10.0)
    return path


def _place(video: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(video, path)
    return path


def make_class_folders(root: Path, video: Path) -> None:
    for split, name in (("train", "a1"), ("train", "a2"), ("val", "a3")):
        _place(video, root / split / "abseiling" / f"{name}.mp4")
    _place(video, root / "train" / "bowling" / "b1.mp4")
    _place(video, root / "val" / "bowling" / "b2.mp4")


def make_kinetics_csv(root: Path, video: Path) -> None:
    header = "label,youtube_id,time_start,time_end,split\n"
    rows = {"train": [("abseiling", "aaa"), ("bowling", "bbb")], "validate": [("bowling", "ccc")]}
    (root / "annotations").mkdir(parents=True)
    for split, entries in rows.items():
        lines = [f"{label},{yid},0,2,{split}\n" for label, yid in entries]
        (root / "annotations" / f"{split}.csv").write_text(header + "".join(lines))
        for _, yid in entries:
            _place(video, root / split.replace("validate", "val") / f"{yid}_000000_000002.mp4")


def make_pytorchvideo_csv(root: Path, video: Path) -> None:
    _place(video, root / "clips" / "x.mp4")
    _place(video, root / "clips" / "y.mp4")
    _place(video, root / "clips" / "z.mp4")
    (root / "train.csv").write_text("clips/x.mp4 0\nclips/y.mp4 1\n")
    (root / "val.csv").write_text("clips/z.mp4 1\n")


LAYOUTS = {
    "class_folders": make_class_folders,
    "kinetics_csv": make_kinetics_csv,
    "pytorchvideo_csv": make_pytorchvideo_csv,
}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _read_back(path: Path) -> tuple[int, int, list[float]]:
    """Width, height and keyframe times (s) of a file, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.is_keyframe and p.pts is not None]
        return stream.codec_context.width, stream.codec_context.height, times


def _names(records, root: Path) -> list[tuple[str, int]]:
    return sorted((str(r.path.relative_to(root).with_suffix("")), r.label) for r in records)


def test_scaled_size_keeps_aspect_even_and_never_upscales():
    assert scaled_size(640, 480, 256) == (342, 256)
    assert scaled_size(480, 640, 256) == (256, 342)
    assert scaled_size(340, 256, 256) == (340, 256)
    assert scaled_size(160, 120, 256) == (160, 120)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_prepare_keeps_layout_and_labels_and_reencodes(tmp_path, source_video, layout):
    src, dst = tmp_path / "src", tmp_path / "dst"
    LAYOUTS[layout](src, source_video)
    before = _digests(src)

    failures = prepare_dataset(src, dst, short_side=SHORT_SIDE, keyframe_interval_s=KEYFRAME_INTERVAL_S, workers=2)

    assert failures == []
    assert _digests(src) == before  # originals untouched
    original, prepared = load_dataset(src), load_dataset(dst)
    assert prepared.layout == layout
    assert prepared.classes == original.classes
    for split in ("train", "val"):
        assert _names(prepared.split(split), dst) == _names(original.split(split), src)
    for record in prepared.train + prepared.val:
        width, height, keyframes = _read_back(record.path)
        assert (width, height) == scaled_size(*SRC_SIZE, SHORT_SIDE) == (86, 64)
        assert keyframes == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert not list(dst.rglob("*.part.mp4"))


def test_broken_file_is_reported_and_resume_skips_finished(tmp_path, source_video, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_class_folders(src, source_video)
    broken = src / "train" / "curling" / "broken.mp4"  # the only video of its class
    broken.parent.mkdir()
    broken.write_bytes(b"not a video at all" * 100)

    with pytest.raises(SystemExit) as exit_info:
        main([str(src), str(dst), "--short-side", str(SHORT_SIDE), "--workers", "2"])
    assert exit_info.value.code == 1
    assert f"FAILED {broken.resolve()}" in capsys.readouterr().out
    with open(dst / FAILURES_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [Path(row["path"]).name for row in rows] == ["broken.mp4"]
    assert "not a readable video" in rows[0]["reason"]
    assert not (dst / "train" / "curling" / "broken.mp4").exists()
    assert load_dataset(dst).classes == load_dataset(src).classes  # the class folder is kept, empty

    prepared = {p: p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}
    assert len(prepared) == 5
    finished = dst / "train" / "abseiling" / "a1.mp4"
    finished.unlink()  # as if the first run had been interrupted before this file
    prepared.pop(finished)
    failures = prepare_dataset(src, dst, short_side=SHORT_SIDE, workers=2)
    assert [p.name for p, _ in failures] == ["broken.mp4"]
    assert finished.is_file()
    assert {p: p.stat().st_mtime_ns for p in prepared} == prepared  # finished files were not rewritten
    assert "4 videos already prepared" in capsys.readouterr().out


def test_refuses_to_overwrite_the_source(tmp_path, source_video):
    make_class_folders(tmp_path, source_video)
    with pytest.raises(ValueError, match="same folder"):
        prepare_dataset(tmp_path, tmp_path)
