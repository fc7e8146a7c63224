import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from tests.conftest import SMALL_DATA_KWARGS
from video_processing.classification import (
    VideoClassificationLightningModule,
    average_per_video,
    make_kinetics_resnet,
)
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import make_dataset


@pytest.mark.parametrize(("num_frames", "crop_size"), [(8, 224), (4, 64), (16, 112), (3, 50)])
def test_head_fits_any_frame_count_and_crop(num_frames, crop_size):
    model = make_kinetics_resnet(num_classes=7, stem_dim_out=4, num_frames=num_frames, crop_size=crop_size)
    logits = model(torch.zeros(2, 3, num_frames, crop_size, crop_size))
    assert logits.shape == (2, 7)


def test_kinetics_resnet_size():
    full = sum(p.numel() for p in make_kinetics_resnet().parameters())
    thin = sum(p.numel() for p in make_kinetics_resnet(stem_dim_out=8).parameters())
    assert 31e6 < full < 33e6  # slow_r50: 32.5 M parameters
    assert thin < full / 40


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="crop_size=16: resnet needs a crop of at least 32 pixels"):
        make_kinetics_resnet(crop_size=16)


def test_average_per_video():
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    video_logits, labels = average_per_video(logits, torch.tensor([0, 0, 1]), torch.tensor([7, 7, 2]))
    # videos come out sorted by index: video 2, then video 7
    assert torch.equal(video_logits, torch.tensor([[0.0, 5.0], [2.0, 0.0]]))
    assert torch.equal(labels, torch.tensor([1, 0]))


class _ScoresAreTheInput(VideoClassificationLightningModule):
    """Returns its input as logits, so a test chooses every view's scores."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return video


def test_test_averages_softmax_scores_over_views_and_validation_averages_logits():
    # One video of class 1, three views: logits average to class 0 (mean 1.0 vs 0.67), softmax scores to
    # class 1 (0.497 vs 0.503, the first view's confidence capped at 1).
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    batch = {"video": logits, "label": torch.ones(3, dtype=torch.long), "video_index": torch.zeros(3), "skipped": []}
    model = _ScoresAreTheInput(num_classes=2, stem_dim_out=4, num_frames=1, crop_size=32)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader([batch], batch_size=None)  # the batch as it is
    (tested,) = trainer.test(model, loader, verbose=False)
    (validated,) = trainer.validate(model, loader, verbose=False)
    assert tested["test_video_acc_top1"] == 1.0 and validated["val_video_acc_top1"] == 0.0
    assert tested["test_acc_top1"] == validated["val_acc_top1"] == pytest.approx(2 / 3)  # per view: 2 of 3


def test_mean_class_accuracy_weighs_each_class_equally():
    # class 1: three clips, all right; class 0: one clip, wrong. Top-1 3/4, mean of the classes' (0 + 1) / 2.
    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([1, 1, 1, 0])
    batch = {"video": logits, "label": labels, "video_index": torch.arange(4), "skipped": []}
    model = _ScoresAreTheInput(num_classes=2, stem_dim_out=4, num_frames=1, crop_size=32)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(model, DataLoader([batch], batch_size=None), verbose=False)
    assert metrics["val_acc_top1"] == pytest.approx(3 / 4) and metrics["val_acc_mean_class"] == pytest.approx(1 / 2)


def test_multi_view_test_of_a_thin_model(small_dataset):
    dm = KineticsDataModule(str(small_dataset), **{**SMALL_DATA_KWARGS, "num_workers": 0, "test_clips": 2})
    model = VideoClassificationLightningModule(num_classes=6, stem_dim_out=4, num_frames=4, crop_size=48)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.test(model, datamodule=dm, verbose=False)
    names = ("acc_top1", "acc_top5", "acc_mean_class", "video_acc_top1", "video_acc_top5", "loss")
    assert {f"test_{name}" for name in names} <= metrics.keys()
    assert all(0 <= metrics[f"test_{name}"] <= 1 for name in names[:-1])
    assert metrics["test_video_acc_top5"] >= metrics["test_video_acc_top1"]


def test_class_names_must_match_num_classes():
    with pytest.raises(ValueError, match="2 class_names for num_classes=3"):
        VideoClassificationLightningModule(num_classes=3, class_names=["a", "b"])


def test_seed_train_example_constructs(monkeypatch, small_dataset):
    """The guide's train() builds everything with no arguments, and the pieces fit: the data module reads
    $KINETICS_DATA_PATH, its clips are the model's input, the model gives 400 Kinetics logits."""
    monkeypatch.setenv("KINETICS_DATA_PATH", str(small_dataset))
    classification_module = VideoClassificationLightningModule()
    data_module = KineticsDataModule()
    trainer = pl.Trainer(accelerator="auto", logger=False)
    data_module.setup("fit")
    assert data_module.source.location == small_dataset and data_module.num_classes == 6
    assert data_module.hparams.batch_size == 8
    frames, crop = data_module.hparams.num_frames, data_module.hparams.crop_size
    clip_shape = (3, frames, crop, crop)
    assert tuple(classification_module.example_input_array.shape[1:]) == clip_shape == (3, 8, 224, 224)
    with torch.no_grad():
        assert classification_module(torch.zeros(1, *clip_shape)).shape == (1, 400)
    expected = "CUDAAccelerator" if torch.cuda.is_available() else "CPUAccelerator"
    assert type(trainer.accelerator).__name__ == expected


