"""Where a classifier looks: a class-activation map on one of its 3D stages, upsampled to the clip.

Two maps, both from captum, both the ReLU of the stage's output (N, C, T', H', W') weighed by the class score's
gradients there and summed over the channels:

- "hirescam" (the default; HiResCAM, Draelos and Carin 2020): each place weighed by its own gradients
  (captum's `LayerGradientXActivation`).
- "gradcam" (Grad-CAM, Selvaraju et al. 2017): the gradients first averaged over time, height and width, one
  weight per channel (captum's `LayerGradCam`).

At the last stage of the ResNets, which a global average pool and a linear layer follow, the score's gradient is
the same at every place, so the two are the same map (X3D's head convolves before it pools). At an earlier stage
they differ, and averaging can move the map off what raised the score (docs/benchmarks.md, "HiResCAM and
Grad-CAM on the self-made set": some of the demo's classes, on the shape with HiResCAM, off it with Grad-CAM).

The stage is, unless one is asked for, the last whose output is at least `MIN_CELLS` cells on each side: the
last stage at the crops Kinetics models are trained on (7 x 7 at 224 px), an earlier one for small crops, whose
last stage is too coarse to point at anything (2 x 2 at 64 px). `LayerAttribution.interpolate` stretches the map
trilinearly to the clip's frames and crop. The map lives in the model's view of the clip: its frames after the
eval preset's resize and center crop, which `model_view` returns as images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pytorchvideo.models.resnet import ResStage
from torch import nn

from video_processing.data.transforms import eval_preset
from video_processing.data.video import open_video
from video_processing.inference.classifiers import Classifier, classifier_preset
from video_processing.inference.streams import stream_clips


class ExplainError(ValueError):
    """The model or the class asked for cannot be explained; the message says why."""


# The maps, by the name `--method` takes, and what they are called in print.
METHODS = {"hirescam": "HiResCAM", "gradcam": "Grad-CAM"}
# The cells per side of the last stage of a ResNet at Kinetics' 224 px crops: the usual Grad-CAM resolution.
MIN_CELLS = 7


@dataclass(frozen=True)
class Stage:
    """The 3D stage a map is read from: number `number` of `count` (1: the first), and its output's cells on its
    shorter side (the map's own resolution, before it is stretched to the crop)."""

    number: int
    count: int
    cells: int
    module: nn.Module

    def __str__(self) -> str:
        return f"stage {self.number} of {self.count} ({self.cells} x {self.cells} cells)"


def stages(network: nn.Module) -> list[nn.Module]:
    """The 3D stages of a backbone, first to last: the ResStage blocks of PyTorchVideo's ResNet and X3D, and
    layer1 to layer4 of torchvision's video ResNets. ExplainError for any other network (SlowFast's two
    pathways, S3D, and the transformers have no such stages)."""
    if hasattr(network, "layer4"):
        return [network.layer1, network.layer2, network.layer3, network.layer4]
    found = [block for block in getattr(network, "blocks", []) if isinstance(block, ResStage)]
    if not found:
        raise ExplainError(
            f"maps are read from the 3D stages of the backbones resnet, slow_r50, x3d_xs, x3d_s, x3d_m, "
            f"r2plus1d_18 and r3d_18; {type(network).__name__} has none"
        )
    return found


def _cells(module: nn.Module, found: list[nn.Module]) -> list[int]:
    """Each stage's output cells on its shorter side, for the model's input (num_frames x crop x crop)."""
    cells = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: cells.append(min(out.shape[-2:]))) for stage in found]
    shape = (1, 3, module.hparams.num_frames, module.hparams.crop_size, module.hparams.crop_size)
    try:
        with torch.no_grad():
            module(torch.zeros(shape, device=module.device, dtype=module.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return cells


def _network(classifier: Classifier) -> nn.Module:
    """The classifier's module; ExplainError for an exported model, which has no gradients."""
    if not isinstance(classifier.module, nn.Module):
        raise ExplainError("an exported ONNX model has no gradients to explain; give the training checkpoint")
    return classifier.module


def choose_stage(classifier: Classifier, number: int | None = None) -> Stage:
    """Stage `number` (1: the first) when given, else the last stage at least MIN_CELLS cells on each side (the
    first stage if none is). ExplainError for a number the network does not have."""
    found = stages(_network(classifier).backbone)
    if number is not None and not 1 <= number <= len(found):
        raise ExplainError(f"no stage {number}: the network has stages 1 to {len(found)}")
    cells = _cells(classifier.module, found)
    if number is None:
        number = max((i + 1 for i, side in enumerate(cells) if side >= MIN_CELLS), default=1)
    return Stage(number, len(found), cells[number - 1], found[number - 1])


def class_index(classifier: Classifier, name: str) -> int:
    """The index of class `name`; ExplainError listing the classes when it is unknown."""
    if name not in classifier.class_names:
        raise ExplainError(f"unknown class {name!r}; the model's classes are {classifier.class_names}")
    return classifier.class_names.index(name)


def clip_cam(
    classifier: Classifier, clip: torch.Tensor, target: int, stage: Stage | None = None, method: str = "hirescam"
) -> torch.Tensor:
    """The `method` map (see above) of class `target` on `stage` (default: `choose_stage`'s) for one normalized
    clip (C, T, H, W): a map (T, H, W) >= 0 on the CPU."""
    from captum.attr import LayerAttribution, LayerGradCam, LayerGradientXActivation  # the [explain] extra

    module = _network(classifier)
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    stage = stage or choose_stage(classifier)
    inputs = clip.unsqueeze(0).to(module.device).requires_grad_()
    with torch.enable_grad():
        if method == "gradcam":
            cam = LayerGradCam(module, stage.module).attribute(inputs, target, relu_attributions=True)
        else:
            places = LayerGradientXActivation(module, stage.module).attribute(inputs, target)
            cam = places.sum(1, keepdim=True).clamp(min=0)  # the ReLU before stretching, as Grad-CAM's
    cam = LayerAttribution.interpolate(cam.detach(), tuple(clip.shape[1:]), interpolate_mode="trilinear")
    return cam[0, 0].clamp_(min=0).cpu()


@dataclass
class ClipExplanation:
    """One clip as the model sees it, uint8 frames (T, H, W, 3), with its map (T, H, W)."""

    start_s: float
    end_s: float
    frames: np.ndarray
    cam: torch.Tensor


def model_view(classifier: Classifier, frames: torch.Tensor) -> np.ndarray:
    """Frames (T, C, H, W) uint8 resized and center-cropped as the eval preset does: (T, crop, crop, 3) uint8."""
    settings = classifier.clips
    view = eval_preset(crop_size=classifier.module.hparams.crop_size, short_side=settings.min_short_side, uint8=True)
    return view(frames).permute(1, 2, 3, 0).numpy()


def explain_clip(
    classifier: Classifier, frames: torch.Tensor, target: int, stage: Stage | None = None, method: str = "hirescam"
) -> tuple[np.ndarray, torch.Tensor]:
    """The model's view of uint8 frames (T, C, H, W) and its `method` map for class `target` on `stage`."""
    clip = classifier_preset(classifier)(frames)
    return model_view(classifier, frames), clip_cam(classifier, clip, target, stage, method)


def explain_video(
    classifier: Classifier, path: str | Path, target: int, stage: Stage | None = None, method: str = "hirescam"
) -> Iterator[ClipExplanation]:
    """The video's back-to-back clips (as `predict` cuts them), one at a time, each with its map for `target`."""
    clip_s, num_frames = classifier.clips.clip_duration, classifier.module.hparams.num_frames
    stage = stage or choose_stage(classifier)
    with open_video(path) as container:
        for clip in stream_clips(container, path, clip_s, clip_s, num_frames):
            frames, cam = explain_clip(classifier, clip.frames, target, stage, method)
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
