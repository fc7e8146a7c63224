"""Where a model looks: a figure of a few frames of a clip, each above its map (`inference/gradcam.py`) drawn over
it, and the map measured on self-made clips, whose moving shape's box is known.

Built without pyplot, so it works under any backend and a notebook shows it as a cell's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from video_processing.data.video import subsample_indices
from video_processing.inference.classifiers import Classifier
from video_processing.inference.gradcam import (
    Stage,
    boxes_in_view,
    choose_stage,
    class_index,
    explain_clip,
    mass_in_boxes,
    overlay,
)
from video_processing.synthetic import render_video_with_boxes


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


@dataclass
class ShapeMeasure:
    """A self-made clip of class `label` explained for its class: the share of the map's mass in the moving
    shape's box, and the box's share of the clip (chance)."""

    label: str
    share: float
    chance: float
    frames: np.ndarray
    cam: torch.Tensor
    inside: torch.Tensor


def measure_on_shapes(
    classifier: Classifier,
    size: int,
    *,
    clips_per_class: int = 1,
    seed: int = 1,
    fps: int = 25,
    stage: Stage | None = None,
    method: str = "hirescam",
) -> list[ShapeMeasure]:
    """Fresh self-made clips (size x size frames, `clip_duration` long), `clips_per_class` of each class the
    classifier knows, rendered with their shape's boxes and explained for their own class by `method` on `stage`
    (default: `choose_stage`'s): where the map falls against where the shape is."""
    rng = np.random.default_rng(seed)
    stage = stage or choose_stage(classifier)
    length = round(classifier.clips.clip_duration * fps)
    kept = subsample_indices(length, classifier.module.hparams.num_frames)
    measures = []
    for _ in range(clips_per_class):
        for label in classifier.class_names:
            frames, boxes = render_video_with_boxes(label, rng, size, size, length, fps)
            clip = torch.from_numpy(frames[kept]).permute(0, 3, 1, 2)
            view, cam = explain_clip(classifier, clip, class_index(classifier, label), stage, method)
            inside = boxes_in_view(classifier, boxes[kept], size, size)
            measures.append(ShapeMeasure(label, *mass_in_boxes(cam, inside), view, cam, inside))
    return measures