def chance_of_at_least(correct: int, videos: int, num_classes: int) -> float:
    """P(X >= correct) for X ~ Binomial(videos, 1 / num_classes): how often a predictor that does not look at the
    videos (a random guess per video) gets at least `correct` of them right."""
    p = 1 / num_classes
    return sum(math.comb(videos, k) * p**k * (1 - p) ** (videos - k) for k in range(correct, videos + 1))


def test_short_fit_beats_chance(tmp_path_factory):
    """A short CPU fit on the medium self-made set (6 classes, 144 training and 96 validation videos) learns the
    motion classes: its multi-view video accuracy is one that random guessing (1/6 per video) reaches with a
    probability under 1e-4 (32 videos of 96; the fit gets 39-50 right over three seeds). Thin sizes (8 frames of
    32 x 32, stem width 8) buy the epochs; the validation videos are evaluated once, at the end, by `test`."""
    data_path = make_dataset(tmp_path_factory.mktemp("medium"), size="medium", seed=0, workers=2)
    pl.seed_everything(0, workers=True)
    dm = KineticsDataModule(
        str(data_path),
        clip_duration=1.5,
        num_frames=8,
        crop_size=32,
        min_short_side=36,
        max_short_side=44,
        batch_size=8,
        num_workers=0,
        test_clips=3,
        test_crops=1,
    )
    model = VideoClassificationLightningModule(
        num_classes=dm.num_classes, class_names=dm.classes, lr=5e-3, stem_dim_out=8, num_frames=8, crop_size=32
    )
    trainer = pl.Trainer(
        max_epochs=20,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path_factory.mktemp("fit"),
    )
    trainer.fit(model, dm)
    metrics = trainer.test(model, dm, verbose=False)[0]
    videos = len(dm.dataset.val)
    correct = round(metrics["test_video_acc_top1"] * videos)
    print(f"after 20 epochs: {correct} of {videos} validation videos right; {metrics}")
    assert videos == 96
    assert chance_of_at_least(correct, videos, dm.num_classes) < 1e-4
    assert model.hparams.class_names == dm.classes


def test_predict_step_returns_clip_logits_with_labels_and_video_index():
    module = VideoClassificationLightningModule(num_classes=3, stem_dim_out=4, num_frames=4, crop_size=32).eval()
    batch = {
        "video": torch.randn(5, 3, 4, 32, 32),
        "label": torch.arange(5) % 3,
        "video_index": torch.tensor([0, 0, 1, 1, 1]),
    }
    with torch.no_grad():
        rows = module.predict_step(batch, 0)
        torch.testing.assert_close(rows["logits"], module(batch["video"]))
    assert rows["label"].tolist() == [0, 1, 2, 0, 1] and rows["video_index"].tolist() == [0, 0, 1, 1, 1]
