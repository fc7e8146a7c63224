"""A self-made dataset of motion classes, written as real H.264 mp4 files in the class-folder layout.

    python -m video_processing.synthetic --out data/synthetic [--size small|medium|default] [--seed 0]

Each video shows one random polygon over a textured, noisy background. The class is the motion, so no single
frame tells the classes apart: a frame of "growing" looks like a frame of "shrinking". The classes are chosen to
survive a horizontal flip (the train preset flips), so "moving sideways" covers both directions and "spinning"
both senses. Shapes, colours, sizes, positions, speeds, durations (2-6 s) and frame rates (24-30) are random and
fixed by the seed: the rendered frames exactly, the H.264 bytes nearly (x264 here is not bit-exact from run to
run). Frames are square, so that every random crop of the train preset keeps the shape in view.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

CLASSES = ("growing", "moving_down", "moving_sideways", "moving_up", "shrinking", "spinning")


@dataclass(frozen=True)
class SizeSpec:
    """How many videos of which frame size a dataset size holds."""

    train_per_class: int
    val_per_class: int
    width: int
    height: int
    min_duration_s: float
    max_duration_s: float


SIZES = {
    "small": SizeSpec(train_per_class=4, val_per_class=2, width=72, height=72, min_duration_s=2, max_duration_s=3),
    # enough videos for a minute of CPU epochs to learn the classes well above chance, and enough validation
    # videos to tell that from luck (tests/test_classification.py)
    "medium": SizeSpec(
        train_per_class=24, val_per_class=16, width=64, height=64, min_duration_s=1.6, max_duration_s=2.2
    ),
    "default": SizeSpec(
        train_per_class=40, val_per_class=10, width=112, height=112, min_duration_s=2, max_duration_s=6
    ),
}


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted low-frequency colour texture: random noise upsampled from a coarse grid."""
    coarse = rng.integers(70, 170, size=(height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.int16)


def _polygon(rng: np.random.Generator) -> np.ndarray:
    """Vertices of an irregular polygon (3-6 corners) around the origin, radius about 1."""
    corners = int(rng.integers(3, 7))
    angles = (np.arange(corners) + rng.uniform(-0.25, 0.25, corners)) * 2 * math.pi / corners
    radii = rng.uniform(0.7, 1.0, corners)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _trajectory(label: str, rng: np.random.Generator, times: np.ndarray, width: int, height: int):
    """Centre (x, y), size and angle of the shape at each time (seconds), for a motion class.

    Speeds are per second, so a short clip of a long video still shows the motion. A moving shape leaves the
    frame and comes back on the other side; a growing or shrinking one restarts every ~3 s.
    """
    n = len(times)
    size = np.full(n, rng.uniform(0.2, 0.3) * height)
    angle = np.full(n, rng.uniform(0, 2 * math.pi))
    x = np.full(n, rng.uniform(0.3, 0.7) * width)
    y = np.full(n, rng.uniform(0.3, 0.7) * height)
    speed = rng.uniform(0.35, 0.5) * height  # pixels per second
    if label in ("moving_up", "moving_down"):
        span = height + 2 * size[0]
        y = np.mod(y + speed * times * (1 if label == "moving_down" else -1), span) - size[0]
    elif label == "moving_sideways":
        span = width + 2 * size[0]
        x = np.mod(x + speed * times * rng.choice([-1, 1]), span) - size[0]
    elif label in ("growing", "shrinking"):
        phase = np.mod(rng.uniform(0, 1) + times / rng.uniform(2.5, 3.5), 1.0)
        phase = phase if label == "growing" else 1 - phase
        size = 0.08 * height * (0.5 / 0.08) ** phase  # steady relative growth from 8 % to 50 % of the height
    elif label == "spinning":
        turns_per_s = rng.uniform(0.4, 0.7) * rng.choice([-1, 1])
        angle = angle + 2 * math.pi * turns_per_s * times
    else:
        raise ValueError(f"unknown motion class {label!r}; classes are {CLASSES}")
    return x, y, size, angle


def render_video(
    label: str, rng: np.random.Generator, width: int, height: int, num_frames: int, fps: float
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one video of class `label`."""
    return render_video_with_boxes(label, rng, width, height, num_frames, fps)[0]


def render_video_with_boxes(
    label: str, rng: np.random.Generator, width: int, height: int, num_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) uint8 of one video of class `label`, and the shape's box in each frame: (T, 4) int
    x0, y0, x1, y1 in pixels, end exclusive, around the pixels it covers (all 0 while it is out of view).

    The same `rng` state gives the same frames as `render_video`.
    """
    background = _background(rng, width, height)
    shape = _polygon(rng)
    colour = np.array([rng.integers(0, 60), rng.integers(0, 256), rng.integers(196, 256)])[rng.permutation(3)]
    noise_std = rng.uniform(3, 8)
    times = np.arange(num_frames) / fps
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    boxes = np.zeros((num_frames, 4), dtype=np.int64)
    for t, (x, y, size, angle) in enumerate(zip(*_trajectory(label, rng, times, width, height), strict=True)):
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        points = shape @ rotation.T * size + (x, y)
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in points], fill=255)
        mask = np.asarray(canvas, dtype=bool)
        frame = background + rng.normal(0, noise_std, background.shape).astype(np.int16)
        frame[mask] = colour
        frames[t] = np.clip(frame, 0, 255)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            boxes[t] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return frames, boxes


def _write_one(job: tuple[Path, str, int, SizeSpec]) -> None:
    path, label, seed, spec = job
    rng = np.random.default_rng(seed)
    fps = int(rng.integers(24, 31))
    duration = rng.uniform(spec.min_duration_s, spec.max_duration_s)
    frames = render_video(label, rng, spec.width, spec.height, round(duration * fps), fps)
    from video_processing.data.video import write_video  # here, not at the top: --help answers without torch

    tmp = path.with_suffix(".part.mp4")
    write_video(tmp, frames, fps)
    tmp.rename(path)  # a finished name means a finished file, so an interrupted run resumes cleanly


def make_dataset(out: str | Path, size: str = "default", seed: int = 0, workers: int = 2) -> Path:
    """Write the dataset under `out` (train/<class>/*.mp4, val/<class>/*.mp4); existing files are kept."""
    out, spec = Path(out), SIZES[size]
    jobs = []
    for split, count in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        for class_index, label in enumerate(CLASSES):
            (out / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                path = out / split / label / f"{label}_{i:03d}.mp4"
                video_seed = _seed(seed, split, class_index, i)
                if not path.exists():
                    jobs.append((path, label, video_seed, spec))
    if not jobs:  # every video is there already
        return out
    with Pool(workers) as pool:
        for _ in tqdm(pool.imap_unordered(_write_one, jobs), total=len(jobs), desc=f"writing {out}", unit="video"):
            pass
    return out


def _seed(seed: int, split: str, class_index: int, i: int) -> int:
    """An independent seed per video, so a video does not change when the dataset grows."""
    split_id = ("train", "val").index(split)
    return int(np.random.SeedSequence([seed, split_id, class_index, i]).generate_state(1)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write train/ and val/ into")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    args = parser.parse_args(argv)
    out = make_dataset(args.out, args.size, args.seed, args.workers)
    print(f"dataset ready: {out} ({len(CLASSES)} classes)")


if __name__ == "__main__":
    main()
