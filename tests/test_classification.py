import pytest
import pytorch_lightning as pl
import torch

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
    with pytest.raises(ValueError, match="crop_size=16: resnet downsamples by 32"):
        make_kinetics_resnet(crop_size=16)


def test_average_per_video():
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    video_logits, labels = average_per_video(logits, torch.tensor([0, 0, 1]), torch.tensor([7, 7, 2]))
    # videos come out sorted by index: video 2, then video 7
    assert torch.equal(video_logits, torch.tensor([[0.0, 5.0], [2.0, 0.0]]))
    assert torch.equal(labels, torch.tensor([1, 0]))


def test_class_names_must_match_num_classes():
    with pytest.raises(ValueError, match="2 class_names for num_classes=3"):
        VideoClassificationLightningModule(num_classes=3, class_names=["a", "b"])


def test_seed_train_example_constructs(monkeypatch, tmp_path):
    """The seed README's train() builds everything with no arguments."""
    monkeypatch.setenv("KINETICS_DATA_PATH", str(tmp_path))
    classification_module = VideoClassificationLightningModule()
    data_module = KineticsDataModule()
    trainer = pl.Trainer(logger=False)
    assert classification_module.hparams.num_classes == 400
    assert data_module.data_path == tmp_path and data_module.batch_size == 8
    assert trainer is not None


def test_short_fit_beats_chance(tmp_path_factory):
    """A short CPU fit (the demo's sizes) on the medium self-made set learns the motion classes: at least twice
    chance (1/6) on the validation videos. Seeded and single-process, so the run repeats exactly."""
    data_path = make_dataset(tmp_path_factory.mktemp("medium"), size="medium", seed=0, workers=1)
    pl.seed_everything(0, workers=True)
    dm = KineticsDataModule(
        str(data_path),
        clip_duration=1.5,
        num_frames=8,
        crop_size=64,
        min_short_side=64,
        max_short_side=80,
        batch_size=8,
        num_workers=0,
    )
    model = VideoClassificationLightningModule(
        num_classes=dm.num_classes, class_names=dm.classes, lr=5e-3, stem_dim_out=8, num_frames=8, crop_size=64
    )
    trainer = pl.Trainer(
        max_epochs=15,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path_factory.mktemp("fit"),
    )
    trainer.fit(model, dm)
    metrics = trainer.validate(model, dm, verbose=False)[0]
    print(f"validation after 15 epochs: {metrics}")
    assert metrics["val_acc_top1"] >= 2 / 6
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
