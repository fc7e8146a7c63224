"""Video networks chosen by name: builder, the input they expect, and where their pretrained weights live.

    build_backbone("x3d_xs", num_classes=10, num_frames=4, crop_size=160, pretrained=True)

The registry `BACKBONES` is the one place that says what a network is: "resnet" is the from-scratch Kinetics
ResNet (`make_kinetics_resnet`), the others are Kinetics-400 pretrained networks. Weights come from
PyTorchVideo's model zoo and torchvision through torch.hub's download cache ($TORCH_HOME/hub/checkpoints), so each
file is downloaded once. A model built for `num_classes` other than 400 keeps the pretrained layers and gets a
new, randomly initialised final projection: the head that fine-tuning trains.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import video as tv_video

from video_processing.lessons.progress import watched

with warnings.catch_warnings():
    # PyTorchVideo's models import fvcore, which scripts a loss with torch.jit.script at import time: a
    # FutureWarning (torch.jit is deprecated) about code this package never runs, printed before any output.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from pytorchvideo.models.resnet import create_resnet
    from pytorchvideo.models.x3d import create_x3d

# Spatial downsampling of PyTorchVideo's ResNet and X3D: stem (2) and the strided stages (16).
SPATIAL_STRIDE = 32
KINETICS_CLASSES = 400

_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
# The final projection of PyTorchVideo's ResNet and X3D: blocks are the stem, the stages, then the head.
PYTORCHVIDEO_HEAD = "blocks.5.proj"

PYTORCHVIDEO_MEAN = (0.45, 0.45, 0.45)
PYTORCHVIDEO_STD = (0.225, 0.225, 0.225)
# torchvision's video weights were trained with these (see R2Plus1D_18_Weights.KINETICS400_V1.transforms()).
TORCHVISION_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_STD = (0.22803, 0.22145, 0.216989)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights could not be downloaded or do not fit the model."""


@dataclass(frozen=True)
class Backbone:
    """A network and the input it expects: the input its pretrained weights were trained on, if it has any.

    `build(num_frames, crop_size, **options)` returns the 400-class model for that input; `options` names the
    extra size arguments the builder takes (the module's model_depth and stem_dim_out, for "resnet"). `head` is
    the dotted name of its final projection (an nn.Linear). `clip_duration_s` is the time the `num_frames`
    frames span. `weights_url` is where its Kinetics-400 weights live (None: it has none).
    """

    name: str
    build: Callable[..., nn.Module] = field(repr=False)  # a function: its address says nothing
    head: str
    num_frames: int
    crop_size: int
    short_side: int
    clip_duration_s: float
    weights_url: str | None
    mean: tuple[float, float, float] = PYTORCHVIDEO_MEAN
    std: tuple[float, float, float] = PYTORCHVIDEO_STD
    options: tuple[str, ...] = ()


def _resnet(num_frames: int, crop_size: int, model_depth: int = 50, stem_dim_out: int = 64) -> nn.Module:
    # The from-scratch Kinetics ResNet ("slow" pathway, temporal stem kernel 3), pooled over exactly the input.
    # Every width scales with stem_dim_out: 64 is the Kinetics model; 8 a thin variant that trains on a CPU.
    side = math.ceil(crop_size / SPATIAL_STRIDE)
    return create_resnet(
        input_channel=3,
        model_depth=model_depth,
        model_num_class=KINETICS_CLASSES,
        stem_dim_out=stem_dim_out,
        norm=nn.BatchNorm3d,
        activation=nn.ReLU,
        head_pool_kernel_size=(num_frames, side, side),
    )


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


