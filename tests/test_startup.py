"""Command lines answer --help and argument errors before importing torch and Lightning (the slow part of their
start: benchmarks/startup.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "pytorch_lightning", "lightning", "gradio", "torchvision", "av"}


def imported_by(*argv: str) -> tuple[int, str, set[str]]:
    """Run `python -X importtime -m ARGV` and return its exit status, its output, and the top-level packages it
    imported (importtime lists every module imported, on stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    lines = run.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines if line.startswith("import time:")}
    said = "\n".join(line for line in lines if not line.startswith("import time:"))
    return run.returncode, run.stdout + said, imported


@pytest.mark.parametrize(
    "argv, status, said",
    [
        (["video_processing.predict", "--help"], 0, "--render OUT"),
        (["video_processing.predict", "model.ckpt"], 2, "the following arguments are required: videos"),
        (["video_processing.predict", "model.ckpt", "a.mp4", "--render", "out.mp4"], 2, "--render needs --segments"),
        (["video_processing.predict", "model.ckpt", "a.mp4", "--window", "-1", "--segments"], 2, "must be positive"),
        (["video_processing.app", "--help"], 0, "--port"),
        (["video_processing.app", "model.ckpt", "--port", "web"], 2, "invalid int value: 'web'"),
        (["video_processing.download", "--help"], 0, "usage:"),
        (["video_processing.synthetic", "--help"], 0, "usage:"),
        (["video_processing.check_data", "--help"], 0, "usage:"),
        (["video_processing.check_data"], 2, "the following arguments are required"),
        (["video_processing.export", "--help"], 0, "--tolerance"),
        (["video_processing.export", "model.ckpt", "--format", "tflite", "--out", "m"], 2, "invalid choice: 'tflite'"),
        (["video_processing.prepare", "--help"], 0, "--short-side"),
        (["video_processing.prepare", "src", "dst", "--short-side", "big"], 2, "invalid int value: 'big'"),
    ],
)
def test_help_and_argument_errors_answer_without_torch(argv, status, said):
    code, output, imported = imported_by(*argv)
    assert code == status and said in output, output
    assert not HEAVY & imported, HEAVY & imported
    assert "video_processing" in imported  # the listing works: the command's own package is in it


def test_a_run_imports_torch_after_the_arguments(tmp_path):
    code, output, imported = imported_by("video_processing.predict", str(tmp_path / "none.ckpt"), "a.mp4")
    assert code == 2 and "cannot load checkpoint" in output and "torch" in imported
