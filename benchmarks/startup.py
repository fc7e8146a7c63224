"""Start-up of the command lines: --help's time and peak memory, and predict's time to its first printed result.

    PYTHONPATH=. python benchmarks/startup.py [--repeat 3] [--commands predict app ...] [--out benchmark_videos]

Each command runs in a fresh process, `--repeat` times; the table gives the median and the range of the seconds
(wall clock) and the peak resident memory (the child's ru_maxrss). "first result" is the time from starting
`predict CKPT VIDEO --segments --json` until its first line (the first window's label) is read from its stdout;
"whole" until it exits. The checkpoint is a randomly initialised thin ResNet-50 (8 frames, 64 px crops, 2 s clips
by the registry's defaults), saved by Lightning; the video a 10 s, 320x240, 25 frames/s self-made render.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["predict", "app", "download", "export", "check_data", "prepare", "synthetic"]


def run(argv: list[str], first_line: bool = False) -> tuple[float, float, float]:
    """(seconds to the first stdout line, seconds to exit, peak MiB) of `python -m ARGV` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *argv], env=env, stdout=subprocess.PIPE)
    first = float("nan")
    if first_line:
        process.stdout.readline()
        first = time.perf_counter() - started
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # the child's own peak memory
    whole = time.perf_counter() - started
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return first, whole, usage.ru_maxrss / 1024


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """The thin checkpoint and the 10 s video (kept in `folder` for a rerun)."""
    checkpoint, video = folder / "thin_resnet.ckpt", folder / "render_10s.mp4"
    if checkpoint.is_file() and video.is_file():
        return checkpoint, video
    import numpy as np
    import pytorch_lightning as pl
    import torch

    from video_processing.classification import VideoClassificationLightningModule
    from video_processing.data.video import write_video
    from video_processing.synthetic import render_video

    folder.mkdir(parents=True, exist_ok=True)
    if not checkpoint.is_file():
        torch.manual_seed(0)
        module = VideoClassificationLightningModule(num_classes=6, stem_dim_out=8, num_frames=8, crop_size=64)
        trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
        trainer.strategy.connect(module)
        trainer.save_checkpoint(checkpoint)
    if not video.is_file():
        write_video(video, render_video("spinning", np.random.default_rng(0), 320, 240, 250, 25), 25)
    return checkpoint, video


def summary(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):.2f} {unit} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=COMMANDS, help="whose --help to time")
    parser.add_argument("--out", type=Path, default=Path("benchmark_videos"))
    parser.add_argument("--inputs-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inputs_only:
        make_inputs(args.out)
        return
    # made in a child: a process forked from one that imported torch starts with its memory counted as peak
    subprocess.run([sys.executable, __file__, "--inputs-only", "--out", str(args.out)], check=True)
    checkpoint, video = make_inputs(args.out)
    print("| command | seconds | peak MiB |\n|---|---|---|")
    for name in args.commands:
        runs = [run([f"video_processing.{name}", "--help"]) for _ in range(args.repeat)]
        print(f"| {name} --help | {summary([r[1] for r in runs], 's')} | {summary([r[2] for r in runs], 'MiB')} |")
    for options in (["--json"], ["--segments", "--json"]):
        argv = ["video_processing.predict", str(checkpoint), str(video), *options]
        runs = [run(argv, first_line=True) for _ in range(args.repeat)]
        print(
            f"| predict {' '.join(options)}: first result | {summary([r[0] for r in runs], 's')} | "
            f"{summary([r[2] for r in runs], 'MiB')} |\n| predict {' '.join(options)}: whole | "
            f"{summary([r[1] for r in runs], 's')} | |"
        )


if __name__ == "__main__":
    main()
