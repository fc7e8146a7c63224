"""Smoke tests: each benchmark runs at a tiny size and prints its table, so the benchmarks never rot.

They check that the scripts run and report every row, not the figures: speed is measured by running the
benchmarks themselves (docs/benchmarks.md), never asserted in a test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchcodec
from conftest import SMALL_DATA_KWARGS, fit_one_step_and_save

from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import CLASSES

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def row(output: str, *names: str) -> list[float]:
    """The numbers of the table row that starts with `names` (the columns after the names)."""
    pattern = r"^" + r"\s+".join(re.escape(n) for n in names) + r"\s+(.*)$"
    match = re.search(pattern, output, re.MULTILINE)
    assert match, f"no row {names} in:\n{output}"
    numbers = match.group(1).split("(")[0].replace("%", "").split()  # up to a trailing shape like (3, 8, ...)
    return [float(x) for x in numbers if x != "-"]


def test_loader_benchmark_prints_every_pipeline_and_the_targets(tmp_path):
    output = run_benchmark(
        "loader_throughput.py",
        "--seconds",
        "0.2",
        "--rounds",
        "1",
        "--warmup",
        "1",
        "--videos",
        "1",
        "--duration",
        "2.2",
        "--work-dir",
        str(tmp_path),
    )
    for clip_set in ("kinetics", "raw"):
        for pipeline in ("tutorial", "ours", "decode-only"):
            timed, clips_per_s, x_tutorial, x_decode, peak, setup = row(output, pipeline, clip_set)[:6]
            assert timed >= 1 and clips_per_s > 0 and peak >= setup > 0
        assert row(output, "tutorial", clip_set)[2] == 1.0  # each set's ratios are against its own tutorial row
    assert row(output, "ours", "prepared")[1] > 0
    assert row(output, "core-decode", "kinetics")[1] > 0
    assert "(1, 3, 8, 224, 224)" in output  # ours gives the training clip layout
    for target in ("ours / tutorial, kinetics clips", "ours / decode-only", "ours on prepared / tutorial on raw"):
        assert re.search(re.escape(target) + r".*target >= [\d.]+: (met|MISSED)", output), target
    assert re.search(r"ours / core-decode, kinetics clips +[\d.]+", output)
    if torchcodec.ffmpeg_major_version is None:
        assert "torchcodec row left out: torchcodec cannot load FFmpeg" in output
    else:  # the same clips decoded by torchcodec on the CPU
        assert row(output, "torchcodec", "kinetics")[1] > 0
        assert re.search(r"torchcodec / ours, kinetics clips +[\d.]+", output)


def test_train_benchmark_prints_fp32_fast_larger_batches_and_every_loader_row():
    output = run_benchmark(
        "train_throughput.py",
        "--tiny",
        "--workers",
        "1",
        "--batches",
        "4",  # the larger-batch rows (32 and 64 by default), small here
        "--videos",
        "1",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--compile-warmup",
        "0",
        "--peak-tflops",
        "1",
    )
    assert re.search(r"GFLOPs per training clip; peak 1 TFLOP/s", output)
    fp32 = row(output, "synthetic", "fp32")
    assert fp32[0] > 0 and fp32[2] == 1.0  # clips/s, ms/step, x fp32
    assert row(output, "synthetic", "fast", "(bf16+cl3d)")[0] > 0
    assert re.search(r"batch 2 \(lr [\d.e-]+, scaled linearly at other batches\)", output)
    assert row(output, "synthetic", "fp32", "batch", "4")[2] == 1.0  # x fp32 against fp32 at the same batch
    assert row(output, "synthetic", "fast", "batch", "4")[0] > 0
    for kind in ("fast", "uint8"):  # uint8: transforms_on_device
        clips_per_s, ms, x_fp32, tflops, mfu, wait = row(output, "loader", "1", "workers", kind)
        assert clips_per_s > 0 and 0 <= mfu < 100 and 0 <= wait <= 100  # percent
    if torch.cuda.is_available():
        assert row(output, "gpu-decode", "1", "workers")[0] > 0
    else:
        assert re.search(r"^gpu-decode 1 workers +not measured: needs a CUDA GPU", output, re.MULTILINE)


def test_uint8_benchmark_prints_bytes_and_clips_per_second_of_both_batches():
    output = run_benchmark(
        "uint8_batches.py", "--videos", "1", "--duration", "2.5", "--seconds", "0.5", "--rounds", "1", "--workers", "1"
    )
    table = output.replace(",", "")  # thousands separators
    float_bytes, _, _, float_rate, _ = row(table, "float")
    uint8_bytes, _, _, uint8_rate, _ = row(table, "uint8")
    assert float_rate > 0 and uint8_rate > 0
    assert float_bytes == 4 * uint8_bytes == 8 * 3 * 8 * 224 * 224 * 4  # batch x channels x frames x crop^2 x 4 B
    assert re.search(r"uint8 / float: 0\.25x the bytes, [\d.]+x the clips/s", output)


def test_shard_benchmark_prints_files_shards_and_cache_rows(tmp_path):
    output = run_benchmark(
        "shard_throughput.py", "--videos", "2", "--rounds", "1", "--chunk-bytes", "1MB", "--work-dir", str(tmp_path)
    )
    clips, clips_per_s, x_files = row(output, "files")
    assert clips == 2 and clips_per_s > 0 and x_files == 1.0
    for source in ("shards", "shards-url"):
        assert row(output, source)[0] == 2 and row(output, source)[1] > 0
    assert row(output, "shards-url")[3] > 0  # the URL's chunks passed through the cache
    assert re.search(r"disk use: files [\d.]+ MiB, shards [\d.]+ MiB", output)


def test_gpu_checks_say_they_need_a_gpu_and_the_figures_script_parses(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if torch.cuda.is_available():  # on a GPU machine the checks run for real
        assert "uint8 batches normalized on the GPU" in run_benchmark("gpu_checks.py")
    else:
        for script in ("gpu_checks.py", "nvdec_check.py"):  # nvdec_check.py's argument: a clips folder
            command = [sys.executable, str(ROOT / "benchmarks" / script), str(tmp_path)]
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            assert result.returncode == 1 and "needs a CUDA GPU" in result.stderr, script
    for script in ("gpu_figures.sh", "nvdec_check.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)]).returncode == 0, script


def test_nvdec_check_stops_first_when_the_driver_has_no_nvdec_library(tmp_path):
    ldconfig = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    if "libnvcuvid.so.1" in ldconfig:
        pytest.skip("this machine has NVDEC: there the script runs for real, for minutes (docs/benchmarks.md)")
    work = tmp_path / "work"
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "nvdec_check.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NVDEC_WORK": str(work)},
    )
    assert (
        result.returncode == 2 and "no NVDEC library" in result.stderr and "NVIDIA_DRIVER_CAPABILITIES" in result.stderr
    )
    assert not work.exists()  # nothing installed before the check


def test_predict_memory_benchmark_prints_each_method_per_length_and_the_ratios(tmp_path):
    output = run_benchmark("predict_memory.py", "--minutes", "0.1", "--out", str(tmp_path))
    seconds = {}
    for method, count in [("decode the file", 150), ("predict", 3), ("all clips at once", 3), ("segments x3d_xs", 3)]:
        baseline, peak, seconds[method], clips = row(output, "0.1", "m", *method.split())
        assert peak >= baseline > 0 and clips == count  # 6 s at 25 frames/s: 150 frames, 3 clips of 2 s, or 1.6 s
    ratio = float(re.search(r"^0\.1\s+m\s+predict / decode the file: (\S+)x$", output, re.MULTILINE).group(1))
    assert ratio == pytest.approx(seconds["predict"] / seconds["decode the file"], abs=0.01)
    (rtf,) = row(output, "0.1", "m", "--segments", "with", "x3d_xs:", "real-time", "factor")
    assert rtf == pytest.approx(6 / seconds["segments x3d_xs"], abs=0.1)  # the video's seconds per second


def test_backbone_benchmark_prints_a_row_per_entry_with_checkpointed_activations_for_the_transformers():
    output = run_benchmark("backbones.py", "--tiny", "--repeats", "1", "--names", "x3d_xs", "swin3d_t")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in output.splitlines() if " | " in line}
    assert set(rows) == {"backbone", "x3d_xs", "swin3d_t"}
    x3d, swin = rows["x3d_xs"], rows["swin3d_t"]
    assert float(x3d[2]) == pytest.approx(3.8, abs=0.1) and float(swin[2]) == pytest.approx(28.2, abs=0.1)
    assert float(swin[3]) > 0 and float(x3d[4]) > 0  # GFLOPs (x3d_xs at 2x32: under 0.05), clips/s
    assert x3d[6] == "-" and float(swin[6]) < float(swin[5])  # checkpointing keeps less
    expected = "not measured: no GPU" if not torch.cuda.is_available() else None
    assert expected is None or x3d[-3] == expected
    assert x3d[-2:] == ["69.12", "PyTorchVideo model zoo"] and swin[-2:] == ["77.72", "torchvision weights `_metrics`"]


def test_export_benchmark_prints_a_row_per_backbone_with_its_parity():
    output = run_benchmark("export_backbones.py", "--tiny", "--names", "x3d_xs", "r3d_18")
    rows = {line.split(" | ")[0]: line.split(" | ") for line in output.splitlines() if " | " in line}
    assert set(rows) == {"backbone", "x3d_xs", "r3d_18"}
    for name in ("x3d_xs", "r3d_18"):
        _, fmt, size, export_s, parity_s, file_mb, peak_gb, diff, agreement = rows[name]
        assert (fmt, size) == ("onnx", "2x32") and agreement == "100%" and float(diff) <= 1e-3
        assert float(export_s) > 0 and float(parity_s) >= 0 and min(float(file_mb), float(peak_gb)) > 0


def test_explain_benchmark_prints_each_class_and_the_mean(small_dataset, tmp_path):
    data = KineticsDataModule(str(small_dataset), batch_size=4, num_workers=0, **SMALL_DATA_KWARGS)
    module = VideoClassificationLightningModule(
        num_classes=6, class_names=list(CLASSES), stem_dim_out=4, num_frames=4, crop_size=48
    )
    checkpoint = fit_one_step_and_save(module, data, tmp_path, limit_val_batches=1)
    output = run_benchmark("explain_shapes.py", str(checkpoint), "--clips-per-class", "1", "--size", "64")
    assert "HiResCAM on stage 1 of 4 (12 x 12 cells)" in output  # 48 px crops: the stages are 12, 6, 3, 2 cells
    for name in (*CLASSES, "mean"):
        clips, share, chance, ratio = row(output, name)  # shares in percent
        assert clips == (6 if name == "mean" else 1) and 0 <= share <= 100 and 0 < chance < 100
        assert ratio == pytest.approx(share / chance, rel=0.05, abs=0.01)  # shares printed to 0.1 points


def test_startup_benchmark_times_help_and_the_first_result(tmp_path):
    output = run_benchmark("startup.py", "--repeat", "1", "--commands", "predict", "--out", str(tmp_path))
    figures = {
        line.split("|")[1].strip(): [float(cell.split()[0]) for cell in line.split("|")[2:4] if cell.strip()]
        for line in output.splitlines()
        if line.startswith("| predict")
    }
    (help_s, help_mib), (first_s, run_mib), (whole_s,) = (
        figures[key]
        for key in ("predict --help", "predict --segments --json: first result", "predict --segments --json: whole")
    )
    assert help_mib < 100 < run_mib  # --help loads neither torch nor Lightning; a run does
    assert 0 < help_s and 0 < first_s <= whole_s