def _torchvision_entry(name: str, builder: Callable[..., nn.Module], weights: tv_video.Weights) -> Backbone:
    # torchvision's weights: 16 consecutive frames at 15 fps, short side 128, crop 112, their mean and std.
    return Backbone(
        name, _torchvision(builder), head="fc", num_frames=16, crop_size=112, short_side=128,
        clip_duration_s=16 / 15, weights_url=weights.url, mean=TORCHVISION_MEAN, std=TORCHVISION_STD,
    )  # fmt: skip


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        # From scratch: 8 frames of 2-s clips, 224 px crops of a 256 px short side (the data module's defaults).
        Backbone("resnet", _resnet, PYTORCHVIDEO_HEAD, num_frames=8, crop_size=224, short_side=256,
                 clip_duration_s=2.0, weights_url=None, options=("model_depth", "stem_dim_out")),
        # The zoo samples 8 frames 8 apart at 30 fps; X3D-XS 4 frames 12 apart, -S 13 x 6, -M 16 x 5.
        Backbone("slow_r50", _slow_r50, PYTORCHVIDEO_HEAD, num_frames=8, crop_size=224, short_side=256,
                 clip_duration_s=64 / 30, weights_url=f"{_ZOO}/SLOW_8x8_R50.pyth"),
        Backbone("x3d_xs", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=4, crop_size=160, short_side=182,
                 clip_duration_s=48 / 30, weights_url=f"{_ZOO}/X3D_XS.pyth"),
        Backbone("x3d_s", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=13, crop_size=160, short_side=182,
                 clip_duration_s=78 / 30, weights_url=f"{_ZOO}/X3D_S.pyth"),
        Backbone("x3d_m", _x3d(2.2), PYTORCHVIDEO_HEAD, num_frames=16, crop_size=224, short_side=256,
                 clip_duration_s=80 / 30, weights_url=f"{_ZOO}/X3D_M.pyth"),
        _torchvision_entry("r2plus1d_18", tv_video.r2plus1d_18, tv_video.R2Plus1D_18_Weights.KINETICS400_V1),
        _torchvision_entry("r3d_18", tv_video.r3d_18, tv_video.R3D_18_Weights.KINETICS400_V1),
    )
}  # fmt: skip


def get_backbone(name: str) -> Backbone:
    """The registry entry for `name`; raise ValueError listing the known names."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def load_pretrained_state(name: str, weights_url: str | None = None) -> dict[str, torch.Tensor]:
    """The Kinetics-400 state dict of backbone `name`, downloaded once into torch.hub's cache.

    `weights_url` replaces the registry's address (a mirror: an internal server, a local copy); the file must
    be the same.
    """
    url = weights_url or get_backbone(name).weights_url
    if url is None:
        raise PretrainedWeightsError(
            f"{name} has no pretrained weights; pass pretrained=False, or choose one of "
            f"{sorted(n for n, b in BACKBONES.items() if b.weights_url)}"
        )
    try:
        # check_hash verifies torchvision's files, whose names carry their sha256 prefix.
        checkpoint = torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=watched(), check_hash=True, weights_only=True
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
    weights_url: str | None = None,
    **options: int,
) -> nn.Module:
    """Backbone `name` for clips of (num_frames, crop_size, crop_size), with Kinetics weights if `pretrained`.

    For `num_classes` other than 400 the final projection is replaced by a new one. `options` are the entry's
    extra size arguments (`Backbone.options`); `weights_url` is a mirror of the weights (`load_pretrained_state`).
    Input: float (B, 3, num_frames, crop_size, crop_size) normalized with the entry's mean and std; output: logits.
    """
    backbone = get_backbone(name)
    if unknown := set(options) - set(backbone.options):
        raise ValueError(f"{name} takes no {sorted(unknown)}; its size options are {list(backbone.options)}")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames}: {name} needs 1 frame or more; pass --data.num_frames 8")
    if crop_size < SPATIAL_STRIDE:
        raise ValueError(
            f"crop_size={crop_size}: {name} downsamples by {SPATIAL_STRIDE}, so it needs a crop of at least "
            f"{SPATIAL_STRIDE} pixels; pass --data.crop_size {SPATIAL_STRIDE} or more (Kinetics: 224)"
        )
    model = backbone.build(num_frames, crop_size, **options)
    if pretrained:
        state = load_pretrained_state(name, weights_url)
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
    text = resources.files("video_processing.models").joinpath("kinetics400_classes.txt").read_text()
    return text.splitlines()
