"""Re-encode a dataset for fast training: short side scaled down, a keyframe every second, H.264.

    python -m video_processing.prepare SRC DST [--short-side 256] [--keyframe-interval 1.0] [--workers N]
    python -m video_processing.prepare SRC DST --format shards [--chunk-bytes 256MB] [--short-side ...]

SRC is a dataset in any supported layout (see `layouts.py`); DST receives the same layout: the same
relative paths (every clip as .mp4), the Kinetics annotation folder copied, a PyTorchVideo train.csv and
val.csv rewritten to the new files. Videos whose short side is already at most `--short-side` keep their size
(never upscaled). Audio is dropped: the models here see frames only. SRC is only read.

Decoding a training clip costs every frame from the keyframe before the clip to the clip's end, so downloads
with a keyframe every 5-10 s and large frames decode many times the pixels a clip needs.

Resumable: each file is written under a temporary name and renamed when complete, and finished files are
skipped, so an interrupted run continues where it stopped. Files that fail are listed on screen and in
DST/prepare_failures.csv.

`--format shards` writes LitData shards instead (see `shards.py`): each video's bytes, label and header facts
in chunks of `--chunk-bytes` per split, and DST/shards.json with the class list; copy DST to a bucket and train
with `--data.data_path s3://bucket/DST`. Videos are stored as they are unless `--short-side`,
`--keyframe-interval` or `--crf` is given, which re-encodes them as above first. A finished split is kept by a rerun; an
unfinished one is written anew.

torch is imported where videos are decoded: --help and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from video_processing.data.layouts import Layout, load_dataset

FAILURES_CSV = "prepare_failures.csv"


@dataclass(frozen=True)
class Job:
    """One video to re-encode."""

    src: Path
    dst: Path
    short_side: int
    keyframe_interval_s: float
    crf: int


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side scaled down to `short_side`, aspect kept, both even (for 4:2:0)."""
    scale = min(1.0, short_side / min(width, height))

    def even(x: float) -> int:
        return max(2, 2 * round(x / 2))

    return even(width * scale), even(height * scale)


def prepare_video(job: Job) -> tuple[Path, str | None]:
    """Re-encode one video; return (source, None) on success or (source, reason) on failure. Never raises."""
    # here, not at the top (as in the other functions that decode): --help and argument errors answer without torch
    from video_processing.data.video import VideoError, iter_rgb_frames, open_video, video_info, write_video

    tmp = job.dst.with_name(job.dst.stem + ".part.mp4")
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        container = open_video(job.src)
        try:
            info = video_info(container)
            if info.fps <= 0:
                raise VideoError(job.src, "the stream states no frame rate")
            size = scaled_size(info.width, info.height, job.short_side)
            frames = iter_rgb_frames(container, job.src, size)
            write_video(tmp, frames, info.fps, crf=job.crf, keyframe_interval_s=job.keyframe_interval_s)
        finally:
            container.close()
        tmp.rename(job.dst)  # a finished name means a finished file
        return job.src, None
    except Exception as e:  # one bad file must not stop a run over a whole dataset
        tmp.unlink(missing_ok=True)
        return job.src, e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"


def reencoded_bytes(src: Path, short_side: int, keyframe_interval_s: float, crf: int) -> bytes:
    """The bytes `prepare_video` writes for `src` (for a shard); VideoError naming `src` when it fails."""
    from video_processing.data.video import VideoError

    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "video.mp4"
        _, reason = prepare_video(Job(src, dst, short_side, keyframe_interval_s, crf))
        if reason is not None:
            raise VideoError(src, reason)
        return dst.read_bytes()


def output_path(src_root: Path, dst_root: Path, video: Path) -> Path:
    """Where the prepared copy of `video` goes: the same relative path under DST, as .mp4.

    `..` in a listed path is resolved first, so a video outside SRC (possible in a PyTorchVideo CSV) goes under
    DST/external/ by its absolute path, never beside DST. Symbolic links inside SRC keep their name.
    """
    video = Path(os.path.normpath(video))
    relative = video.relative_to(src_root) if video.is_relative_to(src_root) else Path("external", *video.parts[1:])
    return (dst_root / relative).with_suffix(".mp4")


def output_paths(dataset: Layout, src: Path, dst: Path) -> dict[Path, Path]:
    """Every listed video and where its prepared copy goes, checked before any work.

    Two videos that would share a name (clip.mp4 and clip.avi) are kept apart: the one not already .mp4 keeps
    its extension in the name (clip.avi.mp4). Raises ValueError naming the files when names still collide, or
    when a target would lie outside DST (a symbolic link in DST pointing elsewhere).
    """
    records = [r for split in dataset.splits() for r in dataset.split(split)]
    targets = {r.path: output_path(src, dst, r.path) for r in records}
    shared = Counter(targets.values())
    for video, target in targets.items():
        if shared[target] > 1 and video.suffix != ".mp4":
            targets[video] = target.with_name(Path(os.path.normpath(video)).name + ".mp4")
    by_target: dict[Path, list[Path]] = {}
    for video, target in targets.items():
        by_target.setdefault(target, []).append(video)
    if clashes := [videos for videos in by_target.values() if len(videos) > 1]:
        raise ValueError(f"videos would be written to one name: {' and '.join(map(str, clashes[0]))}; rename one")
    real_dst = dst.resolve()
    for video, target in targets.items():
        if not target.parent.resolve().is_relative_to(real_dst):
            raise ValueError(
                f"{video} would be written to {target}, which leads outside {dst} (a symbolic link): "
                "nothing was written; remove the link or choose another DST"
            )
    return targets


