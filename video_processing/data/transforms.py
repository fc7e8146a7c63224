"""The clip settings and the transform presets they make (train, eval, the test's views), on uint8 clips
(T, C, H, W) from `video.py`.

Frames stay uint8 through resizing and cropping, so the costly float conversion and normalization run on the
cropped clip only, and training resizes only the pixels its crop keeps. Both presets end with a (C, T, H, W)
float tensor, the layout PyTorchVideo's models take. Temporal subsampling to `num_frames` happens while
decoding (see `video.py`), before any pixel is converted.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# Per-channel normalization of PyTorchVideo's Kinetics models (and their registry entries in `models.backbones`).
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


@dataclass(frozen=True)
class CropBox:
    """A square region of a frame in source pixels: top and left corner, side."""

    top: int
    left: int
    side: int


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

    def crop_box(self, height: int, width: int) -> CropBox:
        """A random crop as a square of source pixels: what `forward` resizes for a frame of this size."""
        short_side, top, left = self.get_params(height, width)
        scale = short_side / min(height, width)
        side = round(self.crop_size / scale)  # the crop's side in source pixels, at most min(height, width)
        return CropBox(min(round(top / scale), height - side), min(round(left / scale), width - side), side)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return resized_crop(video, self.crop_box(*video.shape[-2:]), self.crop_size)


def resized_crop(video: torch.Tensor, box: CropBox, crop_size: int) -> torch.Tensor:
    """The `box` of every frame resized to crop_size x crop_size, as a contiguous video (on the video's device)."""
    # antialias: downscaling large videos without it aliases fine textures
    crop = F.resized_crop(video, box.top, box.left, box.side, box.side, [crop_size, crop_size], antialias=True)
    return tv_tensors.Video(crop.contiguous())


# Per-clip augmentations of the modern recipe, by the name the data module's `augment` takes.
CLIP_AUGMENTATIONS = {"randaugment": v2.RandAugment, "trivialaugment": v2.TrivialAugmentWide}


def clip_augmentation(name: str | None) -> v2.Transform | None:
    """RandAugment or TrivialAugmentWide for uint8 videos (T, C, H, W), or None for `name` None.

    On a `tv_tensors.Video` a v2 transform draws its operation and magnitude once per call, so every frame of
    a clip gets the same one: the clip stays one coherent motion.
    """
    if name is None:
        return None
    if name not in CLIP_AUGMENTATIONS:
        raise ValueError(f"augment={name!r}: choose one of {sorted(CLIP_AUGMENTATIONS)}, or leave it unset")
    return CLIP_AUGMENTATIONS[name]()


def train_preset(
    *,
    crop_size: int = 224,
    min_short_side: int = 256,
    max_short_side: int = 320,
    hflip_prob: float = 0.5,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
    uint8: bool = False,
    augment: str | None = None,
) -> v2.Compose:
    """Random short-side scale and random crop (one step), horizontal flip, the clip's augmentation (`augment`:
    "randaugment", "trivialaugment", or None), then float and normalize.

    uint8=True leaves out float and normalize: the clip stays uint8 (C, T, H, W), a quarter of the bytes, and
    `normalize_clips` finishes it wherever the batch lands (the GPU); the result is the same.
    """
    augmentation = clip_augmentation(augment)
    return v2.Compose(
        [
            AsVideo(),
            RandomShortSideScaleCrop(crop_size, min_short_side, max_short_side),
            v2.RandomHorizontalFlip(hflip_prob),
            *([augmentation] if augmentation else []),
            # in place: ToDtype made a new tensor, so no caller's data is overwritten
            *_float_steps(mean, std, uint8=uint8, inplace=True),
            ToCTHW(),
        ]
    )


def eval_preset(
    *,
    crop_size: int = 224,
    short_side: int = 256,
    mean: tuple[float, float, float] = KINETICS_MEAN,
    std: tuple[float, float, float] = KINETICS_STD,
    uint8: bool = False,
) -> v2.Compose:
    """Short side to `short_side`, center crop, then float and normalize: deterministic.

    uint8=True leaves out float and normalize, as in `train_preset`.
    """
    return v2.Compose(
        [
            AsVideo(),
            v2.Resize(short_side, antialias=True),
            v2.CenterCrop(crop_size),
            *_float_steps(mean, std, uint8=uint8, inplace=False),
            ToCTHW(),
        ]
    )


def _float_steps(mean, std, *, uint8: bool, inplace: bool) -> list[torch.nn.Module]:
    if uint8:
        return []
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std), inplace=inplace)]


