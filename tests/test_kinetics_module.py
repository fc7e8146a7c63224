import json
import logging
import shutil

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import SMALL_DATA_KWARGS, write_clip
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import sources
from video_processing.data.transforms import multi_view_preset
from video_processing.data.video import decode_constant_clips
from video_processing.kinetics_module import KineticsDataModule
from video_processing.synthetic import CLASSES

# Training only, nothing written or printed: what the loader does is what these tests look at.
QUIET_TRAINING = dict(
    limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
)


def _data(path, **kwargs):
    return KineticsDataModule(str(path), **{**SMALL_DATA_KWARGS, "batch_size": 4, "num_workers": 0, **kwargs})


def test_batches_without_a_trainer(small_dataset):
    dm = _data(small_dataset)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 4, 48, 48) and batch["video"].dtype == torch.float32
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.long
    assert len(batch["video_name"]) == 4 and batch["video_name"][0].startswith("train/")
    assert batch["video_index"].dtype == torch.long and batch["skipped"] == []
    assert len(dm.train_dataloader()) == 6  # 24 videos in batches of 4: a length for the progress bar


def test_validation_batches_hold_every_clip_of_whole_videos(small_dataset):
    dm = _data(small_dataset)
    dm.setup("validate")
    batches = list(dm.val_dataloader())
    assert len(batches) == len(dm.val_dataloader()) == 3
    indices = torch.cat([b["video_index"] for b in batches])
    assert sorted(set(indices.tolist())) == list(range(12))  # every validation video, once
    for batch in batches:  # 2-3 s videos give two 1-s clips each, in the same batch
        counts = torch.bincount(batch["video_index"])
        assert set(counts[counts > 0].tolist()) == {2}
    again = list(dm.val_dataloader())
    assert all(torch.equal(a["video"], b["video"]) for a, b in zip(batches, again, strict=True))  # deterministic


def test_classes_are_sorted_and_shared(small_dataset):
    dm = _data(small_dataset)
    assert dm.classes == sorted(CLASSES) and dm.num_classes == len(CLASSES)


def _damage(root):
    """Empty, truncated, text named .mp4 and a 0.2-s clip, among the good training videos."""
    bad = root / "train" / CLASSES[0]
    (bad / "empty.mp4").write_bytes(b"")
    good = next(bad.glob("*.mp4")).read_bytes()
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 4])
    (bad / "text.mp4").write_text("just some text, not a video\n" * 10)
    write_clip(bad / "short.mp4", seconds=0.2)
    return {"empty.mp4", "truncated.mp4", "text.mp4", "short.mp4"}


def test_bad_files_are_skipped_and_named(dataset_copy):
    bad_names = _damage(dataset_copy)
    dm = _data(dataset_copy, batch_size=28)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    skipped = {p.rsplit("/", 1)[-1]: reason for p, reason in batch["skipped"]}
    # every bad file is reported by name (a truncated file may still give a clip from its first part)
    assert bad_names - {"truncated.mp4"} == set(skipped) - {"truncated.mp4"}
    assert "empty" in skipped["empty.mp4"] and "too short" in skipped["short.mp4"]
    assert "not a readable video" in skipped["text.mp4"]
    assert len(batch["video"]) == 28  # substitutes keep the batch full
    assert not any(name.rsplit("/", 1)[-1] in bad_names for name in batch["video_name"])


class _RecordVideos(pl.Callback):
    def __init__(self, out):
        self.out = out
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += batch["video_index"].tolist()

    def on_train_epoch_end(self, trainer, pl_module):
        path = self.out / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(self.seen))
        self.seen = []


def test_fit_logs_each_skipped_file_once(dataset_copy, caplog):
    bad_names = _damage(dataset_copy)
    dm = _data(dataset_copy, batch_size=8)
    model = VideoClassificationLightningModule(num_classes=dm.num_classes, stem_dim_out=4, num_frames=4, crop_size=48)
    trainer = pl.Trainer(max_epochs=2, **QUIET_TRAINING)
    with caplog.at_level(logging.WARNING, logger="video_processing"):
        trainer.fit(model, dm)
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped video")]
    for name in bad_names - {"truncated.mp4"}:
        assert sum(name in w for w in warnings) == 1, warnings
    assert trainer.callback_metrics["train_skipped_videos"] >= 3