def copy_annotations(dataset: Layout, src: Path, dst: Path, targets: dict[Path, Path]) -> None:
    """Write DST's annotation files so that DST loads with the same layout, classes and labels."""
    dst.mkdir(parents=True, exist_ok=True)
    if dataset.layout == "class_folders":  # every class folder, even one whose videos all fail or are absent
        for split in dataset.splits():
            class_dirs = [d.name for d in (src / split).iterdir() if d.is_dir()]
            for name in ["", *class_dirs]:
                (dst / split / name).mkdir(parents=True, exist_ok=True)
    elif dataset.layout == "kinetics_csv":
        shutil.copytree(src / "annotations", dst / "annotations", dirs_exist_ok=True)
    elif dataset.layout == "pytorchvideo_csv":
        for split in dataset.splits():
            lines = [f"{targets[r.path].relative_to(dst)} {r.label}" for r in dataset.split(split)]
            (dst / f"{split}.csv").write_text("".join(line + "\n" for line in lines))


def plan_jobs(
    targets: dict[Path, Path], short_side: int, keyframe_interval_s: float, crf: int
) -> tuple[list[Job], int]:
    """Jobs for the videos not prepared yet, and how many are already done."""
    jobs, done = [], 0
    for video, target in targets.items():
        if target.is_file():
            done += 1
        else:
            jobs.append(Job(video, target, short_side, keyframe_interval_s, crf))
    return jobs, done


def prepare_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    short_side: int = 256,
    keyframe_interval_s: float = 1.0,
    crf: int = 23,
    workers: int | None = None,
) -> list[tuple[Path, str]]:
    """Re-encode every video of the dataset at `src` into `dst`; return (path, reason) of each failed file."""
    src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().resolve()
    if src == dst:
        raise ValueError("SRC and DST are the same folder; the originals are never overwritten")
    dataset = load_dataset(src)
    targets = output_paths(dataset, src, dst)  # every name checked before anything is written
    copy_annotations(dataset, src, dst, targets)
    jobs, done = plan_jobs(targets, short_side, keyframe_interval_s, crf)
    if done:
        print(f"{done} videos already prepared in {dst}: skipped")
    failures = []
    with Pool(workers or os.cpu_count()) as pool:
        results = pool.imap_unordered(prepare_video, jobs)
        for path, reason in tqdm(results, total=len(jobs), desc=f"preparing {dst}", unit="video"):
            if reason is not None:
                failures.append((path, reason))
    write_failures(dst / FAILURES_CSV, failures)
    return failures


def write_failures(csv_path: Path, failures: list[tuple[Path, str]]) -> None:
    """The failed files as a CSV (path, reason); an old report is removed when nothing failed."""
    if not failures:
        csv_path.unlink(missing_ok=True)
        return
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows(sorted((str(p), r) for p, r in failures))


def prepare_shards(args: argparse.Namespace, reencode: dict) -> list[tuple[Path, str]]:
    """`--format shards`: the videos re-encoded only when a size, keyframe interval or quality is asked for."""
    from video_processing.data import shards

    keep_bytes = args.short_side is None and args.keyframe_interval is None and args.crf is None
    encode = shards.file_bytes if keep_bytes else partial(reencoded_bytes, **reencode)
    workers = args.workers or os.cpu_count() or 1
    failures = shards.write_shards(args.src, args.dst, encode=encode, chunk_bytes=args.chunk_bytes, workers=workers)
    write_failures(Path(args.dst) / FAILURES_CSV, failures)
    return failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="dataset folder in a supported layout (only read)")
    parser.add_argument("dst", help="output folder (created; finished files in it are kept)")
    parser.add_argument("--format", choices=["files", "shards"], default="files", help="video files or shards")
    parser.add_argument("--short-side", type=int, default=None, help="pixels; larger videos are scaled down (256)")
    parser.add_argument("--keyframe-interval", type=float, default=None, help="seconds between keyframes (1.0)")
    parser.add_argument("--crf", type=int, default=None, help="H.264 quality: lower is better and larger (23)")
    parser.add_argument("--chunk-bytes", default="256MB", help="shards: size of a chunk (LitData's chunk_bytes)")
    parser.add_argument("--workers", type=int, default=None, help="encoding processes (default: all cores)")
    args = parser.parse_args(argv)
    reencode = dict(
        short_side=args.short_side or 256,
        keyframe_interval_s=args.keyframe_interval or 1.0,
        crf=23 if args.crf is None else args.crf,  # 0 is a quality too (lossless)
    )
    if args.format == "shards":
        failures = prepare_shards(args, reencode)
    else:
        try:
            failures = prepare_dataset(args.src, args.dst, **reencode, workers=args.workers)
        except ValueError as e:  # a layout that does not load, names that would collide or leave DST
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    for path, reason in failures:
        print(f"FAILED {path}: {reason}")
    if failures:
        print(f"{len(failures)} videos failed; listed in {Path(args.dst) / FAILURES_CSV}")
        raise SystemExit(1)
    print(f"prepared {'shards' if args.format == 'shards' else 'dataset'} ready: {args.dst}")


if __name__ == "__main__":
    main()
