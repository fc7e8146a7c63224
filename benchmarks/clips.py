"""Clips the benchmarks write for themselves: Kinetics-like and raw-download-like H.264 videos.

Kinetics-like clips written on a CPU machine and carried to a GPU machine, so its time goes to decoding them:

    python benchmarks/clips.py OUT [--videos 8]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_processing.data.video import write_video
from video_processing.synthetic import CLASSES, render_video


@dataclass(frozen=True)
class ClipSet:
    """Frame size and keyframe spacing of a set of written clips."""

    name: str
    width: int
    height: int
    keyframe_interval_s: float
    note: str


KINETICS = ClipSet("kinetics", 340, 256, 1.0, "340x256, keyframe every 1 s")
# x264's default keyframe interval (250 frames) is what a download or a resize without -g gives.
RAW = ClipSet("raw", 640, 480, 250 / 30, "640x480, keyframe every 250 frames (8.3 s)")


def _write_clip(job: tuple[Path, ClipSet, int, int, float]) -> None:
    path, spec, seed, fps, duration_s = job
    rng = np.random.default_rng(seed)
    label = CLASSES[seed % len(CLASSES)]
    frames = render_video(label, rng, spec.width, spec.height, round(duration_s * fps), fps)
    tmp = path.with_name(path.stem + ".part.mp4")
    write_video(tmp, frames, fps, keyframe_interval_s=spec.keyframe_interval_s)
    tmp.rename(path)  # a finished name means a finished file, so a rerun in the same folder reuses it


def write_clip_set(
    root: Path, spec: ClipSet, videos: int, *, duration_s: float = 10.0, fps: int = 30, workers: int | None = None
) -> list[Path]:
    """Write `videos` clips as the train split of a class-folder dataset at `root` (val/ left empty).

    Files already there are kept. Returns the clips' paths.
    """
    (root / "val").mkdir(parents=True, exist_ok=True)
    paths = [root / "train" / f"class{i % 2}" / f"{i:03d}.mp4" for i in range(videos)]
    jobs = [(path, spec, i, fps, duration_s) for i, path in enumerate(paths) if not path.exists()]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    if jobs:
        # spawn: no copy of the caller's threads or memory; several processes because x264 runs on one thread here
        with mp.get_context("spawn").Pool(min(len(jobs), workers or os.cpu_count() or 1)) as pool:
            pool.map(_write_clip, jobs)
    return paths


def link_dataset(clips: list[Path], root: Path, train_videos: int) -> Path:
    """A class-folder dataset at `root` of `train_videos` hard links to `clips` (two classes) and two validation
    videos: as many videos as a run needs, from a few written ones. Returns `root`."""
    links = [("train", i) for i in range(max(train_videos, 2))] + [("val", 0), ("val", 1)]
    for split, i in links:
        path = root / split / f"class{i % 2}" / f"{i:05d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(clips[i % len(clips)], path)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write Kinetics-like clips (340x256, 30 fps) for another machine")
    parser.add_argument("out", type=Path, help="folder of the clip set (its train/ split holds the clips)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    args = parser.parse_args(argv)
    paths = write_clip_set(args.out, KINETICS, args.videos, duration_s=args.duration)
    print(f"{len(paths)} clips ({KINETICS.note}, {args.duration:g} s) in {args.out}")


if __name__ == "__main__":
    main()