def test_ddp_ranks_read_disjoint_videos(small_dataset, tmp_path):
    dm = _data(small_dataset, batch_size=3)
    model = VideoClassificationLightningModule(num_classes=dm.num_classes, stem_dim_out=4, num_frames=4, crop_size=48)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=2,
        callbacks=[_RecordVideos(tmp_path)],
        **QUIET_TRAINING,
    )
    trainer.fit(model, dm)
    for epoch in range(2):
        rank0, rank1 = (set(json.loads((tmp_path / f"rank{r}_epoch{epoch}.json").read_text())) for r in (0, 1))
        assert not rank0 & rank1
        assert rank0 | rank1 == set(range(24))


def test_transforms_on_device_give_uint8_batches_and_the_same_clips_and_views(small_dataset):
    batches, modules = {}, {}
    for on_device in (False, True):
        dm = modules[on_device] = _data(small_dataset, transforms_on_device=on_device)
        dm.setup("fit")
        torch.manual_seed(0)  # the same random clips, crops and flips
        loaders = dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()
        batches[on_device] = tuple(next(iter(loader)) for loader in loaders)
    assert modules[True].uint8_batches and not modules[False].uint8_batches
    for float_batch, uint8_batch in zip(batches[False], batches[True], strict=True):
        assert uint8_batch["video"].dtype == torch.uint8 and uint8_batch["video"].shape == float_batch["video"].shape
        assert uint8_batch["video_name"] == float_batch["video_name"]
        finished = modules[True].on_after_batch_transfer(uint8_batch, 0)  # what the Trainer does on the batch's device
        torch.testing.assert_close(finished["video"], float_batch["video"], rtol=0, atol=1e-6)
    float_video = batches[False][0]["video"]
    assert modules[False].on_after_batch_transfer(batches[False][0], 0)["video"] is float_video  # float clips pass


class _RecordInputs(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.dtype = batch["video"].dtype


def test_fit_normalizes_uint8_batches_on_the_device(small_dataset):
    dm = _data(small_dataset, transforms_on_device=True)
    model = VideoClassificationLightningModule(num_classes=dm.num_classes, stem_dim_out=4, num_frames=4, crop_size=48)
    record = _RecordInputs()
    trainer = pl.Trainer(max_steps=1, callbacks=[record], **QUIET_TRAINING)
    trainer.fit(model, dm)
    assert record.dtype == torch.float32 and trainer.global_step == 1


def test_predict_through_the_data_module_finishes_uint8_batches_and_a_bare_loader_is_refused(small_dataset):
    dm = _data(small_dataset, transforms_on_device=True)
    model = VideoClassificationLightningModule(num_classes=dm.num_classes, stem_dim_out=4, num_frames=4, crop_size=48)
    rows = pl.Trainer(**QUIET_TRAINING).predict(model, datamodule=dm)
    clips = sum(len(batch["label"]) for batch in dm.val_dataloader())  # the validation clips, each once
    assert sum(len(row["logits"]) for row in rows) == clips and rows[0]["logits"].dtype == torch.float32
    with pytest.raises(TypeError, match=r"uint8 clips reached the model.*datamodule=data"):
        pl.Trainer(**QUIET_TRAINING).predict(model, dataloaders=dm.val_dataloader())


def test_test_batches_hold_every_view_of_whole_videos(small_dataset):
    dm = _data(small_dataset, test_clips=3, test_crops=2)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert len(batches) == 3  # 12 validation videos, 4 per batch
    assert [len(b["video"]) for b in batches] == [4 * 3 * 2] * 3  # videos x clips x crops
    assert batches[0]["video"].shape[1:] == (3, 4, 48, 48)
    indices = torch.cat([b["video_index"] for b in batches])
    assert torch.equal(indices, torch.arange(12).repeat_interleave(6))  # each video's views together, once
    record = dm.test_set.records[0]  # views: clip by clip, the crops of a clip together
    clips = decode_constant_clips(record.path, 1.0, 4, clips_per_video=3)
    preset = multi_view_preset(crop_size=48, short_side=56, num_crops=2)
    assert torch.equal(batches[0]["video"][:6], torch.cat([preset(clip) for clip in clips]))


def test_skipped_files_are_warned_once_without_a_trainer(dataset_copy, caplog):
    bad_names = _damage(dataset_copy)
    dm = _data(dataset_copy, batch_size=28)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING, logger="video_processing"):
        for _ in range(2):  # two epochs of the loader, as the README iterates it
            for _batch in dm.train_dataloader():
                pass
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped video")]
    for name in bad_names - {"truncated.mp4"}:
        assert sum(name in w for w in warnings) == 1, warnings


