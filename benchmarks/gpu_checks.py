"""What only a CUDA GPU can check: uint8 batches finished on the GPU, NVDEC frames against PyAV's, a GPU fit.

    python benchmarks/gpu_checks.py        # on a CUDA machine; prints one line per check

- uint8 on the GPU: the first training and validation batches with `transforms_on_device`, normalized on the GPU
  by `device_transform`, against the float batches the CPU preset gives for the same seed (max abs difference).
- NVDEC vs PyAV: every clip of Kinetics-like files (340x256, 30 fps) decoded by torchcodec on the GPU and by
  PyAV, frame by frame: max and mean abs difference in grey levels, decode time of each, GPU memory decoding took.
- GPU fit: two training steps and a validation pass through `pl.Trainer(accelerator="auto")` at bf16-mixed,
  with GPU decoding when torchcodec can decode here, else with uint8 batches.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from clips import KINETICS, write_clip_set

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.decoders import decode_planned, torchcodec_problem
from video_processing.data.video import decode_uniform_clips, plan_uniform_clips
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import make_dataset

SIZES = dict(clip_duration=1.0, num_frames=4, crop_size=48, min_short_side=56, max_short_side=64, batch_size=4)


def uint8_on_gpu(data_path: Path) -> str:
    batches = {}
    for on_device in (False, True):
        data = KineticsDataModule(str(data_path), num_workers=0, transforms_on_device=on_device, **SIZES)
        data.setup("fit")
        torch.manual_seed(0)  # the same random clips, crops and flips on both paths
        batches[on_device] = [next(iter(data.train_dataloader())), next(iter(data.val_dataloader()))]
    worst = max(
        (data.device_transform(uint8["video"].cuda()).cpu() - floats["video"]).abs().max().item()
        for floats, uint8 in zip(batches[False], batches[True], strict=True)
    )
    return f"uint8 batches normalized on the GPU vs the float preset on the CPU: max abs difference {worst:.2e}"


def nvdec_vs_pyav(paths: list[Path]) -> str:
    if problem := torchcodec_problem():
        return f"NVDEC vs PyAV: not measured: {problem}"
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    diffs, pyav_s, nvdec_s, frames = [], 0.0, 0.0, 0
    for path in paths:
        start = time.perf_counter()
        reference = decode_uniform_clips(path, 2.0, 8)
        pyav_s += time.perf_counter() - start
        start = time.perf_counter()
        decoded = decode_planned(plan_uniform_clips(path, 2.0, 8), device="cuda")
        torch.cuda.synchronize()
        nvdec_s += time.perf_counter() - start
        for ours, theirs in zip(decoded, reference, strict=True):
            diffs.append((ours.cpu().int() - theirs.int()).abs().flatten())
            frames += len(theirs)
    diff = torch.cat(diffs).float()
    peak_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
    return (
        f"NVDEC vs PyAV over {frames} frames of {len(paths)} files: max abs difference {diff.max():.0f}, "
        f"mean {diff.mean():.2f} grey levels; decode {nvdec_s:.2f} s on the GPU (first file includes set-up) vs "
        f"{pyav_s:.2f} s PyAV on one core; GPU memory at peak {peak_mb:.0f} MiB"
    )


def gpu_fit(data_path: Path) -> str:
    gpu_decode = torchcodec_problem() is None
    options = dict(decoder="torchcodec", decoder_device="cuda") if gpu_decode else dict(transforms_on_device=True)
    data = KineticsDataModule(str(data_path), num_workers=2, **options, **SIZES)
    model = VideoClassificationLightningModule(
        num_classes=data.num_classes, stem_dim_out=8, num_frames=SIZES["num_frames"], crop_size=SIZES["crop_size"]
    )
    trainer = pl.Trainer(
        accelerator="auto", precision="bf16-mixed", max_steps=2, logger=False, enable_checkpointing=False
    )
    trainer.fit(model, data)
    loss = trainer.callback_metrics["train_loss_step"]  # read before validate, which resets callback_metrics
    metrics = trainer.validate(model, data, verbose=False)[0]
    return (
        f"GPU fit ({'GPU decoding' if gpu_decode else 'uint8 batches'}) on {trainer.strategy.root_device}: "
        f"2 steps, train_loss {loss:.3f}, val_loss {metrics['val_loss']:.3f}, finite: {bool(torch.isfinite(loss))}"
    )


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_checks.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        small = make_dataset(Path(tmp) / "small", size="small")
        print(uint8_on_gpu(small))
        print(nvdec_vs_pyav(write_clip_set(Path(tmp) / "kinetics", KINETICS, 4)))
        print(gpu_fit(small))


if __name__ == "__main__":
    main()
