"""Training clips per second (forward + backward + optimizer step) of the kinetics400 model: fp32 vs fast path.

    python benchmarks/train_throughput.py                  # on a GPU, configs/kinetics400.yaml sizes
    python benchmarks/train_throughput.py --compile        # adds the torch.compile'd fast path
    python benchmarks/train_throughput.py --tiny --workers 1   # seconds on a CPU (the smoke test)

Rows, each after warm-up steps, timed between `cuda.synchronize()` calls:
- synthetic fp32:            random tensors already on the device, float32 with PyTorch's defaults (cuDNN
                             may use TF32 for convolutions), as `precision: 32` trains: the model alone.
- synthetic fast:            bf16 autocast + channels_last_3d (the config's `precision: bf16-mixed` and
                             `model.channels_last: true`); with --compile also torch.compile.
- synthetic ... batch N:     the same at the larger batches of --batches (32 and 64), the learning rate scaled
                             linearly from the config's; "x fp32" compares with fp32 at the same batch. CUDA only
                             at the config's sizes (--tiny runs them on a CPU); a batch that does not fit in GPU
                             memory is printed as not measured.
- loader N workers fast:     the fast path fed by KineticsDataModule's train loader (pinned memory, persistent
                             workers) over Kinetics-like clips the benchmark writes (340x256, 10 s, 30 fps).
- loader N workers uint8:    the same with `transforms_on_device`: workers send uint8 clips, which are made float
                             and normalized on the device (`on_after_batch_transfer`).
- gpu-decode N workers:      `decoder: torchcodec, decoder_device: cuda`: workers plan clips, the main process
                             decodes them with NVDEC ahead of the step (CUDA only; otherwise printed as not run).
"wait %" is the share of the timed wall time spent blocked waiting for the loader's next batch.
Model FLOPs per training clip = 3 x 2 x the multiply-adds fvcore counts for one forward clip (backward costs
about twice the forward). MFU = model FLOPs per second / the device's peak dense bf16 FLOP/s (--peak-tflops, or
looked up from the device name for H100/H200/A100/L4/T4), for every row alike, so rows compare directly.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from clips import KINETICS, link_dataset, write_clip_set

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.decoders import torchcodec_problem
from video_processing.kinetics_module import KineticsDataModule

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "kinetics400.yaml"
NUM_CLASSES = 400
# Peak dense bf16 tensor-core FLOP/s by device-name fragment, first match wins (T4: fp16, it has no bf16 units).
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L4", 121.0), ("T4", 65.0))


@dataclass(frozen=True)
class Sizes:
    """What one training step holds: the config's model and data sizes."""

    model_depth: int
    stem_dim_out: int
    num_frames: int
    crop_size: int
    batch_size: int
    clip_duration: float
    lr: float  # the config's learning rate, for its batch_size


def scaled(sizes: Sizes, batch_size: int) -> Sizes:
    """The sizes at another batch, the learning rate scaled linearly with it (the config's rule)."""
    return replace(sizes, batch_size=batch_size, lr=sizes.lr * batch_size / sizes.batch_size)


def config_sizes(tiny: bool) -> Sizes:
    """Sizes from configs/kinetics400.yaml, or a thin model on small clips for a CPU smoke run."""
    config = yaml.safe_load(CONFIG.read_text())
    model, data = config["model"], config["data"]
    if tiny:
        return Sizes(model["model_depth"], 8, 4, 64, 2, data["clip_duration"], model["lr"] * 2 / data["batch_size"])
    return Sizes(
        model["model_depth"],
        model["stem_dim_out"],
        data["num_frames"],
        data["crop_size"],
        data["batch_size"],
        data["clip_duration"],
        model["lr"],
    )


@dataclass
class Row:
    name: str
    clips_per_s: float
    step_ms: float
    batch_size: int
    wait_share: float | None = None  # loader rows: share of the time spent waiting for a batch


# Loader rows: the data module's options per row kind.
LOADER_ROWS = {
    "fast": {},
    "uint8": {"transforms_on_device": True},
    "gpu-decode": {"decoder": "torchcodec", "decoder_device": "cuda"},
}
ROW_NAMES = {
    "fast": "loader {workers} workers fast",
    "uint8": "loader {workers} workers uint8",
    "gpu-decode": "gpu-decode {workers} workers",
}


