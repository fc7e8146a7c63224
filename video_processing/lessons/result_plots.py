"""Figures of results: training curves, confusions, per-class accuracy, predictions, runs compared, top-k.

Every function takes what it draws as arguments and returns a matplotlib Figure built without pyplot, so it
works under any backend (Agg in CI) and a notebook shows it as a cell's value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from video_processing.data.transforms import KINETICS_MEAN, KINETICS_STD, denormalize
from video_processing.data.video import subsample_indices
from video_processing.inference.segments import WindowLabel
from video_processing.lessons.clip_plots import Stats, as_images


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
    """A row of frames per clip (N, C, T, H, W), titled with the true and the predicted class.

    Clips are uint8 (shown as they are) or normalized with `mean`/`std` (shown denormalized).
    """
    probabilities = logits.float().softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    fig = Figure(figsize=(2 * frames_shown, 1.95 * len(clips)), layout="constrained")
    rows = fig.subfigures(len(clips), 1, squeeze=False)[:, 0]
    for k, (row, clip) in enumerate(zip(rows, clips, strict=True)):
        true, guess = int(labels[k]), int(predicted[k])
        shown = clip.cpu() if clip.dtype == torch.uint8 else denormalize(clip.cpu(), mean, std)
        images = as_images(shown.transpose(0, 1))
        for ax, t in zip(row.subplots(1, frames_shown), subsample_indices(len(images), frames_shown), strict=True):
            ax.imshow(images[t])
            ax.axis("off")
        row.suptitle(
            f"true: {class_names[true]}  |  predicted: {class_names[guess]} ({confidence[k]:.0%})",
            color="tab:green" if guess == true else "tab:red",
            fontsize=10,
        )
    return fig


# (metric, panel title, y label) drawn by plot_runs_compared
COMPARED_METRICS = (
    ("val_acc_top1", "validation accuracy per clip (top-1)", "accuracy"),
    ("val_video_acc_top1", "validation accuracy per video (top-1)", "accuracy"),
    ("train_loss_epoch", "training loss", "cross-entropy"),
)


def plot_runs_compared(runs: Mapping[str, Mapping[str, Mapping[int, float]]]) -> Figure:
    """One panel per metric of COMPARED_METRICS, one line per run, over epochs.

    `runs` maps a run's label (e.g. "fine-tuned", "from scratch") to {metric: {epoch: value}}, as read from a
    CSVLogger metrics.csv.
    """
    fig = Figure(figsize=(4.2 * len(COMPARED_METRICS), 3.4), layout="constrained")
    for ax, (metric, title, ylabel) in zip(fig.subplots(1, len(COMPARED_METRICS)), COMPARED_METRICS, strict=True):
        for label, metrics in runs.items():
            curve = metrics.get(metric, {})
            epochs = sorted(curve)
            ax.plot(epochs, [curve[e] for e in epochs], marker="o", label=label)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ylabel == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(runs))
    return fig


def plot_top_k(
    frames: torch.Tensor, top: Sequence[tuple[str, float]], *, frames_shown: int = 4, title: str = ""
) -> Figure:
    """`frames_shown` evenly spaced frames of a uint8 (T, C, H, W) clip beside a bar chart of its top classes.

    `top` is [(class name, probability)], most probable first, as `predict.Prediction.top` holds it.
    """
    picked = np.linspace(0, len(frames) - 1, min(frames_shown, len(frames))).round().astype(int)
    images = frames[picked].permute(0, 2, 3, 1).numpy()
    height, width = images.shape[1:3]
    fig = Figure(figsize=(2.2 * len(images) + 4.5, max(2.6, 2.2 * height / width + 0.6)), layout="constrained")
    grid = fig.add_gridspec(1, len(images) + 2)
    for i, (index, image) in enumerate(zip(picked, images, strict=True)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image)
        ax.set_title(f"frame {index}", fontsize=8)
        ax.axis("off")
    bars = fig.add_subplot(grid[0, len(images) :])
    names = [name for name, _ in top]
    probabilities = [probability for _, probability in top]
    bars.barh(range(len(top)), probabilities, color="tab:blue")
    bars.set_yticks(range(len(top)), names)
    bars.invert_yaxis()  # most probable on top
    bars.set_xlim(0, 1)
    bars.set_xlabel("probability")
    for y, probability in enumerate(probabilities):
        bars.text(min(probability + 0.02, 0.8), y, f"{probability:.1%}", va="center", fontsize=8)
    fig.suptitle(title)
    return fig


def confident_mistakes(logits: torch.Tensor, labels: torch.Tensor, count: int) -> list[int]:
    """Rows of the `count` wrong clip predictions made with the highest softmax confidence, most confident first.

    `logits` and `labels` are `trainer.predict`'s rows, in loader order; `clips_at_rows` finds the clips again.
    """
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    wrong = (predicted != labels).nonzero().flatten().tolist()
    return sorted(wrong, key=lambda i: -float(confidence[i]))[:count]


def clips_at_rows(batches: Iterable[dict], rows: Sequence[int]) -> torch.Tensor:
    """The clips at `rows` of a loader's batches, counted across batches, stacked in the order of `rows`.

    Read from the same loader `trainer.predict` ran on (the validation clips come in a fixed order), so clip k
    is the one that gave prediction row k; only the batches up to the last wanted row are loaded.
    """
    wanted, found, seen = set(rows), {}, 0
    for batch in batches:
        for row in wanted & set(range(seen, seen + len(batch["video"]))):
            found[row] = batch["video"][row - seen]
        seen += len(batch["video"])
        if len(found) == len(wanted):
            break
    if missing := wanted - found.keys():
        raise IndexError(f"rows {sorted(missing)} are past the loader's {seen} clips")
    return torch.stack([found[row] for row in rows])


def plot_accuracies(accuracies: Mapping[str, float], *, title: str = "") -> Figure:
    """One horizontal bar per named accuracy, its value written beside it."""
    fig = Figure(figsize=(7, 0.6 + 0.45 * len(accuracies)), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(range(len(accuracies)), list(accuracies.values()), color="C0")
    ax.bar_label(bars, [f"{value:.1%}" for value in accuracies.values()], padding=3, fontsize=9)
    ax.set_yticks(range(len(accuracies)), list(accuracies))
    ax.invert_yaxis()  # first on top
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("top-1 accuracy")
    ax.set_title(title)
    return fig


def read_learning_rate(metrics_csv: str | Path) -> tuple[list[int], list[float]]:
    """(steps, learning rates) that Lightning's LearningRateMonitor logged (its `lr-<optimizer>` column)."""
    steps, rates = [], []
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            value = next((v for name, v in row.items() if name.startswith("lr-") and v), None)
            if value is not None:
                steps.append(int(row["step"]))
                rates.append(float(value))
    return steps, rates


def plot_learning_rate(steps: Sequence[int], rates: Sequence[float]) -> Figure:
    """The learning rate per optimizer step, as the run used it."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, rates, marker="." if len(steps) < 50 else None)
    ax.set(title="learning rate per step (logged by LearningRateMonitor)", xlabel="optimizer step", ylabel="lr")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return fig


def plot_labels_over_time(windows: Sequence[WindowLabel], *, title: str = "") -> Figure:
    """One bar per window on the video's timeline, coloured by its top-1 label, its height the probability."""
    names = list(dict.fromkeys(window.label for window in windows))  # first-seen order
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.add_subplot()
    for window in windows:
        colour = f"C{names.index(window.label) % 10}"
        ax.bar(window.start_s, window.probability, width=window.end_s - window.start_s, align="edge", color=colour)
    handles = [Patch(color=f"C{k % 10}", label=name) for k, name in enumerate(names)]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set(xlabel="time in the video (s)", ylabel="top-1 probability", ylim=(0, 1.05), title=title)
    return fig
