"""Training clips per second from video files vs from shards of the same clips, and the shard cache's disk use.

    python benchmarks/shard_throughput.py [--videos 32] [--rounds 3] [--chunk-bytes 64MB] [--work-dir DIR]

Writes its own clips (the "kinetics" set of loader_throughput.py: 10 s, 30 fps, 340x256 H.264), then shards of
them with `prepare --format shards` (the bytes as they are). Each source is read through KineticsDataModule's
training loader in the main process (num_workers=0: one decoding thread, as one loader worker), a random 2 s
clip per video, 8 frames, short side 256-320, crop 224, as in training:
- files:        the class-folder layout.
- shards:       the shard folder, read in place (LitData maps local chunks).
- shards-url:   the same folder as a "local:" URL: chunks go through LitData's download-and-cache path, as
                from s3:// (without the network), into a fresh cache every round.
Sources take turns for `--rounds` rounds of one epoch each, so other load on the machine falls on all alike.
The cache's disk use is sampled every 20 ms while the URL is streamed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch

from video_processing.data.shards import write_shards
from video_processing.kinetics_module import KineticsDataModule

SOURCES = ("files", "shards", "shards-url")
DATA_ARGS = dict(clip_duration=2.0, num_frames=8, crop_size=224, min_short_side=256, max_short_side=320, num_workers=0)


def write_sources(root: Path, videos: int, chunk_bytes: str) -> tuple[Path, Path]:
    """The clips as class folders (two also as validation videos) and as shards; reused when already there."""
    from clips import KINETICS, write_clip_set

    files, shards = root / "files", root / "shards"
    paths = write_clip_set(files, KINETICS, videos, workers=2)
    for path in paths[:2]:  # a data module needs validation videos, though only training is timed
        (files / "val" / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, files / "val" / path.parent.name / path.name)
    if not (shards / "shards.json").is_file():
        failures = write_shards(files, shards, chunk_bytes=chunk_bytes, workers=2)
        if failures:
            raise RuntimeError(f"writing the shards failed: {failures}")
    return files, shards


def disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class PeakDiskUse:
    """The largest size of `folder`, sampled every 20 ms in a thread while the block runs."""

    def __init__(self, folder: Path):
        self.folder, self.peak_mib = folder, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak_mib = max(self.peak_mib, disk_mib(self.folder))
            except FileNotFoundError:  # a chunk deleted while the folder was listed
                pass

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def one_epoch(data_path: str, batch_size: int, cache_dir: Path | None = None) -> tuple[int, float]:
    """(clips, seconds) of one training epoch through the data module's loader."""
    dm = KineticsDataModule(data_path, batch_size=batch_size, cache_dir=cache_dir and str(cache_dir), **DATA_ARGS)
    dm.setup("fit")
    start, clips = time.perf_counter(), 0
    for batch in dm.train_dataloader():
        clips += len(batch["video"])
    return clips, time.perf_counter() - start


def race(files: Path, shards: Path, rounds: int, batch_size: int, work: Path) -> dict[str, dict]:
    """Every source one epoch per round, in turn; the cache is emptied before each URL epoch."""
    results = {name: {"clips": 0, "seconds": 0.0, "cache_peak_mib": 0.0} for name in SOURCES}
    cache = work / "cache"
    for _ in range(rounds):
        for name in SOURCES:
            if name == "shards-url":
                shutil.rmtree(cache, ignore_errors=True)
                with PeakDiskUse(cache) as disk:
                    clips, seconds = one_epoch(f"local:{shards}", batch_size, cache)
                results[name]["cache_peak_mib"] = max(results[name]["cache_peak_mib"], disk.peak_mib)
            else:
                clips, seconds = one_epoch(str(files if name == "files" else shards), batch_size)
            results[name]["clips"] += clips
            results[name]["seconds"] += seconds
    return results


def print_table(results: dict[str, dict], files: Path, shards: Path, chunk_bytes: str) -> None:
    base = results["files"]["clips"] / results["files"]["seconds"]
    print(f"\ndisk use: files {disk_mib(files / 'train'):.1f} MiB, shards {disk_mib(shards / 'train'):.1f} MiB")
    print(f"chunk_bytes {chunk_bytes}; {len(list((shards / 'train').glob('*.bin')))} training chunks\n")
    print(f"{'source':<11} {'clips':>6} {'clips/s':>8} {'x files':>8} {'cache peak MiB':>15}")
    for name in SOURCES:
        r = results[name]
        rate = r["clips"] / r["seconds"]
        peak = f"{r['cache_peak_mib']:.1f}" if name == "shards-url" else "-"
        print(f"{name:<11} {r['clips']:>6} {rate:>8.2f} {rate / base:>8.2f} {peak:>15}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=32, help="clips written (10 s each)")
    parser.add_argument("--rounds", type=int, default=3, help="epochs per source, taken in turns")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chunk-bytes", default="64MB", help="LitData chunk size of the shards")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the clips here (default: a temp dir)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as in one loader worker
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        files, shards = write_sources(work, args.videos, args.chunk_bytes)
        results = race(files, shards, args.rounds, args.batch_size, work)
        print_table(results, files, shards, args.chunk_bytes)


if __name__ == "__main__":
    main()
