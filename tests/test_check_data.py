"""check_data on a folder mixing good clips of several codecs and shapes with broken files."""

from __future__ import annotations

import csv
import math
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from video_processing.check_data import FileCheck, check_file, imbalance_ratios, main
from video_processing.data.video import open_video, video_info, write_video
from video_processing.synthetic import CLASSES

FPS = 12
CHECK_ARGS = ["--workers", "2", "--clip-duration", "1.0", "--num-frames", "4"]


def _frames(num_frames: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A bar sweeping over noise: every frame differs, so encoders write real P-frames."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, :, (t * 3) % width :][:, :4] = 255
    return frames


def _encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str,
    pix_fmt: str = "yuv420p",
    audio: bool = False,
    container_options: dict | None = None,
) -> Path:
    """Write `frames` with any PyAV encoder, optionally with a silent AAC track (unlike `write_video`)."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        sound = container.add_stream("aac", rate=16000) if audio else None
        for t, rgb in enumerate(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
            if sound is not None:
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 16000 // FPS), np.float32), "fltp", "mono")
                chunk.sample_rate, chunk.pts = 16000, t * (16000 // FPS)
                container.mux(sound.encode(chunk))
        container.mux(stream.encode())
        if sound is not None:
            container.mux(sound.encode())
    return path


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _cut_in_index(src: Path, dst: Path) -> Path:
    """Cut an mp4 inside its index (moov): the video stream is listed, its decoder parameters are not."""
    data = src.read_bytes()
    dst.write_bytes(data[: data.find(b"minf", data.find(b"moov")) + 4])
    return dst


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A class-folder dataset and the statuses check_data must give its broken files (by file name)."""
    root = tmp_path_factory.mktemp("mixed")
    dirs = {(split, c): root / split / c for split in ("train", "val") for c in ("cat", "dog")}
    for d in dirs.values():
        d.mkdir(parents=True)
    two_s = _frames(2 * FPS, 64, 48)
    write_video(dirs["train", "cat"] / "good_0.mp4", two_s, FPS)
    write_video(dirs["train", "cat"] / "good_1.mp4", _frames(30, 64, 48, seed=1), FPS)
    _encode(dirs["train", "cat"] / "portrait.mp4", _frames(2 * FPS, 48, 64), codec="libx264")
    # x264 needs even sides in 4:2:0; 4:4:4 takes the odd 97 x 71
    _encode(dirs["train", "cat"] / "odd_size.mp4", _frames(2 * FPS, 97, 71), codec="libx264", pix_fmt="yuv444p")
    _encode(dirs["train", "cat"] / "with_audio.mp4", two_s, codec="libx264", audio=True)
    _encode(dirs["train", "dog"] / "vp9.webm", two_s, codec="libvpx-vp9")
    _encode(dirs["train", "dog"] / "mpeg4.avi", two_s, codec="mpeg4")
    write_video(dirs["train", "dog"] / "good_2.mp4", two_s, FPS)
    write_video(dirs["val", "cat"] / "good_3.mp4", two_s, FPS)
    write_video(dirs["val", "dog"] / "good_4.mp4", two_s, FPS)
    # the broken ones
    (dirs["train", "dog"] / "empty.mp4").touch()
    (dirs["train", "dog"] / "text.mp4").write_text("404 Not Found\n")
    _truncate(dirs["train", "cat"] / "good_0.mp4", dirs["train", "dog"] / "truncated.mp4", 0.5)
    faststart = _encode(root / "faststart.mp4", two_s, codec="libx264", container_options={"movflags": "faststart"})
    _truncate(faststart, dirs["train", "cat"] / "truncated_faststart.mp4", 0.4)
    _cut_in_index(dirs["train", "cat"] / "with_audio.mp4", dirs["train", "dog"] / "cut_in_index.mp4")
    write_video(dirs["val", "dog"] / "short.mp4", _frames(3, 64, 48), FPS)
    expected = {
        "empty.mp4": "unreadable",
        "text.mp4": "unreadable",
        "truncated.mp4": "unreadable",
        "cut_in_index.mp4": "unreadable",
        "truncated_faststart.mp4": "unreadable",
        "short.mp4": "too_short",
    }
    return root, expected


