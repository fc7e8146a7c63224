import pytest
import torch

from video_processing.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    SpatialCrops,
    denormalize,
    eval_preset,
    multi_view_preset,
    normalize_clips,
    train_preset,
)


def _clip(t=8, h=72, w=96):
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8)


def test_train_preset_shape_dtype_and_range():
    out = train_preset(crop_size=48, min_short_side=56, max_short_side=64)(_clip())
    assert out.shape == (3, 8, 48, 48) and out.dtype == torch.float32
    assert type(out) is torch.Tensor  # a plain tensor, not a tv_tensors.Video
    lo, hi = (0 - KINETICS_MEAN[0]) / KINETICS_STD[0], (1 - KINETICS_MEAN[0]) / KINETICS_STD[0]
    assert lo - 1e-4 <= out.min() and out.max() <= hi + 1e-4


def test_train_preset_is_random():
    torch.manual_seed(0)
    preset, clip = train_preset(crop_size=48, min_short_side=56, max_short_side=64), _clip()
    assert not torch.equal(preset(clip), preset(clip))


def test_train_preset_applies_one_crop_to_every_frame():
    clip = _clip(t=1).repeat(4, 1, 1, 1)  # four identical frames stay identical
    out = train_preset(crop_size=48, min_short_side=56, max_short_side=64)(clip)
    assert all(torch.equal(out[:, 0], out[:, t]) for t in range(4))


def test_eval_preset_is_deterministic_center_crop():
    preset, clip = eval_preset(crop_size=48, short_side=56), _clip()
    out = preset(clip)
    assert out.shape == (3, 8, 48, 48)
    assert torch.equal(out, preset(clip))


def test_denormalize_inverts_normalize():
    clip = torch.full((8, 3, 64, 64), 200, dtype=torch.uint8)
    out = denormalize(eval_preset(crop_size=48, short_side=64)(clip))
    assert torch.allclose(out, torch.full_like(out, 200 / 255), atol=1e-5)


def test_uint8_presets_then_normalize_clips_equal_the_float_presets():
    clip, mean, std = _clip(), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    sizes = dict(crop_size=48, min_short_side=56, max_short_side=64, mean=mean, std=std)
    for seed in range(4):  # the same random scale, crop and flip on both paths
        torch.manual_seed(seed)
        reference = train_preset(**sizes)(clip)
        torch.manual_seed(seed)
        pixels = train_preset(**sizes, uint8=True)(clip)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 8, 48, 48)
        torch.testing.assert_close(normalize_clips(pixels[None], mean, std)[0], reference, rtol=0, atol=1e-6)
    reference = eval_preset(crop_size=48, short_side=56, mean=mean, std=std)(clip)
    pixels = eval_preset(crop_size=48, short_side=56, mean=mean, std=std, uint8=True)(clip)
    torch.testing.assert_close(normalize_clips(pixels[None], mean, std)[0], reference, rtol=0, atol=1e-6)


def test_normalize_clips_takes_only_uint8():
    with pytest.raises(TypeError, match="uint8"):
        normalize_clips(torch.zeros(1, 3, 2, 4, 4))


def _columns_and_rows(t=2, h=72, w=96):
    """A clip whose red channel is the column index and green channel the row index."""
    clip = torch.zeros(t, 3, h, w, dtype=torch.uint8)
    clip[:, 0] = torch.arange(w).view(1, 1, w)
    clip[:, 1] = torch.arange(h).view(1, h, 1)
    return clip


@pytest.mark.parametrize(
    "h, w, corners",
    [(72, 96, [(12, 0), (12, 24), (12, 48)]), (96, 72, [(0, 12), (24, 12), (48, 12)])],
    ids=["landscape: left, centre, right", "portrait: top, centre, bottom"],
)
def test_three_crops_span_the_long_side_centred_on_the_short_side(h, w, corners):
    crops = SpatialCrops(48, 3)
    assert crops.offsets(h, w) == corners
    views = crops(_columns_and_rows(h=h, w=w))
    assert views.shape == (3, 2, 3, 48, 48)
    for view, (top, left) in zip(views, corners, strict=True):  # each view is the frame region at its corner
        assert int(view[0, 0, 0, 0]) == left and int(view[0, 1, 0, 0]) == top


def test_multi_view_preset_scales_once_and_one_crop_equals_the_eval_preset():
    clip = _clip()
    views = multi_view_preset(crop_size=48, short_side=56, num_crops=3)(clip)
    assert views.shape == (3, 3, 8, 48, 48) and views.dtype == torch.float32 and type(views) is torch.Tensor
    assert torch.equal(views[1], eval_preset(crop_size=48, short_side=56)(clip))  # the middle crop is the centre
    one = multi_view_preset(crop_size=48, short_side=56, num_crops=1)(clip)
    assert torch.equal(one[0], eval_preset(crop_size=48, short_side=56)(clip))
    assert not torch.equal(views[0], views[2])
