"""Where a classifier looks: Grad-CAM on its last 3D stage, upsampled to the clip in time and space.

Captum's `LayerGradCam` does the work: it averages the class score's gradients over every dimension after the
channels, so a (N, C, T, H, W) stage gives one weight per channel, and the map is the ReLU of the weighted sum
of the stage's output, (N, 1, T', H', W'). `LayerAttribution.interpolate` then stretches it trilinearly to the
clip's frames and crop. The map lives in the model's view of the clip: its frames after the eval preset's
resize and center crop, which `model_view` returns as images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from video_processing.data.transforms import eval_preset
from video_processing.data.video import open_video, subsample_indices
from video_processing.inference.classifiers import Classifier, classifier_preset
from video_processing.inference.streams import stream_clips
from video_processing.synthetic import render_video_with_boxes


class ExplainError(ValueError):
    """The model or the class asked for cannot be explained; the message says why."""


def last_stage(network: nn.Module) -> nn.Module:
    """The last 3D stage of a registry backbone: PyTorchVideo's ResNet and X3D are blocks = stem, stages, head;
    torchvision's video ResNets end their stages with layer4."""
    if hasattr(network, "blocks"):
        return network.blocks[-2]
    if hasattr(network, "layer4"):
        return network.layer4
    raise ExplainError(f"no known last 3D stage in {type(network).__name__}: expected .blocks or .layer4")


def class_index(classifier: Classifier, name: str) -> int:
    """The index of class `name`; ExplainError listing the classes when it is unknown."""
    if name not in classifier.class_names:
        raise ExplainError(f"unknown class {name!r}; the model's classes are {classifier.class_names}")
    return classifier.class_names.index(name)


def clip_cam(classifier: Classifier, clip: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM of class `target` for one normalized clip (C, T, H, W): a map (T, H, W) >= 0 on the CPU."""
    from captum.attr import LayerAttribution, LayerGradCam  # the optional [explain] extra

    module = classifier.module
    if not isinstance(module, nn.Module):
        raise ExplainError("an exported ONNX model has no gradients to explain; give the training checkpoint")
    inputs = clip.unsqueeze(0).to(module.device).requires_grad_()
    with torch.enable_grad():
        cam = LayerGradCam(module, last_stage(module.backbone)).attribute(inputs, target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam.detach(), tuple(clip.shape[1:]), interpolate_mode="trilinear")
    return cam[0, 0].clamp_(min=0).cpu()


@dataclass
class ClipExplanation:
    """One clip as the model sees it, uint8 frames (T, H, W, 3), with its Grad-CAM map (T, H, W)."""

    start_s: float
    end_s: float
    frames: np.ndarray
    cam: torch.Tensor


def model_view(classifier: Classifier, frames: torch.Tensor) -> np.ndarray:
    """Frames (T, C, H, W) uint8 resized and center-cropped as the eval preset does: (T, crop, crop, 3) uint8."""
    settings = classifier.clips
    view = eval_preset(crop_size=classifier.module.hparams.crop_size, short_side=settings.min_short_side, uint8=True)
    return view(frames).permute(1, 2, 3, 0).numpy()


def explain_clip(classifier: Classifier, frames: torch.Tensor, target: int) -> tuple[np.ndarray, torch.Tensor]:
    """The model's view of uint8 frames (T, C, H, W) and its Grad-CAM map for class `target`."""
    return model_view(classifier, frames), clip_cam(classifier, classifier_preset(classifier)(frames), target)


def explain_video(classifier: Classifier, path: str | Path, target: int) -> Iterator[ClipExplanation]:
    """The video's back-to-back clips (as `predict` cuts them), one at a time, each with its map for `target`."""
    clip_s, num_frames = classifier.clips.clip_duration, classifier.module.hparams.num_frames
    with open_video(path) as container:
        for clip in stream_clips(container, path, clip_s, clip_s, num_frames):
            frames, cam = explain_clip(classifier, clip.frames, target)
            yield ClipExplanation(clip.start_s, clip.end_s, frames, cam)


def overlay(frames: np.ndarray, cam: torch.Tensor, *, alpha: float = 0.5, peak: float | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 with the map drawn over them in the "jet" colours (blue: nothing, red: the
    most); `peak` is the map value shown as the most (default: the map's maximum)."""
    from matplotlib import colormaps

    peak = float(cam.max()) if peak is None else peak
    heat = colormaps["jet"]((cam / peak).clamp(0, 1).numpy() if peak > 0 else np.zeros(cam.shape))[..., :3]
    return (frames * (1 - alpha) + heat * 255 * alpha).round().astype(np.uint8)


def boxes_in_view(classifier: Classifier, boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Boxes (T, 4: x0, y0, x1, y1) of (H, W) frames as a bool mask (T, crop, crop) of the model's view."""
    masks = torch.zeros(len(boxes), 3, height, width, dtype=torch.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.tolist(), strict=True):
        mask[:, y0:y1, x0:x1] = 255
    return torch.from_numpy(model_view(classifier, masks)[..., 0] >= 128)


def mass_in_boxes(cam: torch.Tensor, inside: torch.Tensor) -> tuple[float, float]:
    """The share of the map's mass where `inside` (a bool (T, H, W) mask, e.g. the moving shape's box) is
    true, and the share of the clip's pixels it covers: what a map spread evenly would score (chance)."""
    total = float(cam.sum())
    share = float(cam[inside].sum()) / total if total > 0 else 0.0
    return share, float(inside.float().mean())


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
    classifier: Classifier, size: int, *, clips_per_class: int = 1, seed: int = 1, fps: int = 25
) -> list[ShapeMeasure]:
    """Fresh self-made clips (size x size frames, `clip_duration` long), `clips_per_class` of each class the
    classifier knows, rendered with their shape's boxes and explained for their own class: where the map falls
    against where the shape is."""
    rng = np.random.default_rng(seed)
    length = round(classifier.clips.clip_duration * fps)
    kept = subsample_indices(length, classifier.module.hparams.num_frames)
    measures = []
    for _ in range(clips_per_class):
        for label in classifier.class_names:
            frames, boxes = render_video_with_boxes(label, rng, size, size, length, fps)
            clip = torch.from_numpy(frames[kept]).permute(0, 3, 1, 2)
            view, cam = explain_clip(classifier, clip, class_index(classifier, label))
            inside = boxes_in_view(classifier, boxes[kept], size, size)
            measures.append(ShapeMeasure(label, *mass_in_boxes(cam, inside), view, cam, inside))
    return measures