def _read_report(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_names_exactly_the_broken_files(mixed, tmp_path, capsys):
    root, expected = mixed
    report = tmp_path / "report.csv"
    assert main([str(root), "--report", str(report), *CHECK_ARGS]) == 0
    rows = {Path(row["path"]).name: row for row in _read_report(report)}
    assert len(rows) == 16
    assert {name: row["status"] for name, row in rows.items() if row["status"] != "ok"} == expected
    assert all(rows[name]["reason"] for name in expected)
    assert {rows[n]["codec"] for n in ("vp9.webm", "mpeg4.avi", "with_audio.mp4")} == {"vp9", "mpeg4", "h264"}
    assert (rows["portrait.mp4"]["width"], rows["portrait.mp4"]["height"]) == ("48", "64")
    assert (rows["odd_size.mp4"]["width"], rows["odd_size.mp4"]["height"]) == ("97", "71")
    assert rows["good_3.mp4"]["split"] == "val" and rows["good_3.mp4"]["label"] == "cat"
    printed = capsys.readouterr().out
    assert "6 of 16 videos cannot be used" in printed
    assert all(name in printed for name in expected)
    assert "cat" in printed and "dog" in printed and "median" in printed
    # usable training videos: 5 cat, 3 dog; validation: 1 and 1
    assert "imbalance (largest / smallest class): train 1.67, val 1.00" in printed


def test_truncation_behind_an_intact_header_is_caught_by_decoding(mixed):
    """The header of a truncated faststart mp4 still promises 2 s: only decoding its end shows the loss."""
    root, _ = mixed
    path = root / "train" / "cat" / "truncated_faststart.mp4"
    container = open_video(path)
    assert video_info(container).duration_s == pytest.approx(2.0, abs=0.1)
    container.close()
    row = check_file((str(path), "train", "cat", 1.0, 4))
    assert row.status == "unreadable" and row.reason.startswith("truncated or damaged")
    assert row.duration == pytest.approx(2.0, abs=0.1)


def test_an_intact_video_shorter_than_half_a_clip_is_too_short_not_damaged(tmp_path):
    """0.5 s at 12 fps holds the 4 frames a clip needs, but less than half of a 2-s clip: training skips it."""
    path = tmp_path / "half_a_second.mp4"
    write_video(path, _frames(FPS // 2, 64, 48), FPS)
    row = check_file((str(path), "train", "cat", 2.0, 4))
    assert row.status == "too_short" and row.duration == pytest.approx(0.5, abs=0.05)
    assert row.reason == "too short: 0.50 s, less than half the clip duration (2.00 s)"


def test_imbalance_ratio_per_split_and_a_class_without_usable_videos():
    rows = [FileCheck(f"{i}.mp4", "train", "a", "ok") for i in range(6)]
    rows += [FileCheck("6.mp4", "train", "b", "ok"), FileCheck("7.mp4", "train", "b", "ok")]
    rows += [FileCheck("8.mp4", "val", "a", "ok"), FileCheck("9.mp4", "val", "b", "unreadable", "empty")]
    assert imbalance_ratios(rows) == {"train": 3.0, "val": math.inf}


def test_exits_non_zero_when_no_training_video_is_usable(tmp_path, capsys):
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            (tmp_path / split / label / "clip.mp4").write_text("not a video")
    assert main([str(tmp_path), *CHECK_ARGS]) == 1
    assert "no usable training video" in capsys.readouterr().err


def test_exits_non_zero_on_a_folder_of_no_known_layout(tmp_path, capsys):
    assert main([str(tmp_path / "absent"), *CHECK_ARGS]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_test_split_is_checked_and_counted_too(dataset_copy, tmp_path, capsys):
    test_class = dataset_copy / "test" / CLASSES[0]
    test_class.mkdir(parents=True)
    shutil.copy(sorted((dataset_copy / "val" / CLASSES[0]).glob("*.mp4"))[0], test_class / "good.mp4")
    (test_class / "empty.mp4").write_bytes(b"")
    report = tmp_path / "report.csv"
    assert main([str(dataset_copy), "--report", str(report), *CHECK_ARGS]) == 0
    rows = [row for row in _read_report(report) if row["split"] == "test"]
    assert {Path(row["path"]).name: row["status"] for row in rows} == {"good.mp4": "ok", "empty.mp4": "unreadable"}
    printed = capsys.readouterr().out
    assert re.search(r"class\s+train\s+val\s+test\n", printed) and "empty.mp4" in printed
