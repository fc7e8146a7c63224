"""What each backbone of the registry costs per clip, computed without weights or arithmetic, and the table of them.

    view_cost("x3d_xs")          # ViewCost(params=3794274, flops=1210513024) at the input its weights expect
    print(describe_backbones())  # every entry: its input, parameters, GFLOPs per view, published top-1

The network is built on PyTorch's meta device (tensors with shapes and no data), so nothing is initialised, no
weights are downloaded and a forward computes no numbers: `torch.utils.flop_counter.FlopCounterMode` counts the
FLOPs of the convolutions and matrix products from their shapes, a multiply and an add counted as two FLOPs
(papers and model zoos often print multiply-adds, half of this). The table costs seconds where real forwards of
every entry take minutes. On the meta device attention runs as matrix products, which are counted; PyTorch's fused
CPU attention kernel is not, so a real CPU forward of VideoMAE would leave its attention out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from video_processing.models.backbones import BACKBONES, build_backbone, get_backbone


@dataclass(frozen=True)
class ViewCost:
    """Parameters of a 400-class network and the FLOPs of one forward over one clip ("view")."""

    params: int
    flops: int


def view_cost(name: str, num_frames: int | None = None, crop_size: int | None = None, **options: int) -> ViewCost:
    """The cost of backbone `name` for one clip of (num_frames, crop_size, crop_size): by default the entry's input.

    `options` are the entry's size options (`Backbone.options`). Raises ModuleNotFoundError where the entry needs
    an optional extra that is not installed (videomae_base: transformers).
    """
    entry = get_backbone(name)
    frames, crop = num_frames or entry.num_frames, crop_size or entry.crop_size
    with torch.device("meta"):
        model = build_backbone(name, num_frames=frames, crop_size=crop, **options).eval()
        clip = torch.empty(1, 3, frames, crop, crop)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    return ViewCost(sum(p.numel() for p in model.parameters()), counter.get_total_flops())


def describe_backbones() -> str:
    """Every registry entry as a text table: the input its weights expect, parameters, GFLOPs per view at that
    input, and the published Kinetics-400 top-1 of its weights with where it is published."""
    rows = [("name", "frames x crop", "short side", "clip (s)", "params (M)", "GFLOPs/view", "K400 top-1", "source")]
    notes = []
    for b in BACKBONES.values():
        try:
            cost = view_cost(b.name)
            size = (f"{cost.params / 1e6:.1f}", f"{cost.flops / 1e9:.1f}")
        except ModuleNotFoundError as e:  # an optional extra: the error says which
            size, notes = ("-", "-"), [*notes, f"{b.name}: {e}"]
        top1 = (f"{b.top1:.2f}", b.top1_source) if b.top1 is not None else ("-", "none (from scratch)")
        rows.append((b.name, f"{b.num_frames} x {b.crop_size}", str(b.short_side), f"{b.clip_duration_s:.2f}",
                     *size, *top1))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines + notes)
