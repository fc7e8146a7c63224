"""Figures of fine-tuning and inference: runs compared per epoch; frames beside their top-k classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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
