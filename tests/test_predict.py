"""predict: a checkpoint trained here; mp4 and avi files written here; top-k per file; one-line errors."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fit_one_step_and_save
from stream_helpers import mpegts_bytes, stalling_server

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import KINETICS_MEAN, KINETICS_STD, ClipSettings, eval_preset
from video_processing.data.video import decode_uniform_clips, open_video, write_video
from video_processing.inference.classifiers import Classifier, load_classifier, pretrained_classifier
from video_processing.inference.predictions import SegmentWriter, predict_segments, predict_video
from video_processing.kinetics_module import KineticsDataModule
from video_processing.lessons.standins import serve_directory, write_avi, write_standin_weights
from video_processing.models.backbones import BACKBONES, kinetics400_classes
from video_processing.predict import main
from video_processing.synthetic import render_video

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["alpha", "beta", "gamma"]
MEAN, STD = (0.4, 0.41, 0.42), (0.2, 0.21, 0.22)


def _frames(seconds: float, fps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (round(seconds * fps), 48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A thin ResNet trained for one step on 3 classes, saved with the data module's settings."""
    root = tmp_path_factory.mktemp("predict")
    for split in ("train", "val"):
        for i, name in enumerate(CLASSES):
            (root / "data" / split / name).mkdir(parents=True)
            write_video(root / "data" / split / name / "a.mp4", _frames(1.2, 20, i), 20)
    data = KineticsDataModule(
        root / "data",
        clip_duration=1.0,
        batch_size=3,
        num_workers=0,
        num_frames=4,
        crop_size=32,
        min_short_side=40,
        max_short_side=44,
        mean=MEAN,
        std=STD,
    )
    module = VideoClassificationLightningModule(
        num_classes=3, class_names=CLASSES, stem_dim_out=8, num_frames=4, crop_size=32
    )
    # Saved as if fine-tuned from pretrained weights: loading must not fetch them again (the file has them).
    module.hparams["pretrained"] = True
    return fit_one_step_and_save(module, data, root, limit_val_batches=1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "two_seconds.mp4", _frames(2.1, 25, 7), 25)
    write_avi(root / "clip.avi", _frames(1.5, 25, 8), 25)
    (root / "broken.mp4").write_bytes(b"this is not a video" * 100)
    return {
        "mp4": root / "two_seconds.mp4",
        "avi": root / "clip.avi",
        "broken": root / "broken.mp4",
        "missing": root / "missing.mp4",
    }


@pytest.fixture(autouse=True)
def no_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))


def test_classifier_keeps_the_training_settings(checkpoint):
    classifier = load_classifier(checkpoint)
    assert classifier.class_names == CLASSES
    assert (classifier.clips.clip_duration, classifier.clips.min_short_side) == (1.0, 40)
    assert tuple(classifier.clips.mean) == MEAN and tuple(classifier.clips.std) == STD
    assert not classifier.module.training


def test_prediction_is_the_softmax_of_the_mean_clip_logits(checkpoint, videos):
    classifier = load_classifier(checkpoint)
    prediction = predict_video(classifier, videos["mp4"], top_k=3)
    clips = decode_uniform_clips(videos["mp4"], 1.0, 4)
    transform = eval_preset(crop_size=32, short_side=40, mean=MEAN, std=STD)
    with torch.no_grad():
        logits = classifier.module(torch.stack([transform(c) for c in clips]))
    expected = logits.mean(0).softmax(0)
    assert prediction.num_clips == len(clips) == 2
    assert [name for name, _ in prediction.top] == [CLASSES[i] for i in expected.argsort(descending=True)]
    assert [p for _, p in prediction.top] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)


