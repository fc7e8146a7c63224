import torch

from video_processing.transforms import KINETICS_MEAN, KINETICS_STD, denormalize, eval_preset, train_preset


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
