"""Clips per second of one loader process (one thread): the tutorial's pipeline, ours, and decoding alone.

    python benchmarks/loader_throughput.py [--seconds 10] [--rounds 20] [--videos 4] [--work-dir DIR]

Writes its own clips (10 s, 30 fps H.264): "kinetics" at 340x256 with a keyframe every second, and "raw" at
640x480 with x264's default keyframe interval of 250 frames, like a YouTube download; then "prepared", the raw
clips re-encoded by `python -m video_processing.prepare`. Each clip is one random 2 s window, 8 frames, scaled
to a short side in [256, 320], cropped to 224 and flipped at random, as in training.

Pipelines, each in its own process (so each peak memory is its own), timed in turn round after round so that
other load on the machine falls on all of them alike:
- tutorial:    PyTorchVideo's Kinetics dataset and transforms as its Lightning tutorial publishes them
               (crop 224 instead of its typo 244). Reproduced here only; its transforms import the removed
               torchvision.transforms.functional_tensor, which is aliased in its process.
- ours:        RandomClipDataset + train_preset, as KineticsDataModule builds them.
- decode-only: PyAV seeks to the window and decodes it, converting only the 8 kept frames to RGB (with one
               reused converter, the fastest way PyAV offers); no transforms. The bound for any pipeline
               that decodes every frame of the window.
- core-decode: the core's `decode_random_clip` alone (kinetics clips only), which also skips the frames that
               are neither kept nor referenced: ours / core-decode is what the transforms and dataset cost.
- torchcodec:  ours with `--data.decoder torchcodec` on the CPU (kinetics clips only): the same clips, the kept
               frames' times read from the packets by PyAV, then decoded by torchcodec. Left out, with the
               reason printed, where torchcodec cannot load FFmpeg's libraries.
Peak memory is each process's maximum resident set size; "after setup" is that maximum once its imports and
dataset are built, before the first clip.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLIP_DURATION_S = 2.0
NUM_FRAMES = 8
CROP_SIZE = 224
MIN_SHORT_SIDE, MAX_SHORT_SIDE = 256, 320
PIPELINES = ("tutorial", "ours", "decode-only")
CLIP_SETS = (
    "kinetics = 340x256, keyframe every 1 s; raw = 640x480, keyframe every 250 frames (8.3 s); "
    "prepared = raw through video_processing.prepare (short side 256, keyframe every 1 s)"
)


# ---------------------------------------------------------------- writing the clips


def write_clip_sets(root: Path, videos: int, duration_s: float, fps: int) -> dict[str, Path]:
    """Write the kinetics and raw clip sets, then prepare the raw set; files already there are reused."""
    # imported here: every pipeline process imports this module, and should load only what its pipeline needs
    from clips import KINETICS, RAW, write_clip_set

    from video_processing.prepare import prepare_dataset

    roots = {spec.name: root / spec.name for spec in (KINETICS, RAW)}
    for spec in (KINETICS, RAW):
        write_clip_set(roots[spec.name], spec, videos, duration_s=duration_s, fps=fps, workers=2)
    roots["prepared"] = root / "prepared"
    failures = prepare_dataset(roots["raw"], roots["prepared"], short_side=MIN_SHORT_SIDE, workers=2)
    if failures:
        raise RuntimeError(f"preparing the raw clips failed: {failures}")
    return roots


# ---------------------------------------------------------------- the pipelines, each run in its own process


def _single_threaded_open():
    """av.open for the tutorial's decoder, decoding on one thread as our `open_video` does (a fair race)."""
    import av

    av_open = av.open

    def open_one_thread(*args, **kwargs):
        container = av_open(*args, **kwargs)
        for stream in container.streams.video:
            stream.thread_type, stream.thread_count = "SLICE", 1
        return container

    return open_one_thread


