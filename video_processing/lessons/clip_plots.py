"""Figures of clips: where samplers put them, their frames, what the transform presets do to them and cost.

Every function takes what it draws as arguments and returns a matplotlib Figure built without pyplot, so it
works under any backend (Agg in CI) and a notebook shows it as a cell's value.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from torchvision.transforms import v2

from video_processing.data.transforms import KINETICS_MEAN, KINETICS_STD, ToCTHW, denormalize
from video_processing.data.video import (
    constant_clip_windows,
    decode_random_clip,
    plan_random_clip,
    random_clip_window,
    subsample_indices,
    uniform_clip_windows,
)

Window = tuple[float, float]
Stats = tuple[float, float, float]


# --- clip sampling ---


def sampler_windows(
    duration_s: float,
    clip_duration_s: float,
    *,
    clips_per_video: int = 3,
    random_draws: int = 3,
    generator: torch.Generator | None = None,
) -> dict[str, list[Window]]:
    """Where each sampler puts its clips: random (one clip per draw, a draw per epoch), uniform, constant."""
    return {
        f"random ({random_draws} draws)": [
            random_clip_window(duration_s, clip_duration_s, generator) for _ in range(random_draws)
        ],
        "uniform": list(uniform_clip_windows(duration_s, clip_duration_s)),
        f"constant ({clips_per_video} per video)": constant_clip_windows(duration_s, clip_duration_s, clips_per_video),
    }


def plot_clip_timeline(duration_s: float, windows_by_duration: dict[float, dict[str, list[Window]]]) -> Figure:
    """One panel per clip duration, one row per sampler, one bar per clip over the video's timeline (grey)."""
    fig = Figure(figsize=(9, 0.6 + 1.9 * len(windows_by_duration)), layout="constrained")
    axes = fig.subplots(len(windows_by_duration), 1, sharex=True, squeeze=False)[:, 0]
    latest_end = duration_s
    for ax, (clip_duration_s, by_sampler) in zip(axes, windows_by_duration.items(), strict=True):
        ax.axvspan(0, duration_s, color="0.9", zorder=0)
        for row, (name, windows) in enumerate(by_sampler.items()):
            # overlapping clips get their own lane inside the sampler's row, so each bar stays visible
            lane = 0.8 / len(windows)
            lanes = [row - 0.4 + lane * (k + 0.5) for k in range(len(windows))]
            starts = [start for start, _ in windows]
            widths = [end - start for start, end in windows]
            ax.barh(
                lanes,
                widths,
                left=starts,
                height=0.85 * lane,
                color=f"C{row}",
                edgecolor="black",
                linewidth=0.5,
                label=name,
            )
            latest_end = max([latest_end, *(end for _, end in windows)])
        ax.set_yticks(range(len(by_sampler)), list(by_sampler))
        ax.set_ylim(len(by_sampler) - 0.5, -0.5)
        ax.set_title(f"clips of {clip_duration_s:g} s in a {duration_s:.2f} s video (grey)")
    axes[-1].set_xlim(0, latest_end)
    axes[-1].set_xlabel("time in the video (s)")
    return fig


def as_images(frames: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) uint8, or float in [0, 1] -> (T, H, W, C) numpy for imshow."""
    images = frames.detach().cpu().as_subclass(torch.Tensor).permute(0, 2, 3, 1)
    return images.numpy() if images.dtype == torch.uint8 else images.float().clamp(0, 1).numpy()


def random_clip_with_times(
    path: str | Path, clip_duration_s: float, num_frames: int, generator: torch.Generator
) -> tuple[torch.Tensor, list[float]]:
    """`decode_random_clip`'s clip and its kept frames' times in seconds from the window's start.

    The times are the sampler's own (`plan_random_clip` draws the same window from the same generator state):
    subsampling keeps the window's first and last frame, so a 1 s window at 25 fps ends at 0.96 s.
    """
    state = generator.get_state()
    plan = plan_random_clip(path, clip_duration_s, num_frames, generator)
    generator.set_state(state)
    clip = decode_random_clip(path, clip_duration_s, num_frames, generator)
    return clip, [t - plan.window[0] for t in plan.times]


def plot_frame_grid(
    frames: torch.Tensor, *, times: Sequence[float] | None = None, title: str = "", ncols: int = 8
) -> Figure:
    """Every frame of a (T, C, H, W) clip (uint8, or float in [0, 1]), labelled with its index (and time in s)."""
    images = as_images(frames)
    nrows = -(-len(images) // ncols)
    height, width = images.shape[1:3]
    fig = Figure(figsize=(1.5 * ncols, 1.5 * nrows * height / width + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for t, ax in enumerate(axes):
        ax.axis("off")
        if t < len(images):
            ax.imshow(images[t])
            ax.set_title(f"frame {t}" if times is None else f"{t}: {times[t]:.2f} s", fontsize=8)
    fig.suptitle(title)
    return fig


def clip_animation(frames: torch.Tensor, fps: float, *, title: str = "") -> FuncAnimation:
    """A (T, C, H, W) clip as an animation at `fps`; in a notebook: HTML(clip_animation(...).to_jshtml())."""
    images = as_images(frames)
    height, width = images.shape[1:3]
    fig = Figure(figsize=(4, 4 * height / width + 0.4), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title)
    shown = ax.imshow(images[0])

    def show(t: int):
        shown.set_data(images[t])
        return [shown]

    return FuncAnimation(fig, show, frames=len(images), interval=1000 / fps)


def plot_subsampled_frames(num_available: int, counts: Sequence[int] = (4, 8, 16)) -> Figure:
    """Which of a clip's `num_available` decoded frames uniform temporal subsampling keeps, per count."""
    fig = Figure(figsize=(9, 0.8 + 0.6 * len(counts)), layout="constrained")
    ax = fig.add_subplot()
    for row, count in enumerate(counts):
        ax.plot(range(num_available), [row] * num_available, "o", color="0.8", markersize=5)
        kept = subsample_indices(num_available, count)
        ax.plot(kept, [row] * len(kept), "o", color=f"C{row}", markersize=8, label=f"{count} frames")
    ax.set_yticks(range(len(counts)), [f"keep {count}" for count in counts])
    ax.set_ylim(len(counts) - 0.5, -0.5)
    ax.set_xlabel(f"frame index in the clip window ({num_available} decoded frames; grey: dropped)")
    ax.set_title("uniform temporal subsampling: evenly spaced, first and last frame kept")
    return fig