def test_text_output_lists_top_k_per_file(checkpoint, videos, capsys):
    assert main([str(checkpoint), str(videos["mp4"]), str(videos["avi"]), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{videos['mp4']} (2 clips)" and out[3] == f"{videos['avi']} (1 clips)"
    assert len(out) == 6
    for line in out[1:3] + out[4:6]:
        percent, name = line.split()
        assert name in CLASSES and 0 <= float(percent.rstrip("%")) <= 100


def test_json_output_holds_every_class_when_top_k_covers_them(checkpoint, videos, capsys):
    assert main([str(checkpoint), str(videos["avi"]), "--json", "--top-k", "10"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["path"] == str(videos["avi"]) and record["num_clips"] == 1
    probabilities = [entry["probability"] for entry in record["top"]]
    assert sorted(entry["class"] for entry in record["top"]) == CLASSES
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5) and probabilities == sorted(probabilities)[::-1]


def test_bad_files_get_one_line_each_and_the_rest_is_classified(checkpoint, videos, capsys):
    paths = [videos["missing"], videos["mp4"], videos["broken"]]
    assert main([str(checkpoint), *map(str, paths), "--json"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in captured.err
    assert str(videos["missing"]) in errors[0] and "no such file" in errors[0]
    assert str(videos["broken"]) in errors[1]
    records = json.loads(captured.out)
    assert [("error" in r) for r in records] == [True, False, True]


def test_a_missing_checkpoint_is_one_line(tmp_path, videos, capsys):
    assert main([str(tmp_path / "nothing.ckpt"), str(videos["mp4"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing.ckpt" in err


def test_a_backbone_name_predicts_kinetics_classes_with_its_pretrained_weights(tmp_path, videos, capsys, monkeypatch):
    """Two weight files, the network built from the same seed each time: the predictions follow the file served,
    so a network left at its random start (weights not loaded) would predict the same twice."""
    records = []
    for seed in (0, 1):
        weights = write_standin_weights("x3d_xs", tmp_path / f"served_{seed}", seed=seed)
        with serve_directory(tmp_path / f"served_{seed}") as url:
            entry = dataclasses.replace(BACKBONES["x3d_xs"], weights_url=f"{url}/{weights.name}")
            monkeypatch.setitem(BACKBONES, "x3d_xs", entry)
            monkeypatch.setenv("TORCH_HOME", str(tmp_path / f"torch_home_{seed}"))  # torch.hub caches by file name
            torch.manual_seed(0)
            assert main(["x3d_xs", str(videos["mp4"]), "--json"]) == 0
        (record,) = json.loads(capsys.readouterr().out)
        records.append({entry["class"]: entry["probability"] for entry in record["top"]})
    assert all(len(top) == 5 and set(top) <= set(kinetics400_classes()) for top in records)
    assert records[0] != records[1], "the same predictions from two weight files: the weights were not loaded"


# The stand-ins' clips: 1 s, 4 frames of a 48 px crop of a 48 px short side (evaluation's: no range, no flip).
STAND_IN_CLIPS = ClipSettings(1.0, 4, 48, 48, 48, 0.0, KINETICS_MEAN, KINETICS_STD)


class GrowthStandIn(torch.nn.Module):
    """A deterministic stand-in for a trained model on self-made videos: reads from a window's frames whether the
    shape grows, keeps its size (the "spinning" class) or shrinks.

    The shape is the one strongly coloured region (largest minus smallest channel above 0.45); the median change
    of its log area between consecutive frames decides. Reversed frames swap growing and shrinking, so labels come
    out right only when each window gets its own frames, in order. It says nothing about what a trained network
    learns; it tests the windowing, the preset and the merging around the model.
    """

    classes = ["growing", "spinning", "shrinking"]

    def __init__(self):
        super().__init__()
        self.hparams = argparse.Namespace(num_frames=4, crop_size=48)
        self.device = torch.device("cpu")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        mean, std = (torch.tensor(v).view(1, 3, 1, 1, 1) for v in (KINETICS_MEAN, KINETICS_STD))
        rgb = video * std + mean
        area = ((rgb.amax(1) - rgb.amin(1)) > 0.45).sum((-2, -1)).clamp(min=1).float()
        growth = area.log().diff(dim=1).median(1).values
        return 10 * torch.stack([growth, 0.12 - growth.abs(), -growth], 1)


def _segment_args(**kwargs) -> argparse.Namespace:
    defaults = {"window": None, "stride": None, "smooth": 1, "input_format": None, "timeout_s": 10.0, "realtime": None}
    return argparse.Namespace(**{**defaults, **kwargs})


def _records(text: str) -> tuple[list[tuple], list[tuple]]:
    records = [json.loads(line) for line in text.splitlines()]
    rows = {
        kind: [(r["start_s"], r["end_s"], r["label"]) for r in records if r["kind"] == kind]
        for kind in ("window", "segment")
    }
    return rows["window"], rows["segment"]


def test_a_long_video_of_several_classes_gives_its_segments_in_order(tmp_path):
    order = ["growing", "spinning", "shrinking", "growing"]  # 2 s each
    parts = [render_video(label, np.random.default_rng([3, i]), 72, 72, 48, 24) for i, label in enumerate(order)]
    write_video(tmp_path / "long.mp4", np.concatenate(parts), 24)
    clips = STAND_IN_CLIPS
    classifier = Classifier(GrowthStandIn(), GrowthStandIn.classes, clips)
    out = io.StringIO()
    assert predict_segments(classifier, str(tmp_path / "long.mp4"), _segment_args(), SegmentWriter("json", out))
    windows, segments = _records(out.getvalue())
    assert windows == [(k, k + 1, order[k // 2]) for k in range(8)]
    assert segments == [(0, 2, "growing"), (2, 4, "spinning"), (4, 6, "shrinking"), (6, 8, "growing")]
    # the stand-in reads motion, not a frame: the first window played backwards is shrinking
    clip = eval_preset(crop_size=48, short_side=48)(decode_uniform_clips(tmp_path / "long.mp4", 1.0, 4)[0])
    assert GrowthStandIn()(clip.flip(1)[None]).argmax().item() == 2


def test_segments_as_text_json_and_csv(checkpoint, videos, capsys):
    video = str(videos["mp4"])  # 2.1 s: two windows of the checkpoint's 1 s clips
    assert main([str(checkpoint), video, "--segments", "--json"]) == 0
    windows, segments = _records(capsys.readouterr().out)
    assert [w[:2] for w in windows] == [(0, 1), (1, 2)] and {w[2] for w in windows} <= set(CLASSES)
    assert segments[0][0] == 0 and segments[-1][1] == 2 and len(segments) == len({w[2] for w in windows})
    # a window of one clip's length is that clip: the same probabilities as the checkpoint on the decoded clip
    classifier = load_classifier(checkpoint)
    clip = eval_preset(crop_size=32, short_side=40, mean=MEAN, std=STD)(decode_uniform_clips(video, 1.0, 4)[0])
    with torch.no_grad():
        expected = classifier.module(clip[None])[0].softmax(0)
    assert main([str(checkpoint), video, "--segments", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["kind"] for r in rows][:2] == ["window", "window"] and rows[-1]["kind"] == "segment"
    assert rows[0]["label"] == CLASSES[expected.argmax()]
    assert float(rows[0]["probability"]) == pytest.approx(expected.max().item(), abs=1e-5)
    assert main([str(checkpoint), video, "--segments", "--window", "0.5", "--stride", "0.25", "--smooth", "3"]) == 0
    text = capsys.readouterr().out.splitlines()
    segment_lines = [line for line in text[1:] if line.startswith("  segment ")]
    assert text[0] == video and len(text) - 1 - len(segment_lines) == 7  # windows starting 0, 0.25, ..., 1.5 s
    assert text[1].split()[:4] == ["0.00", "-", "0.50", "s"] and text[-1].startswith("  segment ")
    assert sum(int(line.split("(")[-1].split()[0]) for line in segment_lines) == 7


def test_segments_of_standard_input_as_it_streams(checkpoint, monkeypatch, capsys):
    stream = mpegts_bytes(np.random.default_rng(0).integers(0, 256, (75, 48, 64, 3), dtype=np.uint8), 25)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stream)))
    assert main([str(checkpoint), "-", "--segments", "--json"]) == 0
    windows, segments = _records(capsys.readouterr().out)
    assert [w[:2] for w in windows] == [(0, 1), (1, 2), (2, 3)] and segments[-1][1] == 3


def test_a_piped_stream_prints_windows_as_they_arrive_and_ctrl_c_ends_with_the_segments(checkpoint, tmp_path):
    """A real pipe into a real process: windows appear before the stream ends; SIGINT prints the segments, closes
    the annotated copy as a playable video and exits with 130."""
    stream = mpegts_bytes(np.random.default_rng(0).integers(0, 256, (250, 48, 64, 3), dtype=np.uint8), 25)
    rendered = tmp_path / "live.mp4"
    command = [sys.executable, "-m", "video_processing.predict", str(checkpoint), "-", "--segments", "--json"]
    command += ["--render", str(rendered)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": os.environ["TORCH_HOME"]}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    watchdog = threading.Timer(120, process.kill)  # a hung read fails the test instead of hanging it
    watchdog.start()
    try:
        process.stdin.write(stream[: len(stream) // 2])  # about 5 of the 10 s; the pipe stays open
        process.stdin.flush()
        first = process.stdout.readline().decode()  # before the rest of the stream exists
        assert json.loads(first) | {"label": "", "probability": 0} == {
            **{"source": "-", "kind": "window", "start_s": 0, "end_s": 1, "label": "", "probability": 0}
        }
        process.send_signal(signal.SIGINT)
        # the reader's buffer may hold more lines already: read through it, not around it (communicate)
        out, err = process.stdout.read().decode(), process.stderr.read().decode()
        process.wait()
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 130, err
    windows, segments = _records(first + out)
    assert 1 <= len(windows) < 9 and "Traceback" not in err and "interrupted" in err, err
    assert segments and segments[0][0] == 0 and segments[-1][1] == windows[-1][1]
    with open_video(rendered) as container:  # a whole file: its index written, every frame decodes
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert 25 * len(windows) <= frames < 250  # the labelled windows' frames at least; the rest was never sent


def test_a_missing_source_with_segments_is_one_line_and_the_rest_is_labelled(checkpoint, videos, capsys):
    assert main([str(checkpoint), str(videos["missing"]), str(videos["mp4"]), "--segments", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "no such file" in captured.err and "Traceback" not in captured.err
    windows, segments = _records(captured.out)
    assert len(windows) == 2 and segments[-1][1] == 2


def test_whole_video_prediction_cuts_the_windows_of_segments_from_an_mpegts_start(checkpoint, tmp_path, capsys):
    """A file starting at 1.4 s: predict, predict --segments and validation's clips are the same three clips."""
    path = tmp_path / "late.ts"
    path.write_bytes(mpegts_bytes(_frames(3.0, 20, 5), 20, start_s=1.4))
    classifier = load_classifier(checkpoint)
    prediction = predict_video(classifier, path, top_k=3)
    clips = decode_uniform_clips(path, 1.0, 4)  # the eval preset's clips, batched as predict did before
    transform = eval_preset(crop_size=32, short_side=40, mean=MEAN, std=STD)
    with torch.no_grad():
        expected = classifier.module(torch.stack([transform(c) for c in clips])).mean(0).softmax(0)
    assert prediction.num_clips == len(clips) == 3
    assert [p for _, p in prediction.top] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)
    assert main([str(checkpoint), str(path), "--segments", "--json"]) == 0
    windows, _ = _records(capsys.readouterr().out)
    assert [w[:2] for w in windows] == [(0, 1), (1, 2), (2, 3)]


def test_a_stalled_url_ends_after_the_timeout_with_the_segments_so_far(checkpoint, capsys):
    stream = mpegts_bytes(_frames(10.0, 25, 2), 25)
    with stalling_server(stream[: len(stream) // 3]) as url:  # about 3 s, then nothing
        started = time.monotonic()
        assert main([str(checkpoint), url, "--segments", "--json", "--timeout-s", "1"]) == 1
        elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    windows, segments = _records(captured.out)
    assert elapsed < 15 and "stalled" in captured.err and url in captured.err
    assert len(windows) >= 1 and segments and segments[-1][1] == windows[-1][1]


def test_ctrl_c_ends_a_stalled_source_at_once(checkpoint, capsys):
    stream = mpegts_bytes(_frames(10.0, 25, 2), 25)
    with stalling_server(stream[: len(stream) // 3]) as url:
        interrupt = threading.Timer(3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
        started = time.monotonic()
        interrupt.start()
        try:
            assert main([str(checkpoint), url, "--segments", "--json", "--timeout-s", "60"]) == 130
        finally:
            interrupt.cancel()
        elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert elapsed < 10 and "interrupted" in captured.err and "Traceback" not in captured.err
    assert _records(captured.out)[1]  # the segments so far


def test_a_stream_whose_timestamps_restart_goes_on_with_a_new_run_of_windows(checkpoint, monkeypatch, capsys, caplog):
    """Two MPEG-TS recordings back to back (a restarted camera): 3 s, then 2 s whose timestamps start again."""
    stream = mpegts_bytes(_frames(3.0, 25, 0), 25) + mpegts_bytes(_frames(2.0, 25, 1), 25)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stream)))
    assert main([str(checkpoint), "-", "--segments", "--json"]) == 0
    windows, segments = _records(capsys.readouterr().out)
    assert [w[:2] for w in windows] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)] and segments[-1][1] == 5
    assert "timestamps went back" in caplog.text


class SlowStandIn(GrowthStandIn):
    """The stand-in taking 0.3 s a window: slower than a source playing 1 s windows faster than real time."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        return super().forward(video)


@pytest.mark.parametrize("realtime", [True, False])
def test_realtime_drops_the_windows_a_slow_model_has_no_time_for_and_says_how_many(tmp_path, capsys, realtime):
    write_video(tmp_path / "long.mp4", render_video("growing", np.random.default_rng(0), 72, 72, 24 * 8, 24), 24)
    clips = STAND_IN_CLIPS
    classifier = Classifier(SlowStandIn(), SlowStandIn.classes, clips)
    out = io.StringIO()
    args = _segment_args(realtime=realtime)
    assert predict_segments(classifier, str(tmp_path / "long.mp4"), args, SegmentWriter("json", out))
    windows, segments = _records(out.getvalue())
    err = capsys.readouterr().err
    if not realtime:
        assert len(windows) == 8 and "dropped" not in err
        return
    dropped = int(re.search(r"dropped (\d+) windows", err).group(1))
    assert dropped >= 1 and len(windows) + dropped == 8 and windows[-1][:2] == (7, 8)  # the newest is kept
    assert [w[0] for w in windows] == sorted(w[0] for w in windows) and segments[-1][1] == 8


def _weights_in(path: Path) -> dict[str, torch.Tensor]:
    """The state dict a weight file holds: safetensors, a plain state dict or a zoo checkpoint's "model_state"."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, weights_only=True)
    return state.get("model_state", state)


# Each entry at its smallest input (frames, crop, short side): MViT's fixed 16 x 224, S3D's 224 px crop and 16
# frames, SlowFast's 8 fast frames; 2 x 32 elsewhere. The model and its stand-in weights are built for it alike.
PREDICT_INPUT = {"mvit_v2_s": (16, 224, 256), "s3d": (16, 224, 224), "slowfast_r50": (8, 32, 32)}


@pytest.mark.parametrize("name", [name for name, entry in BACKBONES.items() if entry.weights_url])
def test_every_pretrained_name_predicts_kinetics_classes_with_the_weights_served(
    name, tmp_path, videos, capsys, monkeypatch
):
    """`predict NAME` for every entry with weights, each file in its real format (PyTorchVideo's zoo checkpoint,
    torchvision's plain state dict, Hugging Face's safetensors), served on 127.0.0.1 and downloaded through the
    registry's path: the network predict runs holds the served tensors (its head, the file's projection), and
    it names Kinetics-400 classes. Each at its smallest input, for speed: the network and the stand-in weights are
    built for it alike, and the files' keys and formats are the same at any input."""
    frames, crop, short_side = PREDICT_INPUT.get(name, (2, 32, 32))
    small = dataclasses.replace(BACKBONES[name], num_frames=frames, crop_size=crop, short_side=short_side)
    monkeypatch.setitem(BACKBONES, name, small)
    weights = write_standin_weights(name, tmp_path / "served", seed=1)
    loaded = []

    def keep(*args, **kwargs) -> Classifier:  # the classifier predict runs
        loaded.append(pretrained_classifier(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr("video_processing.inference.predictions.pretrained_classifier", keep)
    with serve_directory(tmp_path / "served") as url:
        monkeypatch.setitem(BACKBONES, name, dataclasses.replace(small, weights_url=f"{url}/{weights.name}"))
        assert main([name, str(videos["mp4"]), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert len(record["top"]) == 5
    assert {entry["class"] for entry in record["top"]} <= set(kinetics400_classes())
    (classifier,) = loaded
    head, parts = small.head, classifier.module.model
    for key, tensor in _weights_in(weights).items():
        held = parts.head if key.startswith(f"{head}.") else parts.backbone
        torch.testing.assert_close(held.state_dict()[key.removeprefix(f"{head}.")], tensor, rtol=0, atol=0, msg=key)