def tutorial_pipeline(train_dir: Path):
    """PyTorchVideo's Lightning tutorial: Kinetics with a random clip sampler and its published transforms."""
    import torchvision.transforms.functional as tv_functional

    # The tutorial's transforms import a module torchvision removed in 0.17; point it at its successor.
    sys.modules.setdefault("torchvision.transforms.functional_tensor", tv_functional)
    with warnings.catch_warnings():  # its use of the deprecated torch.jit.script_method is not news here
        warnings.simplefilter("ignore", FutureWarning)
        import pytorchvideo.data
        import pytorchvideo.data.encoded_video_pyav as encoded_video_pyav
        from pytorchvideo.transforms import (
            ApplyTransformToKey,
            Normalize,
            RandomShortSideScale,
            UniformTemporalSubsample,
        )
    from torchvision.transforms import Compose, Lambda, RandomCrop, RandomHorizontalFlip

    encoded_video_pyav.av.open = _single_threaded_open()
    train_transform = Compose(
        [
            ApplyTransformToKey(
                key="video",
                transform=Compose(
                    [
                        UniformTemporalSubsample(NUM_FRAMES),
                        Lambda(lambda x: x / 255.0),
                        Normalize((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
                        RandomShortSideScale(min_size=MIN_SHORT_SIDE, max_size=MAX_SHORT_SIDE),
                        RandomCrop(CROP_SIZE),
                        RandomHorizontalFlip(p=0.5),
                    ]
                ),
            ),
        ]
    )
    dataset = pytorchvideo.data.Kinetics(
        data_path=str(train_dir),
        clip_sampler=pytorchvideo.data.make_clip_sampler("random", CLIP_DURATION_S),
        transform=train_transform,
    )

    def clips():
        while True:  # the iterable dataset ends after one pass over the videos; start another
            empty = True
            for item in dataset:
                empty = False
                yield item
            if empty:  # it skips videos it cannot read, silently: never loop on nothing
                raise RuntimeError(f"the tutorial's Kinetics dataset read no clip from {train_dir}")

    iterator = clips()
    return lambda: next(iterator)["video"]


def ours_pipeline(train_dir: Path, decoder: str = "pyav"):
    """RandomClipDataset + train_preset, as KineticsDataModule builds them for `decoder`."""
    from functools import partial

    from video_processing.data import reads
    from video_processing.data.datasets import RandomClipDataset
    from video_processing.data.decoders import clip_decoders
    from video_processing.data.layouts import load_dataset
    from video_processing.data.transforms import train_preset

    read = partial(
        reads.random_clip,
        decode=clip_decoders(decoder)[0],
        transform=train_preset(crop_size=CROP_SIZE, min_short_side=MIN_SHORT_SIDE, max_short_side=MAX_SHORT_SIDE),
        clip_duration_s=CLIP_DURATION_S,
        num_frames=NUM_FRAMES,
    )
    dataset = RandomClipDataset(load_dataset(train_dir.parent).train, read)
    return lambda: dataset[random.randrange(len(dataset))]["video"]


def decode_only_pipeline(train_dir: Path):
    """Raw PyAV, independent of the core: seek, decode the window, convert the kept frames to RGB."""
    import av
    import torch
    from av.video.reformatter import VideoReformatter

    paths = sorted(train_dir.rglob("*.mp4"))

    def decode_one():
        with av.open(str(random.choice(paths))) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.thread_count = "SLICE", 1
            duration_s = float(stream.duration * stream.time_base)
            start = random.uniform(0, max(duration_s - CLIP_DURATION_S, 0))
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            window = []
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                if t >= start + CLIP_DURATION_S:
                    break
                if t >= start:
                    window.append(frame)
            kept = torch.linspace(0, len(window) - 1, NUM_FRAMES).long().tolist()
            reformatter = VideoReformatter()  # reused across frames: the fastest conversion PyAV offers
            return torch.from_numpy(
                np.stack([reformatter.reformat(window[i], format="rgb24").to_ndarray() for i in kept])
            )

    return decode_one


def torchcodec_pipeline(train_dir: Path):
    """Ours with torchcodec decoding on the CPU (`--data.decoder torchcodec`)."""
    return ours_pipeline(train_dir, decoder="torchcodec")


def core_decode_pipeline(train_dir: Path):
    """The core's decoder alone (`decode_random_clip`): what ours costs without its transforms."""
    from video_processing.data.video import decode_random_clip

    paths = sorted(train_dir.rglob("*.mp4"))
    return lambda: decode_random_clip(random.choice(paths), CLIP_DURATION_S, NUM_FRAMES)


BUILDERS = {
    "tutorial": tutorial_pipeline,
    "ours": ours_pipeline,
    "decode-only": decode_only_pipeline,
    "core-decode": core_decode_pipeline,
    "torchcodec": torchcodec_pipeline,
}


def serve(conn, pipeline: str, train_dir: Path, seed: int) -> None:
    """Child process: build the pipeline, then per request make clips for the seconds asked (at least one clip)
    and report how many in how long; report peak memory at the end."""
    import torch

    torch.set_num_threads(1)
    random.seed(seed)
    torch.manual_seed(seed)
    next_clip = BUILDERS[pipeline](train_dir)
    setup_rss = _max_rss_mib()
    while (budget_s := conn.recv()) is not None:
        start, clips = time.perf_counter(), 0
        while clips == 0 or time.perf_counter() - start < budget_s:
            clip = next_clip()
            clips += 1
        conn.send((clips, time.perf_counter() - start, tuple(clip.shape)))
    conn.send((setup_rss, _max_rss_mib()))


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---------------------------------------------------------------- the race


@dataclass
class Runner:
    """One pipeline on one clip set, in its own process."""

    pipeline: str
    clip_set: str
    conn: object
    process: object
    seconds: float = 0.0
    clips: int = 0
    shape: tuple = ()
    rss: tuple[float, float] = (0.0, 0.0)

    def run(self, budget_s: float, timed: bool = True) -> None:
        try:
            self.conn.send(budget_s)
            clips, seconds, self.shape = self.conn.recv()
        except (BrokenPipeError, EOFError):
            raise RuntimeError(f"the {self.pipeline} process on {self.clip_set} clips failed (see above)") from None
        if timed:
            self.seconds += seconds
            self.clips += clips

    def finish(self) -> None:
        self.conn.send(None)
        self.rss = self.conn.recv()
        self.process.join()

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds


def start_runners(roots: dict[str, Path], plan: list[tuple[str, str]]) -> list[Runner]:
    ctx = mp.get_context("spawn")  # a fresh interpreter per pipeline: nothing shared, honest peak memory
    runners = []
    for seed, (pipeline, clip_set) in enumerate(plan):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=serve, args=(child, pipeline, roots[clip_set] / "train", seed))
        process.start()
        runners.append(Runner(pipeline, clip_set, parent, process))
    return runners


def race(runners: list[Runner], seconds: float, rounds: int, warmup: int) -> None:
    """Warm every runner up, then give each `seconds` of clip making, split into rounds taken in turn."""
    for _ in range(warmup):
        for runner in runners:
            runner.run(0.0, timed=False)  # one clip
    for _ in range(rounds):
        for runner in runners:
            runner.run(seconds / rounds)
    for runner in runners:
        runner.finish()


# The prepared clips are the raw clips re-encoded: they are compared with what the raw clips give.
REFERENCE_SET = {"kinetics": "kinetics", "raw": "raw", "prepared": "raw"}


def print_table(runners: list[Runner]) -> None:
    """Clips/s, ratios against the reference set's tutorial and decode-only rows, and peak memory."""
    by_key = {(r.pipeline, r.clip_set): r for r in runners}
    print(
        f"\n{'pipeline':<12} {'clip set':<9} {'timed':>6} {'clips/s':>8} {'x tutorial':>11} {'x decode-only':>14} "
        f"{'peak RSS MiB':>13} {'after setup':>12}  clip shape"
    )
    for r in runners:
        reference = REFERENCE_SET[r.clip_set]
        tutorial, decode_only = by_key[("tutorial", reference)], by_key[("decode-only", reference)]
        print(
            f"{r.pipeline:<12} {r.clip_set:<9} {r.clips:>6} {r.clips_per_s:>8.2f} "
            f"{r.clips_per_s / tutorial.clips_per_s:>11.2f} {r.clips_per_s / decode_only.clips_per_s:>14.2f} "
            f"{r.rss[1]:>13.0f} {r.rss[0]:>12.0f}  {r.shape}"
        )
    rate = {key: r.clips_per_s for key, r in by_key.items()}
    print("\nratios of the prepared row are against the raw clips' tutorial and decode-only rows")
    ratios = [
        ("ours / tutorial, kinetics clips", ("ours", "kinetics"), ("tutorial", "kinetics"), 2.5),
        ("ours / decode-only, kinetics clips", ("ours", "kinetics"), ("decode-only", "kinetics"), 0.9),
        ("ours on prepared / tutorial on raw", ("ours", "prepared"), ("tutorial", "raw"), 5.0),
        ("ours / core-decode, kinetics clips", ("ours", "kinetics"), ("core-decode", "kinetics"), "(transforms' cost)"),
        ("torchcodec / ours, kinetics clips", ("torchcodec", "kinetics"), ("ours", "kinetics"), "(decoder vs PyAV)"),
    ]
    for name, numerator, denominator, target in ratios:
        if numerator not in rate:  # a pipeline left out
            continue
        ratio = rate[numerator] / rate[denominator]
        # a number is a target to meet, a string says what the ratio measures
        verdict = target if isinstance(target, str) else f"target >= {target}: {'met' if ratio >= target else 'MISSED'}"
        print(f"{name:<36} {ratio:>6.2f}  {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per pipeline and clip set")
    parser.add_argument("--rounds", type=int, default=20, help="the timed seconds are split into this many turns")
    parser.add_argument("--warmup", type=int, default=2, help="untimed clips per pipeline first")
    parser.add_argument("--videos", type=int, default=4, help="files per clip set")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per written video")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="keep the clips here and reuse them (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        roots = write_clip_sets(args.work_dir or Path(tmp), args.videos, args.duration, args.fps)
        print(f"clips ready in {time.perf_counter() - started:.0f} s: {CLIP_SETS}")
        plan = [(p, s) for s in ("kinetics", "raw") for p in PIPELINES]
        plan += [("core-decode", "kinetics"), ("ours", "prepared")]
        from video_processing.data.decoders import torchcodec_problem

        if problem := torchcodec_problem():
            print(f"torchcodec row left out: {problem}")
        else:
            plan.append(("torchcodec", "kinetics"))
        runners = start_runners(roots, plan)
        race(runners, args.seconds, args.rounds, args.warmup)
        print_table(runners)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
