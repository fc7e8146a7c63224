"""The two transform presets, train and eval, on uint8 clips (T, C, H, W) from `video.py`.

Frames stay uint8 through resizing and cropping, so the costly float conversion and normalization run on the
cropped clip only, and training resizes only the pixels its crop keeps. Both presets end with a (C, T, H, W)
float tensor, the layout PyTorchVideo's models take. Temporal subsampling to `num_frames` happens while
decoding (see `video.py`), before any pixel is converted.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

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


class RandomShortSideScaleCrop(torch.nn.Module):
    """Scale the short side to a random length in [min_short_side, max_short_side], then crop a random square.

    The same augmentation as `v2.RandomShortestSize` followed by `v2.RandomCrop`, computed as one resize of
    just the source region the crop keeps, so most of the frame is never interpolated. The region is rounded
    to whole source pixels, which moves the crop by under half a pixel.
    Returns a contiguous video: the float steps after it run several times faster on contiguous memory.
    """

    def __init__(self, crop_size: int, min_short_side: int, max_short_side: int):
        super().__init__()
        if not crop_size <= min_short_side <= max_short_side:
            raise ValueError(
                f"need crop_size <= min_short_side <= max_short_side, got {crop_size}, {min_short_side}, "
                f"{max_short_side}: a crop cannot be larger than the scaled frame"
            )
        self.crop_size, self.min_short_side, self.max_short_side = crop_size, min_short_side, max_short_side

    def get_params(self, height: int, width: int) -> tuple[int, int, int]:
        """A random short side and the crop's top-left corner (top, left) in the scaled frame."""
        short_side = int(torch.randint(self.min_short_side, self.max_short_side + 1, ()))
        scale = short_side / min(height, width)
        # scaled sizes are truncated, as v2.RandomShortestSize does
        top = int(torch.randint(int(height * scale) - self.crop_size + 1, ()))
        left = int(torch.randint(int(width * scale) - self.crop_size + 1, ()))
        return short_side, top, left

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        height, width = video.shape[-2:]
        short_side, top, left = self.get_params(height, width)
        scale = short_side / min(height, width)
        side = round(self.crop_size / scale)  # the crop's side in source pixels, at most min(height, width)
        src_top, src_left = min(round(top / scale), height - side), min(round(left / scale), width - side)
        # antialias: downscaling large videos without it aliases fine textures
        size = [self.crop_size, self.crop_size]
        crop = F.resized_crop(video, src_top, src_left, side, side, size, antialias=True)
        return tv_tensors.Video(crop.contiguous())


def train_preset(
    *,
    crop_size: int = 224,
    min_short_side: int = 256,
    max_short_side: int = 320,
    hflip_prob: float = 0.5,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> v2.Compose:
    """Random short-side scale and random crop (one step), horizontal flip, then float and normalize."""
    return v2.Compose(
        [
            AsVideo(),
            RandomShortSideScaleCrop(crop_size, min_short_side, max_short_side),
            v2.RandomHorizontalFlip(hflip_prob),
            v2.ToDtype(torch.float32, scale=True),
            # in place: ToDtype made a new tensor, so no caller's data is overwritten
            v2.Normalize(mean=list(mean), std=list(std), inplace=True),
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


class SpatialCrops(torch.nn.Module):
    """`num_crops` squares of `crop_size` spread evenly along the long side, centred on the short side.

    Three crops are left, centre and right (top, centre and bottom for a portrait frame), as PySlowFast's
    multi-view test takes them; one crop is `v2.CenterCrop`'s. (T, C, H, W) -> (num_crops, T, C, crop, crop).
    """

    def __init__(self, crop_size: int, num_crops: int):
        super().__init__()
        if num_crops < 1:
            raise ValueError(f"num_crops={num_crops} (--data.test_crops): need 1 crop or more (zoo: 3)")
        self.crop_size, self.num_crops = crop_size, num_crops

    def offsets(self, height: int, width: int) -> list[tuple[int, int]]:
        """The crops' top-left corners (top, left) in a frame of height x width."""
        if min(height, width) < self.crop_size:
            raise ValueError(f"a {height}x{width} frame is smaller than crop_size={self.crop_size}")
        long_free = max(height, width) - self.crop_size
        if self.num_crops == 1:
            along = [round(long_free / 2)]
        else:
            along = [round(k * long_free / (self.num_crops - 1)) for k in range(self.num_crops)]
        across = round((min(height, width) - self.crop_size) / 2)
        return [(a, across) if height > width else (across, a) for a in along]

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        side = self.crop_size
        crops = [F.crop(video, top, left, side, side) for top, left in self.offsets(*video.shape[-2:])]
        return tv_tensors.Video(torch.stack(crops))


class ViewsToCTHW(torch.nn.Module):
    """(views, T, C, H, W) -> (views, C, T, H, W), as a plain tensor."""

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return views.as_subclass(torch.Tensor).permute(0, 2, 1, 3, 4)


def multi_view_preset(
    *,
    crop_size: int = 224,
    short_side: int = 256,
    num_crops: int = 3,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
) -> v2.Compose:
    """The eval preset with `num_crops` spatial crops (see `SpatialCrops`): (num_crops, C, T, crop, crop) float.

    The clip is scaled once and cropped `num_crops` times; with one crop the result equals the eval preset's.
    """
    return v2.Compose(
        [
            AsVideo(),
            v2.Resize(short_side, antialias=True),
            SpatialCrops(crop_size, num_crops),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
            ViewsToCTHW(),
        ]
    )


def denormalize(
    video: torch.Tensor, mean: tuple[float, ...] = KINETICS_MEAN, std: tuple[float, ...] = KINETICS_STD
) -> torch.Tensor:
    """Undo `Normalize` on a (C, T, H, W) clip for display: float in [0, 1]."""
    m = torch.tensor(mean).view(-1, 1, 1, 1)
    s = torch.tensor(std).view(-1, 1, 1, 1)
    return (video * s + m).clamp(0, 1)
