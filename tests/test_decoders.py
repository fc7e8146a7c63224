"""The decode interface: torchcodec decodes PyAV's frames for the same clips; a wrong choice fails naming it."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SMALL_DATA_KWARGS
from video_processing.data.decoders import (
    check_decoder,
    decode_planned,
    torchcodec_random_clip,
    torchcodec_uniform_clips,
)
from video_processing.data.video import PlannedClip, VideoError, decode_random_clip, decode_uniform_clips
from video_processing.kinetics_module import KineticsDataModule

# Both decoders convert YUV to RGB with FFmpeg's swscale; allowed: one grey level (measured here: identical).
TOLERANCE = 1


def _assert_frames_match(pyav: torch.Tensor, torchcodec: torch.Tensor) -> None:
    assert torchcodec.dtype == pyav.dtype == torch.uint8 and torchcodec.shape == pyav.shape
    assert (torchcodec.int() - pyav.int()).abs().max() <= TOLERANCE


def test_torchcodec_frames_match_pyav_for_the_same_clips(small_dataset, torchcodec_ffmpeg):
    for path in sorted(small_dataset.rglob("*.mp4"))[::8]:
        pyav, torchcodec = decode_uniform_clips(path, 1.0, 4), torchcodec_uniform_clips(path, 1.0, 4)
        assert len(torchcodec) == len(pyav) >= 2
        for a, b in zip(pyav, torchcodec, strict=True):
            _assert_frames_match(a, b)
        torch.manual_seed(7)
        pyav = decode_random_clip(path, 1.0, 4)
        torch.manual_seed(7)  # the same random window
        _assert_frames_match(pyav, torchcodec_random_clip(path, 1.0, 4))


def test_torchcodec_failure_names_the_file(tmp_path, torchcodec_ffmpeg):
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n" * 20)
    with pytest.raises(VideoError, match="text.mp4: decoding failed"):
        decode_planned([PlannedClip(str(text), (0.0, 1.0), (0.0,), 48, 64)])


def test_data_module_with_torchcodec_gives_pyav_batches(small_dataset, torchcodec_ffmpeg):
    batches = {}
    for decoder in ("pyav", "torchcodec"):
        dm = KineticsDataModule(str(small_dataset), **SMALL_DATA_KWARGS, batch_size=4, num_workers=0, decoder=decoder)
        dm.setup("validate")
        batches[decoder] = next(iter(dm.val_dataloader()))
    assert batches["pyav"]["video_name"] == batches["torchcodec"]["video_name"]
    # one grey level is 1/255 before normalizing by std 0.225
    torch.testing.assert_close(
        batches["torchcodec"]["video"], batches["pyav"]["video"], rtol=0, atol=1.01 / 255 / 0.225
    )


def test_a_wrong_decoder_or_device_fails_naming_the_option():
    with pytest.raises(ValueError, match="decoder must be one of"):
        check_decoder("opencv")
    with pytest.raises(ValueError, match="--data.decoder torchcodec"):
        check_decoder("pyav", "cuda")
    with pytest.raises(ValueError, match="decoder_device must be cpu or cuda"):
        check_decoder("torchcodec", "mps")
