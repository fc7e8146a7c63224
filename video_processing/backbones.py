"""Kinetics-400 backbones chosen by name: builder, expected input and pretrained weights.

    build_backbone("x3d_xs", num_classes=10, num_frames=4, crop_size=160, pretrained=True)

Weights come from PyTorchVideo's model zoo and torchvision through torch.hub's download cache
($TORCH_HOME/hub/checkpoints), so each file is downloaded once. Their URLs live in `WEIGHT_URLS` only.
A model built for `num_classes` other than 400 keeps the pretrained layers and gets a new, randomly
initialised final projection: the head that fine-tuning trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.error import URLError

import torch
from pytorchvideo.models.resnet import create_resnet
from pytorchvideo.models.x3d import create_x3d
from torch import nn
from torchvision.models import video as tv_video

# Spatial downsampling of PyTorchVideo's ResNet and X3D: stem (2) and the strided stages (16).
SPATIAL_STRIDE = 32
KINETICS_CLASSES = 400

_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
WEIGHT_URLS: dict[str, str] = {
    "slow_r50": f"{_ZOO}/SLOW_8x8_R50.pyth",
    "x3d_xs": f"{_ZOO}/X3D_XS.pyth",
    "x3d_s": f"{_ZOO}/X3D_S.pyth",
    "x3d_m": f"{_ZOO}/X3D_M.pyth",
    "r2plus1d_18": tv_video.R2Plus1D_18_Weights.KINETICS400_V1.url,
    "r3d_18": tv_video.R3D_18_Weights.KINETICS400_V1.url,
}

PYTORCHVIDEO_MEAN = (0.45, 0.45, 0.45)
PYTORCHVIDEO_STD = (0.225, 0.225, 0.225)
# torchvision's video weights were trained with these (see R2Plus1D_18_Weights.KINETICS400_V1.transforms()).
TORCHVISION_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_STD = (0.22803, 0.22145, 0.216989)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be downloaded or do not fit the model."""


@dataclass(frozen=True)
class Backbone:
    """A Kinetics-400 architecture and the input its pretrained weights expect.

    `build(num_frames, crop_size)` returns the 400-class model for that input; `head` is the dotted name of
    its final projection (an nn.Linear). `clip_duration_s` is the time the weights' `num_frames` frames span.
    """

    name: str
    build: Callable[[int, int], nn.Module]
    head: str
    num_frames: int
    crop_size: int
    short_side: int
    clip_duration_s: float
    mean: tuple[float, float, float] = PYTORCHVIDEO_MEAN
    std: tuple[float, float, float] = PYTORCHVIDEO_STD


def _slow_r50(num_frames: int, crop_size: int) -> nn.Module:
    # The zoo's slow_r50 (create_resnet defaults, temporal stem kernel 1), pooled over exactly the input.
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    return create_resnet(
        model_depth=50,
        model_num_class=KINETICS_CLASSES,
        stem_conv_kernel_size=(1, 7, 7),
        head_pool_kernel_size=(num_frames, side, side),
    )


def _x3d(depth_factor: float) -> Callable[[int, int], nn.Module]:
    def build(num_frames: int, crop_size: int) -> nn.Module:
        # head_activation None: the zoo's softmax would turn logits into probabilities inside the model.
        return create_x3d(
            input_clip_length=num_frames,
            input_crop_size=crop_size,
            depth_factor=depth_factor,
            model_num_class=KINETICS_CLASSES,
            head_activation=None,
        )

    return build


def _torchvision(builder: Callable[..., nn.Module]) -> Callable[[int, int], nn.Module]:
    # These models pool adaptively, so any frame count and crop fit.
    return lambda num_frames, crop_size: builder(weights=None, num_classes=KINETICS_CLASSES)


def _torchvision_entry(name: str, builder: Callable[..., nn.Module]) -> Backbone:
    # torchvision's weights: 16 consecutive frames at 15 fps, short side 128, crop 112, their mean and std.
    return Backbone(
        name, _torchvision(builder), head="fc", num_frames=16, crop_size=112, short_side=128,
        clip_duration_s=16 / 15, mean=TORCHVISION_MEAN, std=TORCHVISION_STD,
    )  # fmt: skip


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        # The zoo samples 8 frames 8 apart at 30 fps; X3D-XS 4 frames 12 apart, -S 13 x 6, -M 16 x 5.
        Backbone("slow_r50", _slow_r50, "blocks.5.proj", num_frames=8, crop_size=224, short_side=256,
                 clip_duration_s=64 / 30),
        Backbone("x3d_xs", _x3d(2.2), "blocks.5.proj", num_frames=4, crop_size=160, short_side=182,
                 clip_duration_s=48 / 30),
        Backbone("x3d_s", _x3d(2.2), "blocks.5.proj", num_frames=13, crop_size=160, short_side=182,
                 clip_duration_s=78 / 30),
        Backbone("x3d_m", _x3d(2.2), "blocks.5.proj", num_frames=16, crop_size=224, short_side=256,
                 clip_duration_s=80 / 30),
        _torchvision_entry("r2plus1d_18", tv_video.r2plus1d_18),
        _torchvision_entry("r3d_18", tv_video.r3d_18),
    )
}  # fmt: skip


def get_backbone(name: str) -> Backbone:
    """The registry entry for `name`; raise ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def load_pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """The Kinetics-400 state dict of backbone `name`, downloaded once into torch.hub's cache."""
    url = WEIGHT_URLS[name]
    try:
        # check_hash verifies torchvision's files, whose names carry their sha256 prefix.
        checkpoint = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except (URLError, OSError) as e:
        raise PretrainedWeightsError(
            f"could not download the {name} weights from {url} ({e}). Without internet, copy the file into "
            f"{torch.hub.get_dir()}/checkpoints/, or train with pretrained=False."
        ) from None
    # PyTorchVideo's zoo files are training checkpoints: {"model_state": state_dict, ...}.
    return checkpoint.get("model_state", checkpoint)


def build_backbone(
    name: str,
    num_classes: int = KINETICS_CLASSES,
    *,
    num_frames: int,
    crop_size: int,
    pretrained: bool = False,
) -> nn.Module:
    """Backbone `name` for clips of (num_frames, crop_size, crop_size), with Kinetics weights if `pretrained`.

    For `num_classes` other than 400 the final projection is replaced by a new one. Input: float
    (B, 3, num_frames, crop_size, crop_size) normalized with the entry's mean and std; output: logits.
    """
    backbone = get_backbone(name)
    if num_frames < 1 or crop_size < SPATIAL_STRIDE:
        raise ValueError(f"{name} needs num_frames >= 1 and crop_size >= {SPATIAL_STRIDE}")
    model = backbone.build(num_frames, crop_size)
    if pretrained:
        state = load_pretrained_state(name)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise PretrainedWeightsError(f"the {name} weights do not fit the model: {e}") from None
    if num_classes != KINETICS_CLASSES:
        _replace(model, backbone.head, nn.Linear(model.get_submodule(backbone.head).in_features, num_classes))
    return model


def split_head(model: nn.Module, head: str) -> tuple[nn.Module, nn.Linear]:
    """Split `model` into (backbone, head): its final projection, replaced by Identity in the backbone.

    The projection is linear and the models average over space-time after it, so head(backbone(x)) equals
    model(x).
    """
    projection = model.get_submodule(head)
    _replace(model, head, nn.Identity())
    return model, projection


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


@cache
def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the class-index order of the pretrained weights (alphabetical)."""
    text = resources.files("video_processing").joinpath("kinetics400_classes.txt").read_text()
    return text.splitlines()