def normalize_clips(
    video: torch.Tensor, mean: tuple[float, ...] = KINETICS_MEAN, std: tuple[float, ...] = KINETICS_STD
) -> torch.Tensor:
    """uint8 clips (B, C, T, H, W) from a uint8 preset -> float, normalized, on the clips' device.

    The same arithmetic as the presets' float steps, so the clips equal the float presets' within rounding.
    """
    if video.dtype != torch.uint8:
        raise TypeError(f"normalize_clips takes the uint8 clips of a uint8 preset, got {video.dtype}")
    shape = (1, -1, 1, 1, 1)
    m = torch.tensor(mean, device=video.device).view(shape)
    s = torch.tensor(std, device=video.device).view(shape)
    return F.to_dtype(video, torch.float32, scale=True).sub_(m).div_(s)


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
    uint8: bool = False,
) -> v2.Compose:
    """The eval preset with `num_crops` spatial crops (see `SpatialCrops`): (num_crops, C, T, crop, crop) float.

    The clip is scaled once and cropped `num_crops` times; with one crop the result equals the eval preset's.
    uint8=True leaves out float and normalize, as in `train_preset`.
    """
    return v2.Compose(
        [
            AsVideo(),
            v2.Resize(short_side, antialias=True),
            SpatialCrops(crop_size, num_crops),
            *_float_steps(mean, std, uint8=uint8, inplace=False),
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


@dataclass(frozen=True)
class ClipSettings:
    """How clips are cut and transformed: one set for training (`KineticsDataModule`'s arguments of the same
    names), for a checkpoint's classifier (`inference.classifiers`) and for an exported model's sidecar.

    clip_duration: seconds of video per clip; num_frames: frames kept per clip; crop_size: side of the square crop;
    min_short_side, max_short_side: training scales the short side into this range, evaluation to min_short_side;
    hflip_prob: training's horizontal flips; mean, std: per-channel normalization; augment: training's
    RandAugment or TrivialAugmentWide ("randaugment", "trivialaugment" or None).
    """

    clip_duration: float
    num_frames: int
    crop_size: int
    min_short_side: int
    max_short_side: int
    hflip_prob: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: str | None = None

    @classmethod
    def from_dict(cls, values: dict) -> ClipSettings:
        """The settings among `values` (a data module's hparams, a sidecar's JSON); other keys are ignored, and a
        setting with a default may be missing (files written before it existed)."""
        fields = cls.__dataclass_fields__
        settings = {name: values[name] for name in fields if name in values or fields[name].default is MISSING}
        return cls(**{**settings, "mean": tuple(settings["mean"]), "std": tuple(settings["std"])})

    def train_transform(self, *, uint8: bool = False) -> v2.Compose:
        return train_preset(
            crop_size=self.crop_size,
            min_short_side=self.min_short_side,
            max_short_side=self.max_short_side,
            hflip_prob=self.hflip_prob,
            mean=self.mean,
            std=self.std,
            uint8=uint8,
            augment=self.augment,
        )

    def eval_transform(self, *, uint8: bool = False) -> v2.Compose:
        return eval_preset(
            crop_size=self.crop_size, short_side=self.min_short_side, mean=self.mean, std=self.std, uint8=uint8
        )

    def test_transform(self, num_crops: int, *, uint8: bool = False) -> v2.Compose:
        return multi_view_preset(
            crop_size=self.crop_size,
            short_side=self.min_short_side,
            num_crops=num_crops,
            mean=self.mean,
            std=self.std,
            uint8=uint8,
        )