def build_model(sizes: Sizes, device: torch.device, *, fast: bool, compile: bool) -> tuple:
    """The LightningModule (used here as a plain module) and its Adam optimizer, on `device`."""
    module = VideoClassificationLightningModule(
        num_classes=NUM_CLASSES,
        model_depth=sizes.model_depth,
        stem_dim_out=sizes.stem_dim_out,
        num_frames=sizes.num_frames,
        crop_size=sizes.crop_size,
        channels_last=fast,
        compile=compile,
    ).to(device)
    return module, torch.optim.Adam(module.parameters(), lr=sizes.lr)


def train_step(module, optimizer, video: torch.Tensor, label: torch.Tensor, *, fast: bool) -> None:
    autocast = torch.autocast(video.device.type, dtype=torch.bfloat16) if fast else nullcontext()
    with autocast:
        loss = F.cross_entropy(module(video), label)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, steps: int, warmup: int, batch_size: int, device: torch.device) -> tuple[float, float]:
    """Run `warmup` untimed then `steps` timed calls of `step`; return (clips/s, ms per step)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - start
    return steps * batch_size / seconds, 1000 * seconds / steps


def synthetic_row(name, sizes, device, args, *, fast: bool, compile: bool = False) -> Row:
    module, optimizer = build_model(sizes, device, fast=fast, compile=compile)
    shape = (sizes.batch_size, 3, sizes.num_frames, sizes.crop_size, sizes.crop_size)
    video = torch.randn(shape, device=device)
    label = torch.randint(NUM_CLASSES, (sizes.batch_size,), device=device)
    warmup = args.warmup + (args.compile_warmup if compile else 0)
    rate, ms = time_steps(
        lambda: train_step(module, optimizer, video, label, fast=fast), args.steps, warmup, sizes.batch_size, device
    )
    return Row(name, rate, ms, sizes.batch_size)


def batch_rows(sizes: Sizes, device: torch.device, args) -> list[Row | str]:
    """fp32, fast (and compiled) rows at each of --batches, or why a batch was not measured."""
    kinds = [("fp32", False, False), ("fast", True, False)] + ([("compile", True, True)] if args.compile else [])
    rows = []
    for batch_size in args.batches:
        names = [f"synthetic {kind} batch {batch_size}" for kind, _, _ in kinds]
        if device.type != "cuda" and not args.tiny:
            rows += [f"{name:<32} not measured: no CUDA GPU (sized for one; --tiny runs it here)" for name in names]
            continue
        for name, (_, fast, compile) in zip(names, kinds, strict=True):
            try:
                rows.append(synthetic_row(name, scaled(sizes, batch_size), device, args, fast=fast, compile=compile))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append(f"{name:<32} not measured: out of GPU memory at batch {batch_size}")
    return rows


def loader_row(data_path: Path, workers: int, kind: str, sizes, device, args) -> Row | str:
    """A loader row; for GPU decoding without a GPU, the reason it was not run."""
    name = ROW_NAMES[kind].format(workers=workers)
    if kind == "gpu-decode" and device.type != "cuda":
        return f"{name:<32} not measured: needs a CUDA GPU (decoder_device cuda)"
    if kind == "gpu-decode" and (problem := torchcodec_problem()):
        return f"{name:<32} not measured: {problem}"
    data = KineticsDataModule(
        data_path=str(data_path),
        clip_duration=sizes.clip_duration,
        batch_size=sizes.batch_size,
        num_workers=workers,
        num_frames=sizes.num_frames,
        crop_size=sizes.crop_size,
        min_short_side=args.min_short_side,
        max_short_side=args.max_short_side,
        **LOADER_ROWS[kind],
    )
    data.setup("fit")
    module, optimizer = build_model(sizes, device, fast=True, compile=args.compile)
    batches = iter(data.train_dataloader())
    waits = []

    def step():
        start = time.perf_counter()
        batch = next(batches)
        waits.append(time.perf_counter() - start)
        video = data.on_after_batch_transfer({"video": batch["video"].to(device, non_blocking=True)}, 0)["video"]
        label = batch["label"].to(device, non_blocking=True)
        train_step(module, optimizer, video, label, fast=True)

    warmup = args.warmup + (args.compile_warmup if args.compile else 0)
    rate, ms = time_steps(step, args.steps, warmup, sizes.batch_size, device)
    return Row(name, rate, ms, sizes.batch_size, sum(waits[-args.steps :]) / (args.steps * ms / 1000))


def flops_per_clip(sizes: Sizes) -> float:
    """Model FLOPs of one training clip: 3 (forward + backward) x 2 (multiply + add) x fvcore's count."""
    from fvcore.nn import FlopCountAnalysis

    module, _ = build_model(sizes, torch.device("cpu"), fast=False, compile=False)
    clip = torch.zeros(1, 3, sizes.num_frames, sizes.crop_size, sizes.crop_size)
    counter = FlopCountAnalysis(module.model.eval(), clip)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return 6.0 * counter.total()


