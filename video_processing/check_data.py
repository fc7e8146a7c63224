"""Check a dataset before training: every video opened and its last clip decoded, in several processes.

    python -m video_processing.check_data DATA_PATH [--report report.csv] [--workers 8]
        [--clip-duration 2.0] [--num-frames 8]

Prints the videos per class and split, the class imbalance of each split, duration / frame-rate / resolution
summaries, and every unusable file with its reason; writes one CSV row per file. Exits with status 1 when no
training video is usable, or a class has none (an empty class folder); a class without validation videos is warned
about.
Decoding the last clip window catches truncated downloads, whose headers still promise the full length.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import Counter
from dataclasses import asdict, dataclass, fields
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from video_processing.data.layouts import Layout, LayoutError, check_splits, load_dataset

# The decoded frames are only checked, not used: much larger ones are scaled down to this as they are decoded.
CHECK_SHORT_SIDE = 64


@dataclass(frozen=True)
class FileCheck:
    """One row of the report: a file, what its header says, and whether training can use it."""

    path: str
    split: str
    label: str
    status: str  # ok, too_short or unreadable
    reason: str = ""
    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str = ""


def check_file(job: tuple[str, str, str, float, int]) -> FileCheck:
    """Open `path`, read its header and decode its last clip window; never raises for a bad file."""
    # here, not at the top: --help and argument errors answer without torch
    from video_processing.data.video import VideoError, decode_last_clip, open_video, too_short_for_clips, video_info

    path, split, label, clip_duration_s, num_frames = job
    try:
        container = open_video(path)
    except VideoError as e:
        return FileCheck(path, split, label, "unreadable", e.reason)
    try:
        info = video_info(container)
    finally:
        container.close()
    header = {
        "duration": round(info.duration_s, 3),
        "fps": round(info.fps, 3),
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
    }
    frames_in_clip = min(info.duration_s, clip_duration_s) * info.fps
    reason = too_short_for_clips(info, clip_duration_s)
    if reason is None and frames_in_clip < num_frames:
        reason = (
            f"too short: {info.duration_s:.2f} s at {info.fps:.1f} fps gives {frames_in_clip:.0f} frames per "
            f"clip, fewer than num_frames={num_frames}"
        )
    if reason:  # intact, but training would skip it: not a file to delete as damaged
        return FileCheck(path, split, label, "too_short", reason, **header)
    try:
        decode_last_clip(path, clip_duration_s, num_frames, short_side=CHECK_SHORT_SIDE)
    except VideoError as e:
        return FileCheck(path, split, label, "unreadable", f"truncated or damaged: {e.reason}", **header)
    return FileCheck(path, split, label, "ok", **header)


def check_all(dataset: Layout, clip_duration_s: float, num_frames: int, workers: int) -> list[FileCheck]:
    """Check every video of every split (train, val, and test where there is one), `workers` files at a time, with a
    progress bar."""
    jobs = [
        (str(record.path), split, dataset.classes[record.label], clip_duration_s, num_frames)
        for split in dataset.splits()
        for record in dataset.split(split)
    ]
    progress = {"total": len(jobs), "desc": "checking videos", "unit": "video"}
    if workers <= 1:
        return [check_file(job) for job in tqdm(jobs, **progress)]
    with Pool(workers) as pool:
        return list(tqdm(pool.imap(check_file, jobs, chunksize=4), **progress))


def write_report(rows: list[FileCheck], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(FileCheck)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)


def print_counts(rows: list[FileCheck], labels: list[str]) -> None:
    """Usable videos per class and split, with the unusable ones in brackets."""
    splits = _splits(rows)
    usable = Counter((row.split, row.label) for row in rows if row.status == "ok")
    unusable = Counter((row.split, row.label) for row in rows if row.status != "ok")
    width = max(len("class"), *(len(label) for label in labels))
    print(f"\n{'class':<{width}}" + "".join(f"  {s:>12}" for s in splits))
    for label in labels:
        cells = [
            f"{usable[s, label]}" + (f" (+{unusable[s, label]} bad)" if unusable[s, label] else "") for s in splits
        ]
        print(f"{label:<{width}}" + "".join(f"  {cell:>12}" for cell in cells))
    print(f"{'all':<{width}}" + "".join(f"  {sum(n for k, n in usable.items() if k[0] == s):>12}" for s in splits))


def _splits(rows: list[FileCheck]) -> list[str]:
    """The splits the rows come from, in the layouts' order: train, val, test."""
    return [s for s in ("train", "val", "test") if any(row.split == s for row in rows)]


