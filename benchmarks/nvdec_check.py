"""NVDEC measured: torchcodec on the GPU against PyAV on the same clips, and its decode-only rate.

    bash benchmarks/nvdec_check.sh CLIPS_DIR       # sets up torchcodec's FFmpeg first, then runs this and training
    python benchmarks/nvdec_check.py CLIPS_DIR     # this part alone, where torchcodec already loads

CLIPS_DIR holds Kinetics-like clips (`python benchmarks/clips.py CLIPS_DIR`: 340x256, 30 fps, a keyframe every
second). Prints, one line each:
- cpu_fallback: whether torchcodec's CUDA decoder fell back to decoding on the CPU (it must be false: else every
  figure below would be the CPU's); the script stops if it is true.
- NVDEC vs PyAV: every back-to-back clip of the files, frame by frame (`gpu_checks.nvdec_vs_pyav`).
- decode-only: random training clips (8 frames of a 2 s window, as configs/kinetics400.yaml takes them), planned
  on the CPU and decoded by `decode_planned` on the GPU, one decoder per clip as the loader opens one per file,
  timed between `cuda.synchronize()` calls after one warm-up pass: kept frames/s and clips/s, beside PyAV
  decoding the same clips on one core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from gpu_checks import nvdec_vs_pyav

from video_processing.data.decoders import decode_planned, torchcodec_problem
from video_processing.data.video import decode_random_clip, plan_random_clip

CLIP_DURATION_S, NUM_FRAMES = 2.0, 8


def cpu_fallback(path: Path) -> bool:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), device="cuda")
    decoder[0]  # the fallback is decided when the first frame is decoded
    print(f"cpu_fallback {bool(decoder.cpu_fallback)}: {decoder.cpu_fallback}")
    return bool(decoder.cpu_fallback)


def decode_only(paths: list[Path], clips: int) -> str:
    generator = torch.Generator().manual_seed(0)
    plans = [plan_random_clip(paths[i % len(paths)], CLIP_DURATION_S, NUM_FRAMES, generator) for i in range(clips)]
    for plan in plans[: len(paths)]:  # warm-up: CUDA context, NVDEC sessions, the files in the page cache
        decode_planned([plan], "cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for plan in plans:
        decode_planned([plan], "cuda")
    torch.cuda.synchronize()
    nvdec_s = time.perf_counter() - start
    start = time.perf_counter()
    torch.manual_seed(0)
    for i in range(clips):
        decode_random_clip(paths[i % len(paths)], CLIP_DURATION_S, NUM_FRAMES)
    pyav_s = time.perf_counter() - start
    return (
        f"decode-only, {clips} random clips of {NUM_FRAMES} frames ({CLIP_DURATION_S:g} s windows): NVDEC "
        f"{clips * NUM_FRAMES / nvdec_s:.0f} frames/s, {clips / nvdec_s:.1f} clips/s; PyAV on one core "
        f"{clips * NUM_FRAMES / pyav_s:.0f} frames/s, {clips / pyav_s:.1f} clips/s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips_dir", type=Path)
    parser.add_argument("--clips", type=int, default=128, help="random clips timed for the decode-only rate")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("nvdec_check.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    if problem := torchcodec_problem():
        raise SystemExit(f"nvdec_check.py: {problem}")
    paths = sorted(args.clips_dir.rglob("*.mp4"))
    if not paths:
        raise SystemExit(f"no .mp4 clips under {args.clips_dir}: write them with  python benchmarks/clips.py DIR")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {len(paths)} clips")
    if cpu_fallback(paths[0]):
        raise SystemExit("torchcodec decodes on the CPU here: the figures would not be NVDEC's")
    print(nvdec_vs_pyav(paths))
    print(decode_only(paths, args.clips))


if __name__ == "__main__":
    main()
