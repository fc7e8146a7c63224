"""costs: parameters and FLOPs per view counted on the meta device, as a real model's, and the backbone table that
lesson 05 prints and docs/benchmarks.md shows."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from video_processing.models.backbones import BACKBONES, build_backbone
from video_processing.models.costs import ViewCost, describe_backbones, view_cost

BENCHMARKS_MD = Path(__file__).parent.parent / "docs" / "benchmarks.md"


@pytest.mark.parametrize(
    "name, num_frames, crop_size, options",
    [("x3d_xs", 4, 160, {}), ("slowfast_r50", 8, 64, {}), ("swin3d_t", 4, 64, {}),
     ("videomae_base", 2, 32, {"num_hidden_layers": 2})],
)  # fmt: skip
def test_the_meta_device_counts_what_a_real_model_has_and_computes(name, num_frames, crop_size, options):
    """A 3D CNN at its entry's input, SlowFast's two pathways, a Swin and a ViT (smaller inputs: the count is the
    same arithmetic for any). The real forward runs attention as matrix products (SDPBackend.MATH), as on the meta
    device: the counter does not count PyTorch's fused CPU attention kernel, so a plain CPU forward of VideoMAE
    misses its attention's FLOPs."""
    torch.manual_seed(0)
    model = build_backbone(name, num_frames=num_frames, crop_size=crop_size, **options).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(torch.randn(1, 3, num_frames, crop_size, crop_size))
    real = ViewCost(sum(p.numel() for p in model.parameters()), counter.get_total_flops())
    assert real.flops > 0
    assert view_cost(name, num_frames, crop_size, **options) == real


def _docs_rows() -> dict[str, list[str]]:
    """The backbone table of docs/benchmarks.md (its section "Backbones: ..."): name -> its cells."""
    section = BENCHMARKS_MD.read_text().split("\n## Backbones: ", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if match := re.match(r"\| `(\w+)` +\|", line):
            rows[match.group(1)] = [cell.strip() for cell in line.strip("|").split("|")]
    return rows


def test_the_table_gives_every_entry_with_the_figures_of_docs_benchmarks():
    """Parameters, GFLOPs per view at the entry's input and the published top-1: the lesson's table (computed on the
    meta device) and the documented one (measured by benchmarks/backbones.py on real tensors) agree."""
    docs = _docs_rows()
    lines = describe_backbones().splitlines()
    assert lines[0].split()[:2] == ["name", "frames"] and len(lines) == 1 + len(BACKBONES)
    assert set(docs) == set(BACKBONES)
    for line, entry in zip(lines[1:], BACKBONES.values(), strict=True):
        name, frames, _, crop, short_side, clip_s, params, gflops, top1, *source = line.split()
        assert (name, frames, crop, short_side) == (entry.name, str(entry.num_frames), str(entry.crop_size),
                                                     str(entry.short_side))  # fmt: skip
        assert float(clip_s) == pytest.approx(entry.clip_duration_s, abs=0.005)
        documented = docs[name]
        assert documented[1] == f"{entry.num_frames}x{entry.crop_size}"
        assert (params, gflops) == (documented[2], documented[3]), name
        if entry.top1 is None:
            assert top1 == "-" and documented[-2].startswith("-")
        else:
            assert float(top1) == pytest.approx(float(documented[-2]), abs=0.005)
            assert " ".join(source) == entry.top1_source and documented[-1] == entry.top1_source


def test_the_table_names_the_extra_an_entry_needs_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "video_processing.models.videomae", raising=False)
    lines = describe_backbones().splitlines()
    (row,) = [line for line in lines if line.startswith("videomae_base ")]
    assert row.split()[6:8] == ["-", "-"] and float(row.split()[8]) == pytest.approx(80.9)
    assert lines[-1].startswith("videomae_base: ") and "video-classification[transformers]" in lines[-1]
