"""Figures the notebooks and the docs draw: clip sampling, transform steps, training curves, validation.

Every function takes what it draws as arguments and returns a matplotlib Figure built without pyplot, so it
works under any backend (Agg in CI) and a notebook shows it as a cell's value.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from torchvision.transforms import v2

from video_processing.transforms import KINETICS_MEAN, KINETICS_STD, ToCTHW, denormalize
from video_processing.video import (
    constant_clip_windows,
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
        "uniform": uniform_clip_windows(duration_s, clip_duration_s),
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


def _as_images(frames: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) uint8, or float in [0, 1] -> (T, H, W, C) numpy for imshow."""
    images = frames.detach().cpu().as_subclass(torch.Tensor).permute(0, 2, 3, 1)
    return images.numpy() if images.dtype == torch.uint8 else images.float().clamp(0, 1).numpy()


def plot_frame_grid(frames: torch.Tensor, *, fps: float | None = None, title: str = "", ncols: int = 8) -> Figure:
    """Every frame of a (T, C, H, W) clip (uint8, or float in [0, 1]), labelled with its index (and time)."""
    images = _as_images(frames)
    nrows = -(-len(images) // ncols)
    height, width = images.shape[1:3]
    fig = Figure(figsize=(1.5 * ncols, 1.5 * nrows * height / width + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for t, ax in enumerate(axes):
        ax.axis("off")
        if t < len(images):
            ax.imshow(images[t])
            ax.set_title(f"frame {t}" if fps is None else f"{t}: {t / fps:.2f} s", fontsize=8)
    fig.suptitle(title)
    return fig


def clip_animation(frames: torch.Tensor, fps: float, *, title: str = "") -> FuncAnimation:
    """A (T, C, H, W) clip as an animation at `fps`; in a notebook: HTML(clip_animation(...).to_jshtml())."""
    images = _as_images(frames)
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
    results = [StepResult("decoded clip", clip, _as_images(clip))]
    normalized, time_first = False, True
    for step in preset.transforms:
        clip = step(clip)
        normalized = normalized or isinstance(step, v2.Normalize)
        time_first = time_first and not isinstance(step, ToCTHW)
        video = clip.transpose(0, 1) if time_first else clip  # (C, T, H, W), the layout denormalize takes
        if normalized:
            video = denormalize(video, mean, std)
        results.append(StepResult(type(step).__name__, clip, _as_images(video.transpose(0, 1))))
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
    axes[0].imshow(_as_images(clip)[middle])
    axes[0].set_title(f"decoded\n{tuple(clip.shape[-2:])}")
    for k, ax in enumerate(axes[1:], start=1):
        video = denormalize(preset(clip), mean, std)  # (C, T, H, W)
        ax.imshow(_as_images(video.transpose(0, 1))[middle])
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


# --- training and validation ---


def read_epoch_metrics(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """{metric: {epoch: value}} from a Lightning CSVLogger metrics.csv: the last value of each epoch."""
    metrics: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for name, value in row.items():
                if name not in ("epoch", "step") and value:
                    metrics.setdefault(name, {})[epoch] = float(value)
    return metrics


# (panel title, y label, [(metric, legend label)]) for plot_training_curves
CURVE_PANELS = (
    ("loss", "cross-entropy", [("train_loss_epoch", "train"), ("val_loss", "validation")]),
    ("validation accuracy per clip", "accuracy", [("val_acc_top1", "top-1"), ("val_acc_top5", "top-5")]),
    (
        "clip vs video accuracy (top-1)",
        "accuracy",
        [("val_acc_top1", "per clip"), ("val_video_acc_top1", "per video (clip logits averaged)")],
    ),
)


def plot_training_curves(metrics: dict[str, dict[int, float]]) -> Figure:
    """Loss, top-1/top-5 and clip- vs video-level accuracy per epoch, from `read_epoch_metrics`."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")
    axes = fig.subplots(1, len(CURVE_PANELS))
    for ax, (title, ylabel, series) in zip(axes, CURVE_PANELS, strict=True):
        for name, label in series:
            if name in metrics:
                epochs = sorted(metrics[name])
                style = "o-" if name == series[0][0] else "s--"  # dashed: the second series may overlap
                ax.plot(epochs, [metrics[name][e] for e in epochs], style, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ylabel == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    return fig


def plot_confusion_matrix(matrix: torch.Tensor | np.ndarray, class_names: Sequence[str], *, title: str) -> Figure:
    """Counts of (true, predicted) class pairs; cells are written out for up to 30 classes."""
    counts = np.asarray(matrix)
    size = min(4 + 0.45 * len(class_names), 16)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    colorbar = fig.colorbar(image, ax=ax, label="count", shrink=0.8)
    colorbar.ax.yaxis.get_major_locator().set_params(integer=True)
    if len(class_names) <= 30:
        for (true, predicted), count in np.ndenumerate(counts):
            color = "white" if count > counts.max() / 2 else "black"
            ax.text(predicted, true, str(int(count)), ha="center", va="center", color=color, fontsize=9)
    if len(class_names) <= 60:
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def per_class_accuracy(matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    """Diagonal over row sums of a confusion matrix: each class's recall (NaN for a class with no samples)."""
    counts = np.asarray(matrix, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(counts) / counts.sum(axis=1)


def plot_per_class_accuracy(
    matrix: torch.Tensor | np.ndarray, class_names: Sequence[str], *, max_classes: int = 30
) -> Figure:
    """Accuracy of each class, hardest first (the `max_classes` hardest when there are more)."""
    counts = np.asarray(matrix)
    accuracy = per_class_accuracy(counts)
    order = np.argsort(np.nan_to_num(accuracy, nan=-1.0), kind="stable")[:max_classes]
    fig = Figure(figsize=(7, 1 + 0.32 * len(order)), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(range(len(order)), np.nan_to_num(accuracy[order]), color="C0")
    ax.bar_label(bars, [f"{counts[i, i]}/{counts[i].sum()}" for i in order], padding=3, fontsize=8)
    ax.set_yticks(range(len(order)), [class_names[i] for i in order])
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("accuracy (correct / videos of the class)")
    shown = "" if len(order) == len(class_names) else f", the {len(order)} hardest of {len(class_names)}"
    ax.set_title(f"per-class accuracy{shown}")
    return fig


def plot_predictions(
    clips: torch.Tensor,
    labels: Sequence[int],
    logits: torch.Tensor,
    class_names: Sequence[str],
    *,
    frames_shown: int = 4,
    mean: Stats = KINETICS_MEAN,
    std: Stats = KINETICS_STD,
) -> Figure:
    """A row of frames per normalized clip (N, C, T, H, W), titled with the true and the predicted class."""
    probabilities = logits.float().softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    fig = Figure(figsize=(2 * frames_shown, 1.95 * len(clips)), layout="constrained")
    rows = fig.subfigures(len(clips), 1, squeeze=False)[:, 0]
    for k, (row, clip) in enumerate(zip(rows, clips, strict=True)):
        true, guess = int(labels[k]), int(predicted[k])
        images = _as_images(denormalize(clip.cpu(), mean, std).transpose(0, 1))
        for ax, t in zip(row.subplots(1, frames_shown), subsample_indices(len(images), frames_shown), strict=True):
            ax.imshow(images[t])
            ax.axis("off")
        row.suptitle(
            f"true: {class_names[true]}  |  predicted: {class_names[guess]} ({confidence[k]:.0%})",
            color="tab:green" if guess == true else "tab:red",
            fontsize=10,
        )
    return fig
