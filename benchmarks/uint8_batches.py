"""Bytes per batch and loader clips/s with `transforms_on_device` off (float batches) and on (uint8 batches).

    python benchmarks/uint8_batches.py [--workers 2] [--seconds 30] [--rounds 6] [--videos 8]

The loader alone, no model: KineticsDataModule's train loader over Kinetics-like clips the script writes
(340x256, 10 s, 30 fps, a keyframe every second), 8 frames of 224x224 per 2 s clip, batches of 8, as
configs/kinetics400.yaml reads them. Both loaders keep their workers (persistent), and take turns round after
round so that other load on the machine falls on both alike. Each turn first drains the batches the loader's
workers made while the other one was timed, then times the batches that follow. "MB/s at this rate" is what the
clips/s measured means for shared memory, pinned memory and the copy to the GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from clips import KINETICS, link_dataset, write_clip_set

from video_processing.kinetics_module import KineticsDataModule


@dataclass
class Loader:
    name: str
    data: KineticsDataModule
    batches: object = None
    clips: int = 0
    seconds: float = 0.0
    batch_bytes: int = 0

    def start(self) -> None:
        self.data.setup("fit")
        self.batch_bytes = self.next_batch()["video"].nbytes  # the first batch also starts the workers

    def next_batch(self) -> dict:
        """The next training batch; a new epoch (same workers: they persist) when one ends."""
        for _ in range(2):
            try:
                return next(self.batches)
            except (StopIteration, TypeError):  # TypeError: no epoch started yet
                self.batches = iter(self.data.train_dataloader())
        raise RuntimeError("the training loader gives no batch")

    def turn(self, seconds: float, drain: int) -> None:
        for _ in range(drain):  # made while the other loader was timed: not this turn's work
            self.next_batch()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.clips += len(self.next_batch()["video"])
        self.seconds += time.perf_counter() - start


def build(data_path: Path, workers: int, transforms_on_device: bool) -> KineticsDataModule:
    return KineticsDataModule(
        data_path=str(data_path),
        clip_duration=2.0,
        batch_size=8,
        num_workers=workers,
        num_frames=8,
        crop_size=224,
        transforms_on_device=transforms_on_device,
    )


def print_table(loaders: list[Loader]) -> None:
    print(
        f"\n{'batches':<8} {'bytes/batch':>12} {'bytes/clip':>11} {'clips':>6} {'clips/s':>8} {'MB/s at this rate':>18}"
    )
    for loader in loaders:
        rate = loader.clips / loader.seconds
        per_clip = loader.batch_bytes / 8
        print(
            f"{loader.name:<8} {loader.batch_bytes:>12,} {per_clip:>11,.0f} {loader.clips:>6} {rate:>8.2f} "
            f"{rate * per_clip / 1e6:>18.1f}"
        )
    float_, uint8 = loaders
    print(
        f"\nuint8 / float: {uint8.batch_bytes / float_.batch_bytes:.2f}x the bytes, "
        f"{(uint8.clips / uint8.seconds) / (float_.clips / float_.seconds):.2f}x the clips/s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="loader workers of each loader")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per loader")
    parser.add_argument("--rounds", type=int, default=6, help="the timed seconds are split into this many turns")
    parser.add_argument("--videos", type=int, default=8, help="distinct clips written")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per written video")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # the main process only collects batches here
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        clips = write_clip_set(Path(tmp) / "unique", KINETICS, args.videos, duration_s=args.duration)
        root = link_dataset(clips, Path(tmp) / "kinetics", 64 * 8)  # epochs of 64 batches
        print(f"clips ready in {time.perf_counter() - started:.0f} s: {KINETICS.note}, {args.workers} workers")
        loaders = [
            Loader(name, build(root, args.workers, on_device))
            for name, on_device in (("float", False), ("uint8", True))
        ]
        for loader in loaders:
            loader.start()
        drain = args.workers * 2  # the DataLoader's default prefetch_factor
        for _ in range(args.rounds):
            for loader in loaders:
                loader.turn(args.seconds / args.rounds, drain)
        print_table(loaders)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
