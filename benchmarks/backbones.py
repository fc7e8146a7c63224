"""The backbone table: size, compute, speed and memory of every registry entry at the input its weights expect.

    python benchmarks/backbones.py                          # every entry (minutes on a CPU)
    python benchmarks/backbones.py --names x3d_xs s3d       # some
    python benchmarks/backbones.py --tiny                   # 2 frames of 32 px where the entry allows (tests)

Columns, each for one clip ("view") of the entry's frames x crop x crop, random weights, 400 classes:
- params (M):         parameters.
- GFLOPs/view:        torch.utils.flop_counter.FlopCounterMode over one forward, a multiply and an add counted
                      as two FLOPs (papers often print multiply-adds, half of this). Both are
                      `video_processing.models.costs.view_cost`'s, the figures lesson 05's table prints.
- CPU clips/s:        inference (no_grad, batch 1, float32) after one warm-up forward, on this machine's cores.
- act. MB/clip:       bytes the forward keeps for the backward pass (saved_tensors_hooks, float32, training
                      mode), per clip; "ckpt." the same with activation checkpointing of the entry's blocks
                      (the transformers'), which keeps only each block's input.
- T4 est. GB @8:      estimated training memory at batch 8 with fp16 autocast: 16 bytes per parameter (fp32
                      weights, gradients and Adam's two moments) + 8 x the activations kept (ckpt. where the
                      entry has blocks, as its config trains) / 2 (fp16 halves most saved activations), plus
                      1 GB for the CUDA context and the allocator's slack. The recomputed block's own
                      activations (one block at a time) are left out.
- GPU peak GB @8 bf16, GPU train clips/s @8: measured on a CUDA device (bf16 autocast, Adam, batch 8); else
                      printed as "not measured".
- K400 top-1, source: the published Kinetics-400 top-1 of the entry's weights and where it is published
                      (the registry entry's `top1`, `top1_source`).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from video_processing.classification import checkpoint_blocks
from video_processing.models.backbones import BACKBONES, build_backbone
from video_processing.models.costs import view_cost

ADAM_BYTES_PER_PARAM = 16  # fp32 weight, gradient, exp_avg, exp_avg_sq
CUDA_OVERHEAD_GB = 1.0
T4_BATCH = 8  # the fine-tuning configs' batch


def saved_activation_bytes(model: torch.nn.Module, clip: torch.Tensor) -> int:
    """Bytes of the distinct tensors one training forward saves for backward (parameters left out).

    A checkpointed block keeps its input instead of what it saves (torch.utils.checkpoint holds it outside
    the saved-tensor hooks): counted by a hook on the block.
    """
    params = {p.data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def keep_input(module, args) -> None:
        storages[args[0].untyped_storage().data_ptr()] = args[0].untyped_storage().nbytes()

    for module in model.modules():
        if isinstance(module, CheckpointWrapper):
            module.register_forward_pre_hook(keep_input)

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(clip).sum()
    return sum(storages.values())


def cpu_clips_per_s(model: torch.nn.Module, clip: torch.Tensor, repeats: int) -> float:
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(repeats):
            model(clip)
    return repeats / (time.perf_counter() - start)


def gpu_training(model: torch.nn.Module, frames: int, crop: int, batch: int = 8, steps: int = 5) -> tuple[float, float]:
    """Peak GB and clips/s of bf16-autocast Adam training steps at `batch` on the GPU."""
    model = model.cuda().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    clips = torch.randn(batch, 3, frames, crop, crop, device="cuda")
    labels = torch.randint(400, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(clips), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 1e9, steps * batch / (time.perf_counter() - start)


def measure(name: str, *, tiny: bool, repeats: int) -> dict:
    entry = BACKBONES[name]
    frames, crop = entry.num_frames, entry.crop_size
    if tiny and not entry.fixed_input and name != "s3d":  # S3D pools 7x7 after a stride of 32: 224 px at least
        frames, crop = (8 if name == "slowfast_r50" else 2), 32
    torch.manual_seed(0)
    sizes = {"stem_dim_out": 8} if tiny and name == "resnet" else {}
    cost = view_cost(name, frames, crop, **sizes)
    model = build_backbone(name, num_frames=frames, crop_size=crop, **sizes)
    clip = torch.randn(1, 3, frames, crop, crop)
    cpu_clips_per_s(model, clip, repeats=1)  # warm-up
    row = {
        "name": name,
        "input": f"{frames}x{crop}",
        "params": cost.params,
        "gflops": cost.flops / 1e9,
        "cpu": cpu_clips_per_s(model, clip, repeats),
    }
    row["act_mb"] = saved_activation_bytes(model, clip) / 1e6
    row["ckpt_mb"] = None
    if entry.blocks:  # the configs fine-tune the transformers with activation checkpointing
        checkpoint_blocks(model, entry.blocks)
        row["ckpt_mb"] = saved_activation_bytes(model, clip) / 1e6
    kept = row["act_mb"] if row["ckpt_mb"] is None else row["ckpt_mb"]
    row["t4_gb"] = (ADAM_BYTES_PER_PARAM * row["params"] + T4_BATCH * kept * 1e6 / 2) / 1e9 + CUDA_OVERHEAD_GB
    row["gpu"] = gpu_training(model, frames, crop) if torch.cuda.is_available() else None
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--repeats", type=int, default=2, help="timed CPU forwards per entry")
    parser.add_argument("--tiny", action="store_true", help="small inputs where the entry allows: seconds")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; random weights; batch 1 on the CPU")
    header = ("backbone", "input", "params (M)", "GFLOPs/view", "CPU clips/s", "act. MB/clip", "ckpt. MB/clip",
              "T4 est. GB @8",
              "GPU peak GB @8 bf16", "GPU train clips/s @8", "K400 top-1", "source")  # fmt: skip
    print(" | ".join(header))
    for name in args.names:
        r, entry = measure(name, tiny=args.tiny, repeats=args.repeats), BACKBONES[name]
        gpu = [f"{r['gpu'][0]:.1f}", f"{r['gpu'][1]:.1f}"] if r["gpu"] else ["not measured: no GPU"] * 2
        top1 = [f"{entry.top1:.2f}", entry.top1_source] if entry.top1 is not None else ["-", "(from scratch)"]
        cells = [r["name"], r["input"], f"{r['params'] / 1e6:.1f}", f"{r['gflops']:.1f}", f"{r['cpu']:.2f}",
                 f"{r['act_mb']:.0f}", "-" if r["ckpt_mb"] is None else f"{r['ckpt_mb']:.0f}", f"{r['t4_gb']:.1f}",
                 *gpu, *top1]  # fmt: skip
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