# From this ratio of the largest to the smallest training class on, the check suggests balanced sampling.
IMBALANCE_HINT_RATIO = 2.0


def imbalance_ratios(rows: list[FileCheck], labels: list[str] | None = None) -> dict[str, float]:
    """Per split, usable videos of the largest class / of the smallest (inf when a class has none).

    `labels`: every class of the dataset (default: those of the rows), so a class folder without videos counts.
    """
    labels = labels or sorted({row.label for row in rows})
    usable = Counter((row.split, row.label) for row in rows if row.status == "ok")
    ratios = {}
    for split in _splits(rows):
        counts = [usable[split, label] for label in labels]
        ratios[split] = max(counts) / min(counts) if min(counts) else math.inf
    return ratios


def classes_without_videos(rows: list[FileCheck], labels: list[str]) -> dict[str, list[str]]:
    """Per split, the classes with no usable video."""
    usable = {(row.split, row.label) for row in rows if row.status == "ok"}
    return {split: [label for label in labels if (split, label) not in usable] for split in ("train", "val")}


def print_imbalance(rows: list[FileCheck], labels: list[str]) -> None:
    ratios = imbalance_ratios(rows, labels)
    print("\nimbalance (largest / smallest class): " + ", ".join(f"{s} {r:.2f}" for s, r in ratios.items()))
    if ratios["train"] >= IMBALANCE_HINT_RATIO:
        print(
            "  training draws each class as often as it has videos; --data.balanced_sampling true draws every "
            "class equally, and val_acc_mean_class weighs every class equally"
        )


def print_summaries(rows: list[FileCheck]) -> None:
    """min / median / max of duration, frame rate and size over the usable videos, and their codecs."""
    ok = [row for row in rows if row.status == "ok"]
    if not ok:
        return
    print(f"\n{'':<12}{'min':>10}{'median':>10}{'max':>10}")
    for name in ("duration", "fps", "width", "height"):
        values = [getattr(row, name) for row in ok]
        print(f"{name:<12}{min(values):>10.4g}{statistics.median(values):>10.4g}{max(values):>10.4g}")
    codecs = Counter(row.codec for row in ok)
    print("codecs: " + ", ".join(f"{codec} {count}" for codec, count in codecs.most_common()))


def print_problems(rows: list[FileCheck]) -> None:
    bad = [row for row in rows if row.status != "ok"]
    print(f"\n{len(bad)} of {len(rows)} videos cannot be used" + (":" if bad else "."))
    for row in bad:
        print(f"  {row.status:<10} {row.path}: {row.reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_path", help="dataset folder in one of the supported layouts")
    parser.add_argument("--report", help="CSV file to write, one row per video")
    parser.add_argument("--workers", type=int, default=8, help="processes probing files")
    parser.add_argument("--clip-duration", type=float, default=2.0, help="seconds per clip, as in training")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per clip, as in training")
    args = parser.parse_args(argv)
    try:
        dataset = load_dataset(args.data_path)
    except LayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = check_all(dataset, args.clip_duration, args.num_frames, args.workers)
    print_counts(rows, dataset.classes)
    print_imbalance(rows, dataset.classes)
    print_summaries(rows)
    print_problems(rows)
    try:
        check_splits(dataset, args.data_path)
    except LayoutError as e:
        print(f"\nwarning: {e}")
    if args.report:
        write_report(rows, args.report)
        print(f"\nreport: {args.report}")
    if not any(row.split == "train" and row.status == "ok" for row in rows):
        print("error: no usable training video", file=sys.stderr)
        return 1
    empty = classes_without_videos(rows, dataset.classes)
    if empty["val"]:
        print(f"warning: no usable validation video of class {', '.join(map(repr, empty['val']))}")
    if empty["train"]:
        print(
            f"error: no usable training video of class {', '.join(map(repr, empty['train']))}: the model would get "
            "an output that never trains; add videos of it or remove its folder",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