def test_balanced_sampling_draws_the_classes_equally(dataset_copy):
    for path in sorted((dataset_copy / "train" / CLASSES[0]).glob("*.mp4"))[1:]:
        path.unlink()  # one video left in the first class, four in each other: 21 training videos
    dm = _data(dataset_copy, balanced_sampling=True, batch_size=7)
    dm.setup("fit")
    labels = torch.cat([batch["label"] for batch in dm.train_dataloader()])
    assert len(labels) == 21  # an epoch keeps its length
    counts = torch.bincount(labels, minlength=6)
    assert counts.max() - counts.min() <= 1  # 3 or 4 draws per class; unbalanced, class 0 would get one


@pytest.mark.parametrize("override, message", [({"test_clips": 0}, "test_clips=0"), ({"test_crops": 0}, "test_crops")])
def test_a_test_without_views_is_refused_in_setup(small_dataset, override, message):
    with pytest.raises(ValueError, match=message):
        _data(small_dataset, **override).setup("test")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"test_clips": -1}, r"test_clips=-1 .*pass --data\.test_clips 10 --data\.test_crops 3"),
        ({"decoder_device": "cuda"}, r"decoder_device cuda .*pass --data\.decoder torchcodec"),
        ({"decoder": "opencv"}, r"decoder must be one of \('pyav', 'torchcodec'\)"),
    ],
)
def test_settings_that_cannot_work_are_refused_when_the_module_is_made(small_dataset, override, message):
    with pytest.raises(ValueError, match=message):
        _data(small_dataset, **override)


def test_a_fit_without_test_views_trains_and_only_the_test_is_refused(small_dataset):
    dm = _data(small_dataset, test_clips=0, test_crops=0)
    model = VideoClassificationLightningModule(num_classes=dm.num_classes, stem_dim_out=4, num_frames=4, crop_size=48)
    trainer = pl.Trainer(max_steps=1, **QUIET_TRAINING)
    trainer.fit(model, dm)
    assert trainer.global_step == 1
    with pytest.raises(
        ValueError, match=r"test_clips=0 x test_crops=0 .*pass --data\.test_clips 10 --data\.test_crops 3"
    ):
        trainer.test(model, dm)


class _TestVideos(pl.Callback):
    def __init__(self):
        self.names: set[str] = set()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.names |= set(batch["video_name"])


def test_the_test_stage_takes_the_test_split_where_there_is_one_and_says_which(dataset_copy, monkeypatch):
    said = []
    monkeypatch.setattr(sources, "rank_zero_info", said.append)
    model = VideoClassificationLightningModule(num_classes=6, stem_dim_out=4, num_frames=4, crop_size=48)
    views = dict(test_clips=1, test_crops=1)
    tested = _TestVideos()
    pl.Trainer(callbacks=[tested], **QUIET_TRAINING).test(model, _data(dataset_copy, **views), verbose=False)
    assert tested.names == {str(p.relative_to(dataset_copy)) for p in (dataset_copy / "val").glob("*/*.mp4")}
    assert said == [f"test stage: {dataset_copy} has no test split, so the test takes the validation split (12 videos)"]
    for class_name in CLASSES[:2]:  # a test split of 2 classes x 2 videos
        (dataset_copy / "test" / class_name).mkdir(parents=True)
        for video in sorted((dataset_copy / "train" / class_name).glob("*.mp4"))[:2]:
            shutil.copy(video, dataset_copy / "test" / class_name / video.name)
    data, tested = _data(dataset_copy, **views), _TestVideos()
    assert data.video_counts == {"train": 24, "val": 12, "test": 4}
    pl.Trainer(callbacks=[tested], **QUIET_TRAINING).test(model, data, verbose=False)
    assert tested.names == {str(p.relative_to(dataset_copy)) for p in (dataset_copy / "test").glob("*/*.mp4")}
    assert said[-1] == f"test stage: the test split of {dataset_copy} (4 videos)"
