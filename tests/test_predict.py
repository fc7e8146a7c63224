"""predict: a checkpoint trained here; mp4 and avi files written here; top-k per file; one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from video_processing.backbones import BACKBONES, kinetics400_classes
from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule
from video_processing.predict import load_classifier, main, predict_video
from video_processing.standins import serve_directory, write_avi, write_standin_weights
from video_processing.transforms import eval_preset
from video_processing.video import decode_uniform_clips, write_video

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
    trainer = pl.Trainer(
        max_steps=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(root / "model.ckpt")
    return root / "model.ckpt"


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
    weights = write_standin_weights("x3d_xs", tmp_path / "served")
    with serve_directory(tmp_path / "served") as url:
        monkeypatch.setitem(
            BACKBONES, "x3d_xs", dataclasses.replace(BACKBONES["x3d_xs"], weights_url=f"{url}/{weights.name}")
        )
        assert main(["x3d_xs", str(videos["mp4"]), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert len(record["top"]) == 5
    assert {entry["class"] for entry in record["top"]} <= set(kinetics400_classes())