def peak_flops(device: torch.device, peak_tflops: float | None) -> float | None:
    if peak_tflops is not None:
        return peak_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for fragment, tflops in PEAK_TFLOPS if fragment in name), None)


def write_dataset(root: Path, sizes: Sizes, args) -> Path:
    """Kinetics-like clips as a class-folder dataset, hard-linked so that one epoch outlasts the timed steps."""
    unique = write_clip_set(root / "unique", KINETICS, args.videos, duration_s=10.0 if not args.tiny else 3.0)
    needed = (args.warmup + args.compile_warmup + args.steps + 4) * sizes.batch_size
    return link_dataset(unique, root / "kinetics", needed)


def print_table(rows: list[Row | str], sizes: Sizes, flops: float, peak: float | None, device: torch.device) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak_text = f"peak {peak / 1e12:.0f} TFLOP/s" if peak else "no peak FLOP/s known (--peak-tflops gives MFU)"
    print(
        f"\n{name}: model depth {sizes.model_depth}, stem {sizes.stem_dim_out}, clips {sizes.num_frames}x"
        f"{sizes.crop_size}^2, batch {sizes.batch_size} (lr {sizes.lr:g}, scaled linearly at other batches); "
        f"{flops / 1e9:.1f} GFLOPs per training clip; {peak_text}"
    )
    print(f"{'row':<32} {'clips/s':>9} {'ms/step':>9} {'x fp32':>7} {'TFLOP/s':>8} {'MFU':>6} {'wait %':>7}")
    fp32 = {row.batch_size: row.clips_per_s for row in rows if isinstance(row, Row) and "fp32" in row.name}
    for row in rows:
        if isinstance(row, str):  # a row that could not run here, and why
            print(row)
            continue
        achieved = row.clips_per_s * flops
        mfu = f"{achieved / peak:6.1%}" if peak else f"{'-':>6}"
        wait = f"{row.wait_share:7.1%}" if row.wait_share is not None else f"{'-':>7}"
        # against fp32 at the same batch (none when that batch's fp32 row did not fit)
        x_fp32 = f"{row.clips_per_s / fp32[row.batch_size]:>7.2f}" if row.batch_size in fp32 else f"{'-':>7}"
        print(
            f"{row.name:<32} {row.clips_per_s:>9.2f} {row.step_ms:>9.1f} {x_fp32} {achieved / 1e12:>8.3f} {mfu} {wait}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a thin model on 4x64^2 clips: a CPU smoke run")
    parser.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    parser.add_argument("--workers", type=int, nargs="*", default=[2, 8], help="loader rows (none: skip)")
    parser.add_argument("--batches", type=int, nargs="*", default=[32, 64], help="larger-batch rows (none: skip)")
    parser.add_argument(
        "--loaders", nargs="*", default=list(LOADER_ROWS), choices=list(LOADER_ROWS), help="loader row kinds"
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per row first")
    parser.add_argument("--compile-warmup", type=int, default=10, help="extra warm-up steps while compiling")
    parser.add_argument("--videos", type=int, default=16, help="distinct clips written for the loader rows")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: look up)")
    parser.add_argument("--min-short-side", type=int, default=256)
    parser.add_argument("--max-short-side", type=int, default=320)
    args = parser.parse_args(argv)
    if args.tiny:
        args.min_short_side, args.max_short_side = 72, 88

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # as the config's `trainer.benchmark: true`
    sizes = config_sizes(args.tiny)
    rows = [synthetic_row("synthetic fp32", sizes, device, args, fast=False)]
    rows.append(synthetic_row("synthetic fast (bf16+cl3d)", sizes, device, args, fast=True))
    if args.compile:
        rows.append(synthetic_row("synthetic fast + compile", sizes, device, args, fast=True, compile=True))
    rows += batch_rows(sizes, device, args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.workers:
            data_path = write_dataset(Path(tmp), sizes, args)
            rows += [
                loader_row(data_path, workers, kind, sizes, device, args)
                for workers in args.workers
                for kind in args.loaders
            ]
    print_table(rows, sizes, flops_per_clip(sizes), peak_flops(device, args.peak_tflops), device)


if __name__ == "__main__":
    main()
