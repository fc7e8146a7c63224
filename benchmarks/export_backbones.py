"""Export of registry backbones to ONNX or TorchScript: wall time, peak memory, file size and parity.

    python benchmarks/export_backbones.py --names s3d swin3d_t mvit_v2_s                 # ONNX, the weights' input
    python benchmarks/export_backbones.py --names mvit_v2_s --format torchscript
    python benchmarks/export_backbones.py --names x3d_xs --tiny                           # 2 frames of 32 px (tests)

Each backbone is measured in a process of its own (random weights, 400 classes, eval mode), so its peak resident
memory is its own: `exporting.export_model` (video_processing.inference.exporting, the core of `export`) on 2
clips (the dynamic batch), then `exporting.check_parity` of the module and the file (onnxruntime's CPU provider for
ONNX) on 3 random clips: the largest absolute logit difference and the top-1 agreement.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from video_processing.data.transforms import ClipSettings
from video_processing.export import FORMATS
from video_processing.inference import exporting
from video_processing.models.backbones import BACKBONES, build_backbone
from video_processing.models.exported import Sidecar

HEADER = ("backbone", "format", "input", "export s", "parity s", "file MB", "peak GB", "max |diff|", "top-1 agree")


def measure(name: str, fmt: str, tiny: bool) -> list[str]:
    """One row: export and check `name` in this process."""
    entry = BACKBONES[name]
    frames, crop = entry.num_frames, entry.crop_size
    if tiny and not entry.fixed_input and name != "s3d":  # S3D pools 7x7 after a stride of 32: 224 px at least
        frames, crop = (8 if name == "slowfast_r50" else 2), 32
    torch.manual_seed(0)
    model = build_backbone(name, num_frames=frames, crop_size=crop).eval()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout
            exporting.export_model(model, fmt, out, torch.randn(2, 3, frames, crop, crop))
        exported_s = time.perf_counter() - start
        clips = ClipSettings(1.0, frames, crop, crop, crop, 0.0, entry.mean, entry.std)
        exported = exporting.load_exported_model(fmt, out, Sidecar(fmt, [str(i) for i in range(400)], clips))
        start = time.perf_counter()
        parity = exporting.check_parity(model, exported, torch.randn(3, 3, frames, crop, crop))
        parity_s = time.perf_counter() - start
        size_mb = out.stat().st_size / 1e6
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB
    return [name, fmt, f"{frames}x{crop}", f"{exported_s:.1f}", f"{parity_s:.1f}", f"{size_mb:.0f}",
            f"{peak_gb:.1f}", f"{parity.max_abs_diff:.1e}", f"{parity.top1_agreement:.0%}"]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="+", required=True, choices=list(BACKBONES))
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--tiny", action="store_true", help="2 frames of 32 px where the entry allows: seconds")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a measuring process: one row
    args = parser.parse_args(argv)
    if args.one:
        try:
            print(" | ".join(measure(args.names[0], args.format, args.tiny)))
        except Exception as e:  # the exporter's own words, first line
            print(f"{args.names[0]} | {args.format} | failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; random weights")
    print(" | ".join(HEADER), flush=True)
    for name in args.names:
        command = [sys.executable, __file__, "--one", "--names", name, "--format", args.format]
        result = subprocess.run(command + ["--tiny"] * args.tiny, capture_output=True, text=True)
        lines = result.stdout.strip().splitlines()
        print(lines[-1] if lines else f"{name} | {args.format} | failed: exit status {result.returncode}", flush=True)


if __name__ == "__main__":
    main()
