"""A figure of where a model looks: a few frames of a clip, each above its Grad-CAM map drawn over it.

Built without pyplot, so it works under any backend and a notebook shows it as a cell's value.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from video_processing.data.video import subsample_indices
from video_processing.inference.gradcam import overlay


def plot_gradcam_frames(
    frames: np.ndarray,
    cam: torch.Tensor,
    *,
    count: int = 4,
    boxes: torch.Tensor | None = None,
    title: str = "",
) -> Figure:
    """`count` evenly spaced frames of a clip (T, H, W, 3) uint8: the frame on top, its map over it below.

    `boxes`: an optional bool mask (T, H, W) outlined on the maps (e.g. the self-made shape's box).
    """
    picks = subsample_indices(len(frames), min(count, len(frames)))
    drawn = overlay(frames, cam)
    fig = Figure(figsize=(2 * len(picks), 4.3), layout="constrained")
    axes = fig.subplots(2, len(picks), squeeze=False)
    for column, t in enumerate(picks):
        axes[0, column].imshow(frames[t])
        axes[0, column].set_title(f"frame {t}", fontsize=8)
        axes[1, column].imshow(drawn[t])
        if boxes is not None and boxes[t].any():
            rows, cols = np.flatnonzero(boxes[t].any(1)), np.flatnonzero(boxes[t].any(0))
            corner, size = (cols[0] - 0.5, rows[0] - 0.5), (cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
            axes[1, column].add_patch(Rectangle(corner, *size, fill=False, edgecolor="white", linewidth=1.5))
        for ax in axes[:, column]:
            ax.axis("off")
    fig.suptitle(title)
    return fig
