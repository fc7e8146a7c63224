"""The two transform presets, train and eval, on uint8 clips (T, C, H, W) from `video.py`.

Frames stay uint8 through resizing and cropping, so the costly float conversion and normalization run on the
cropped clip only. Both presets end with a (C, T, H, W) float tensor, the layout PyTorchVideo's models take.
Temporal subsampling to `num_frames` happens while decoding (see `video.py`), before any pixel is converted.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


class ToCTHW(torch.nn.Module):
    """(T, C, H, W) -> (C, T, H, W), as a plain tensor."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return video.as_subclass(torch.Tensor).permute(1, 0, 2, 3)


class AsVideo(torch.nn.Module):
    """Mark a (T, C, H, W) tensor as a video, so that v2 transforms treat every frame alike."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return tv_tensors.Video(frames)


def train_preset(
    *,
    crop_size: int = 224,
    min_short_side: int = 256,
    max_short_side: int = 320,
    hflip_prob: float = 0.5,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> v2.Compose:
    """Random short-side scale, random crop, horizontal flip, then float and normalize."""
    return v2.Compose(
        [
            AsVideo(),
            # antialias: downscaling large videos without it aliases fine textures
            v2.RandomShortestSize(min_size=list(range(min_short_side, max_short_side + 1)), antialias=True),
            v2.RandomCrop(crop_size),
            v2.RandomHorizontalFlip(hflip_prob),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
            ToCTHW(),
        ]
    )


def eval_preset(
    *,
    crop_size: int = 224,
    short_side: int = 256,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> v2.Compose:
    """Short side to `short_side`, center crop, then float and normalize: deterministic."""
    return v2.Compose(
        [
            AsVideo(),
            v2.Resize(short_side, antialias=True),
            v2.CenterCrop(crop_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
            ToCTHW(),
        ]
    )


def denormalize(
    video: torch.Tensor, mean: tuple[float, ...] = KINETICS_MEAN, std: tuple[float, ...] = KINETICS_STD
) -> torch.Tensor:
    """Undo `Normalize` on a (C, T, H, W) clip for display: float in [0, 1]."""
    m = torch.tensor(mean).view(-1, 1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1, 1)
    return (video * s + m).clamp(0, 1)
