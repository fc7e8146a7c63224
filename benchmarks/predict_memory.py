"""Whole-video prediction: peak memory flat in the video's length, and time against decoding the file; labels over
time (`predict --segments`) with x3d_xs: the real-time factor.

    PYTHONPATH=. python benchmarks/predict_memory.py [--minutes 1 10] [--out benchmark_videos]

Writes self-made 320x240, 25 frames/s H.264 videos of each length (a 10 s render, looped; kept in --out for a
rerun), then, each in a fresh process so its peak resident memory is its own (Linux: VmHWM, reset once the model
is built, so the peak of importing torch does not hide that of predicting), with one torch thread:
- decode the file: PyAV decodes every frame of the video, converting none (the bound for reading it in order);
- predict: `inference.predictions.predict_video`, clips decoded in order one at a time (what the command runs),
  with a randomly initialised thin ResNet-50 (2 s clips of 8 frames, 64 px crops);
- all clips at once: every clip decoded first (`decode_uniform_clips`), as predict did before;
- segments x3d_xs: `predict --segments` (`inference.predictions.predict_segments`, windows of the clip duration,
  output discarded) with a randomly initialised x3d_xs at its registry input (4 frames of 160 px from 1.6 s
  windows, short side 182): the same work as with its Kinetics weights.
"baseline" is the process's memory with the model built, before the video is opened. Below each length's rows:
predict's seconds over decoding the file's, and the real-time factor of --segments (the video's seconds over the
seconds it took).

    PYTHONPATH=. python benchmarks/predict_memory.py --huge [--out benchmark_videos]

Huge frames instead: a self-made 6-frame 8000x8000 H.264 video (2 s; written once into --out, minutes of
encoding), classified by `predict_video` (the same thin ResNet, 4 frames a clip, short side 64) and checked by
`check_data.check_file`, each in a fresh process; "peak" is the whole process's peak resident memory (VmHWM,
imports included), what the machine must have.
"""

from __future__ import annotations

import argparse
import io
import itertools
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from video_processing.check_data import check_file
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import ClipSettings
from video_processing.data.video import decode_uniform_clips, write_video
from video_processing.inference.classifiers import Classifier, classifier_preset
from video_processing.inference.predictions import SegmentWriter, predict_segments, predict_video
from video_processing.models.backbones import get_backbone
from video_processing.predict import parser
from video_processing.synthetic import render_video

FPS, WIDTH, HEIGHT = 25, 320, 240
CLIP_S, FRAMES, CROP = 2.0, 8, 64
METHODS = ("decode the file", "predict", "all clips at once", "segments x3d_xs")
SEGMENTS_BACKBONE = "x3d_xs"
HUGE_SIDE, HUGE_FRAMES, HUGE_FPS = 8000, 6, 3
TOOLS = ("predict", "check_data")


def self_made_video(folder: Path, minutes: float) -> Path:
    """A `minutes`-long video: a 10 s render looped (encoding, not rendering, is then the cost)."""
    path = folder / f"loop_{minutes:g}min.mp4"
    if not path.is_file():
        loop = render_video("spinning", np.random.default_rng(0), WIDTH, HEIGHT, 10 * FPS, FPS)
        frames = itertools.islice(itertools.cycle(loop), round(minutes * 60 * FPS))
        folder.mkdir(parents=True, exist_ok=True)
        write_video(path.with_suffix(".part.mp4"), frames, FPS)
        path.with_suffix(".part.mp4").rename(path)
    return path


def huge_video(folder: Path) -> Path:
    """6 frames of 8000x8000 (a moving diagonal pattern), written once."""
    path = folder / f"huge_{HUGE_SIDE}.mp4"
    if not path.is_file():
        pattern = (np.indices((HUGE_SIDE, HUGE_SIDE)).sum(0) % 256).astype(np.uint8)[..., None].repeat(3, -1)
        folder.mkdir(parents=True, exist_ok=True)
        write_video(path.with_suffix(".part.mp4"), (np.roll(pattern, 8 * i, 1) for i in range(HUGE_FRAMES)), HUGE_FPS)
        path.with_suffix(".part.mp4").rename(path)
    return path


def measure_huge(tool: str, path: Path) -> None:
    """In this process: run `tool` on the huge video, print the process's peak memory (imports included), seconds."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    started = time.perf_counter()
    if tool == "predict":
        module = VideoClassificationLightningModule(num_classes=6, stem_dim_out=8, num_frames=4, crop_size=CROP)
        settings = ClipSettings(CLIP_S, 64, (0.45,) * 3, (0.225,) * 3)
        result = predict_video(Classifier(module.eval(), [str(i) for i in range(6)], settings), path).num_clips
    else:
        result = check_file((str(path), "train", "huge", CLIP_S, 4)).status
    print(f"{_status_mib('VmHWM'):.0f} {time.perf_counter() - started:.1f} {result}")


def _status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident since the last reset) of this process, in MiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB


def _reset_peak() -> None:
    """Start VmHWM again from the current memory, so the peak of importing torch does not hide that of predicting."""
    Path("/proc/self/clear_refs").write_text("5")


@torch.inference_mode()
def _all_clips_at_once(classifier: Classifier, path: Path) -> int:
    clips = decode_uniform_clips(path, CLIP_S, FRAMES)
    transform = classifier_preset(classifier)
    logits = torch.cat(
        [classifier.module(torch.stack([transform(c) for c in clips[i : i + 16]])) for i in range(0, len(clips), 16)]
    )
    return len(logits)


def _decode_the_file(path: Path) -> int:
    """Every frame decoded in order, none converted: what reading the file costs. Returns the frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1  # as the package opens videos
        return sum(1 for _ in container.decode(stream))


