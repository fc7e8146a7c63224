"""One decode interface, two backends: PyAV (the default, always installed) and torchcodec (optional; CPU or NVDEC).

Both give the same clips as uint8 (T, C, H, W). Which frames a clip keeps is decided once, from packet timestamps,
by `video.py` (`plan_random_clip`, `plan_uniform_clips`); torchcodec then decodes the frames presented at those
times, on the CPU or, with device "cuda", on the GPU's video decoder. PyAV decodes them itself (`decode_*`), in
one pass that also skips frames nothing refers to.

torchcodec needs FFmpeg's shared libraries from the system (PyAV brings its own):
    pip install "video-classification[torchcodec]"
    sudo apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8
(Debian 12 names; Colab has FFmpeg already.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from video_processing.data.video import (
    PlannedClip,
    VideoError,
    decode_random_clip,
    decode_uniform_clips,
    plan_random_clip,
    plan_uniform_clips,
)

DECODERS = ("pyav", "torchcodec")
FFMPEG_PACKAGES = "libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8"
TORCHCODEC_INSTALL = (
    'pip install "video-classification[torchcodec]" and FFmpeg\'s shared libraries '
    f"(Debian 12: sudo apt-get install {FFMPEG_PACKAGES}; Colab has them)"
)

RandomClipDecoder = Callable[[str | Path, float, int], torch.Tensor]
UniformClipsDecoder = Callable[[str | Path, float, int], list[torch.Tensor]]


class DecoderUnavailable(RuntimeError):
    """The chosen decoder or decoding device cannot run on this machine; the message names the option and fix."""


def torchcodec_problem() -> str | None:
    """Why torchcodec cannot decode videos here (not installed, or FFmpeg's libraries missing), else None."""
    try:
        import torchcodec
    except ImportError as e:
        return f"torchcodec is not installed ({e})"
    if torchcodec.ffmpeg_major_version is None:  # torchcodec imports without FFmpeg, but cannot decode video
        return "torchcodec cannot load FFmpeg's shared libraries (libavcodec and the others)"
    return None


def check_decoder(decoder: str, device: str | torch.device = "cpu") -> None:
    """Raise ValueError or DecoderUnavailable, naming the option, when `decoder` on `device` cannot run here."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"decoder_device must be cpu or cuda, got {str(device)!r}")
    if device.type == "cuda" and decoder != "torchcodec":
        raise ValueError("decoder_device cuda decodes with NVDEC through torchcodec: pass --data.decoder torchcodec")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DecoderUnavailable(
            "--data.decoder_device cuda decodes on the GPU, and no CUDA GPU is visible here "
            "(torch.cuda.is_available() is False): use --data.decoder_device cpu"
        )
    if decoder == "torchcodec" and (problem := torchcodec_problem()):
        raise DecoderUnavailable(f"--data.decoder torchcodec: {problem}. Install: {TORCHCODEC_INSTALL}")


def decode_planned(
    clips: list[PlannedClip], device: str | torch.device = "cpu", *, check_nvdec: bool = False
) -> list[torch.Tensor]:
    """Decode planned clips of one file with torchcodec: uint8 (T, C, H, W) each, on `device` (cpu or cuda).

    Frames are looked up by the plan's presentation times, so they are the frames PyAV's `decode_*` returns.
    Raises VideoError naming the file when the file cannot be decoded; running out of memory is raised as it is.
    With `check_nvdec` and a cuda device, raises DecoderUnavailable, naming the cause and the fix, when torchcodec
    decodes on the CPU instead of the GPU (`VideoDecoder.cpu_fallback`).
    """
    from torchcodec.decoders import VideoDecoder

    path = clips[0].path
    try:
        # exact: seek by the file's own frame index (a scan of its packets), so every time maps to the frame
        # presented then. "approximate" maps times to frames by the header's average rate and gives other frames:
        # with it the parity tests against PyAV fail even on the self-made constant-rate videos (tests/
        # test_decoders.py, test_gpu_decode.py). One FFmpeg thread, as PyAV decodes (workers keep the cores busy).
        decoder = VideoDecoder(path, device=device, seek_mode="exact", num_ffmpeg_threads=1)
        if check_nvdec and torch.device(device).type == "cuda" and decoder.cpu_fallback:
            raise DecoderUnavailable(nvdec_fallback_message(path, decoder.cpu_fallback))
        return [decoder.get_frames_played_at(list(clip.times)).data for clip in clips]
    except (DecoderUnavailable, torch.OutOfMemoryError):
        raise
    except (RuntimeError, ValueError) as e:
        if "out of memory" in str(e).lower():  # NVDEC's own out-of-memory errors are plain RuntimeErrors
            raise
        raise VideoError(path, f"decoding failed ({e})") from None


def nvdec_fallback_message(path: str, status: object) -> str:
    """Why torchcodec decodes on the CPU although the device is cuda, and how to get NVDEC back."""
    return (
        f"--data.decoder_device cuda: torchcodec decodes {path} on the CPU, not with the GPU's video decoder "
        f"({status}), which would decode every clip in one main-process thread. If NVcuvid is unavailable, the "
        "NVIDIA driver's video library (libnvcuvid.so.1, part of the driver) cannot be loaded: install the full "
        "driver, and in a container add video to NVIDIA_DRIVER_CAPABILITIES (e.g. "
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video, or docker run --gpus 'all,capabilities=compute,utility,"
        "video'). If the video is not supported, NVDEC cannot decode its codec or profile: re-encode the dataset "
        "as H.264 (`python -m video_processing.prepare SRC DST`). Or decode in the loader workers: "
        "--data.decoder_device cpu."
    )


def torchcodec_random_clip(path: str | Path, clip_duration_s: float, num_frames: int) -> torch.Tensor:
    """`decode_random_clip` through torchcodec on the CPU: the same random window and kept frames."""
    return decode_planned([plan_random_clip(path, clip_duration_s, num_frames)])[0]


def torchcodec_uniform_clips(path: str | Path, clip_duration_s: float, num_frames: int) -> list[torch.Tensor]:
    """`decode_uniform_clips` through torchcodec on the CPU."""
    return decode_planned(plan_uniform_clips(path, clip_duration_s, num_frames))


def clip_decoders(decoder: str) -> tuple[RandomClipDecoder, UniformClipsDecoder]:
    """The (random clip, uniform clips) decode functions of a backend, for decoding in loader workers."""
    check_decoder(decoder)
    if decoder == "torchcodec":
        return torchcodec_random_clip, torchcodec_uniform_clips
    return decode_random_clip, decode_uniform_clips
