"""RandomShortSideScaleCrop: the same augmentation as scaling the whole frame and then cropping."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from video_processing.data.transforms import RandomShortSideScaleCrop, train_preset


def smooth_clip(t: int, height: int, width: int) -> torch.Tensor:
    """uint8 (T, 3, H, W) ramps, different per channel and frame: a crop displaced by more than a pixel or
    scaled wrongly changes the values, the half-pixel rounding of the fused crop hardly does."""
    y = torch.linspace(0, 1, height).view(-1, 1)
    x = torch.linspace(0, 1, width).view(1, -1)
    channels = [150 * x + 100 * y, 100 * x + 150 * y, 240 - 150 * x - 80 * y]
    frames = [torch.stack(channels) + 5 * i for i in range(t)]
    return torch.stack(frames).round().to(torch.uint8)


@pytest.mark.parametrize(("height", "width"), [(256, 340), (480, 640), (340, 256)])
def test_matches_scaling_the_whole_frame_then_cropping(height, width):
    """Upscaling (Kinetics 340x256), downscaling (640x480) and portrait frames."""
    step = RandomShortSideScaleCrop(crop_size=224, min_short_side=256, max_short_side=320)
    clip = smooth_clip(2, height, width)
    for seed in range(5):
        torch.manual_seed(seed)
        short_side, top, left = step.get_params(height, width)
        torch.manual_seed(seed)
        fused = step(tv_tensors.Video(clip))
        reference = F.crop(F.resize(tv_tensors.Video(clip), [short_side], antialias=True), top, left, 224, 224)
        assert fused.shape == reference.shape == (2, 3, 224, 224)
        difference = (fused.float() - reference.float()).abs()
        assert difference.max() <= 2, f"seed {seed}: differences up to {difference.max():.0f} grey levels"


def test_draws_cover_the_scaled_frame():
    """Short sides span the whole range and crops reach both edges, as RandomShortestSize + RandomCrop."""
    step = RandomShortSideScaleCrop(crop_size=224, min_short_side=256, max_short_side=320)
    torch.manual_seed(0)
    draws = [step.get_params(256, 340) for _ in range(2000)]
    assert {d[0] for d in draws} == set(range(256, 321))
    assert min(d[2] for d in draws) == 0
    assert max(d[2] - (int(340 * d[0] / 256) - 224) for d in draws) == 0  # the right edge is reached


def test_output_is_contiguous_and_preset_agrees_with_torchvision_steps():
    # laid out as decoded frames are: (T, C, H, W) over (T, H, W, C) memory
    clip = smooth_clip(8, 256, 340).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    out = RandomShortSideScaleCrop(224, 256, 320)(tv_tensors.Video(clip))
    assert isinstance(out, tv_tensors.Video) and out.is_contiguous()
    torch.manual_seed(1)
    ours = train_preset(hflip_prob=0.0)(clip)
    torch.manual_seed(1)
    short_side, top, left = RandomShortSideScaleCrop(224, 256, 320).get_params(256, 340)
    reference = v2.Compose(  # the steps the preset used before they were fused
        [
            v2.Resize(short_side, antialias=True),
            v2.Lambda(lambda video: F.crop(video, top, left, 224, 224)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.45] * 3, [0.225] * 3),
        ]
    )
    expected = reference(tv_tensors.Video(clip)).permute(1, 0, 2, 3)
    assert ours.shape == expected.shape == (3, 8, 224, 224)
    assert (ours - expected).abs().max() <= 2 / 255 / 0.225 + 1e-6  # at most 2 grey levels


def test_rejects_a_crop_larger_than_the_scaled_frame():
    with pytest.raises(ValueError, match="crop_size <= min_short_side"):
        RandomShortSideScaleCrop(crop_size=224, min_short_side=200, max_short_side=320)