# --- transforms ---


@dataclass(frozen=True)
class StepResult:
    """A transform step's name, its output, and that output as (T, H, W, C) images for display."""

    name: str
    output: torch.Tensor
    images: np.ndarray


def describe(tensor: torch.Tensor) -> str:
    """Shape and dtype, e.g. "(8, 3, 64, 64) uint8"."""
    return f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def run_steps(
    preset: v2.Compose, clip: torch.Tensor, *, mean: Stats = KINETICS_MEAN, std: Stats = KINETICS_STD
) -> list[StepResult]:
    """Apply a preset's steps one at a time to a uint8 (T, C, H, W) clip, keeping every output.

    Outputs after `Normalize` are shown denormalized with `mean`/`std`; after `ToCTHW`, put back to (T, ...).
    """
    results = [StepResult("decoded clip", clip, as_images(clip))]
    normalized, time_first = False, True
    for step in preset.transforms:
        clip = step(clip)
        normalized = normalized or isinstance(step, v2.Normalize)
        time_first = time_first and not isinstance(step, ToCTHW)
        video = clip.transpose(0, 1) if time_first else clip  # (C, T, H, W), the layout denormalize takes
        if normalized:
            video = denormalize(video, mean, std)
        results.append(StepResult(type(step).__name__, clip, as_images(video.transpose(0, 1))))
    return results


def plot_transform_steps(results: list[StepResult], *, frames_shown: int = 2, title: str = "") -> Figure:
    """One column per step: a few frames of its output on a common pixel scale, with shape and dtype."""
    largest_h = max(r.images.shape[1] for r in results)
    largest_w = max(r.images.shape[2] for r in results)
    fig = Figure(figsize=(1.75 * len(results), 1.75 * frames_shown * largest_h / largest_w + 1.0), layout="constrained")
    axes = fig.subplots(frames_shown, len(results), squeeze=False)
    for column, result in zip(axes.T, results, strict=True):
        for ax, t in zip(column, subsample_indices(len(result.images), frames_shown), strict=True):
            ax.imshow(result.images[t])
            # a shared pixel scale, so resizing and cropping show as a change of size
            ax.set_xlim(-0.5, largest_w - 0.5)
            ax.set_ylim(largest_h - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
        column[0].set_title(f"{result.name}\n{describe(result.output)}", fontsize=8)
    for row, t in zip(axes, subsample_indices(len(results[0].images), frames_shown), strict=True):
        row[0].set_ylabel(f"frame {t}")
    fig.suptitle(title)
    return fig


def plot_augmentation_draws(
    preset: v2.Compose,
    clip: torch.Tensor,
    *,
    draws: int = 4,
    mean: Stats = KINETICS_MEAN,
    std: Stats = KINETICS_STD,
) -> Figure:
    """The middle frame of the clip, then of `draws` outputs of a random preset (torch's random state)."""
    middle = len(clip) // 2
    fig = Figure(figsize=(2.2 * (draws + 1), 2.6), layout="constrained")
    axes = fig.subplots(1, draws + 1)
    axes[0].imshow(as_images(clip)[middle])
    axes[0].set_title(f"decoded\n{tuple(clip.shape[-2:])}")
    for k, ax in enumerate(axes[1:], start=1):
        video = denormalize(preset(clip), mean, std)  # (C, T, H, W)
        ax.imshow(as_images(video.transpose(0, 1))[middle])
        ax.set_title(f"draw {k}\n{tuple(video.shape[-2:])}")
    for ax in axes:
        ax.axis("off")
    fig.suptitle("the same frame through the random train preset: scale, crop and flip change per draw")
    return fig


def time_steps(preset: v2.Compose, clip: torch.Tensor, *, repeats: int = 5) -> list[tuple[str, str, float]]:
    """(step, output shape and dtype, median ms) per step of a preset, single-threaded; run 1 warms up."""
    rows = []
    threads = torch.get_num_threads()
    # one thread, as in a DataLoader worker (PyTorch gives each worker one); a busy multi-threaded pool on a
    # loaded machine can also make tiny steps look hundreds of times slower than they are
    torch.set_num_threads(1)
    try:
        for step in preset.transforms:
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                output = step(clip)
                seconds.append(time.perf_counter() - start)
            rows.append((type(step).__name__, describe(output), 1000 * float(np.median(seconds[1:] or seconds))))
            clip = output
    finally:
        torch.set_num_threads(threads)
    return rows


def format_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Rows as a fixed-width text table; floats with two decimals."""
    cells = [list(headers)] + [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