def _segments(classifier: Classifier, path: Path) -> int:
    """`predict --segments` on `path`, its rows discarded; returns the windows labelled."""
    args = parser().parse_args([SEGMENTS_BACKBONE, str(path), "--segments", "--json"])
    rows = io.StringIO()
    predict_segments(classifier, str(path), args, SegmentWriter("json", rows))
    return sum('"kind": "window"' in line for line in rows.getvalue().splitlines())


def _classifier(method: str) -> Classifier:
    """The thin ResNet, or for "segments" the registry backbone at its pretrained input, randomly initialised."""
    if method.startswith("segments"):
        entry = get_backbone(SEGMENTS_BACKBONE)
        module = VideoClassificationLightningModule(
            num_classes=400, num_frames=entry.num_frames, crop_size=entry.crop_size, backbone=SEGMENTS_BACKBONE
        )
        short = entry.short_side
        settings = ClipSettings(
            entry.clip_duration_s, entry.num_frames, entry.crop_size, short, short, 0.0, entry.mean, entry.std
        )
        return Classifier(module.eval(), [str(i) for i in range(400)], settings)
    module = VideoClassificationLightningModule(num_classes=6, stem_dim_out=8, num_frames=FRAMES, crop_size=CROP)
    settings = ClipSettings(CLIP_S, FRAMES, CROP, 64, 64, 0.0, (0.45,) * 3, (0.225,) * 3)
    return Classifier(module.eval(), [str(i) for i in range(6)], settings)


def measure(method: str, path: Path) -> None:
    """In this process: build the model, classify `path` with `method`, print baseline, peak, seconds and clips
    (frames, for decoding the file)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the same compute in every row, whatever else the machine runs
    classifier = _classifier(method)
    run = {
        "decode the file": lambda: _decode_the_file(path),
        "predict": lambda: predict_video(classifier, path).num_clips,
        "all clips at once": lambda: _all_clips_at_once(classifier, path),
    }.get(method, lambda: _segments(classifier, path))
    _reset_peak()
    baseline, started = _status_mib("VmRSS"), time.perf_counter()
    clips = run()
    print(f"{baseline:.0f} {_status_mib('VmHWM'):.0f} {time.perf_counter() - started:.2f} {clips}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--out", type=Path, default=Path("benchmark_videos"))
    parser.add_argument("--huge", action="store_true", help="a 6-frame 8000x8000 video through predict and check_data")
    parser.add_argument("--measure", nargs=2, metavar=("METHOD", "VIDEO"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-huge", nargs=2, metavar=("TOOL", "VIDEO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], Path(args.measure[1]))
        return
    if args.measure_huge:
        measure_huge(args.measure_huge[0], Path(args.measure_huge[1]))
        return
    if args.huge:
        path = huge_video(args.out)
        print(f"{'video':<12}  {'tool':<10} {'peak MiB':>9} {'seconds':>8}  result")
        for tool in TOOLS:
            command = [sys.executable, __file__, "--measure-huge", tool, str(path)]
            peak, seconds, result = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
            print(f"{HUGE_SIDE}x{HUGE_SIDE}  {tool:<10} {peak:>9} {seconds:>8}  {result}", flush=True)
        return
    print(f"{'video':<8}  {'method':<18} {'baseline MiB':>12} {'peak MiB':>9} {'seconds':>8} {'clips':>6}")
    for minutes in args.minutes:
        path = self_made_video(args.out, minutes)
        seconds = {}
        for method in METHODS:
            command = [sys.executable, __file__, "--measure", method, str(path)]
            baseline, peak, seconds[method], clips = subprocess.run(
                command, capture_output=True, text=True, check=True
            ).stdout.split()
            print(f"{minutes:<6g} m  {method:<18} {baseline:>12} {peak:>9} {seconds[method]:>8} {clips:>6}", flush=True)
        ratio = float(seconds["predict"]) / float(seconds["decode the file"])
        print(f"{minutes:<6g} m  predict / decode the file: {ratio:.2f}x")
        rtf = minutes * 60 / float(seconds["segments x3d_xs"])
        print(f"{minutes:<6g} m  --segments with {SEGMENTS_BACKBONE}: real-time factor {rtf:.1f}", flush=True)


if __name__ == "__main__":
    main()
