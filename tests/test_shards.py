"""shards.py: writing the self-made set as LitData shards and training from them as from the files."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import get_worker_info

from tests.conftest import SMALL_DATA_KWARGS, write_clip
from tests.test_reliability import DATA_ARGS as TINY_DATA_ARGS
from tests.test_reliability import MODEL_ARGS as TINY_MODEL_ARGS
from tests.test_reliability import write_tiny_dataset
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import shards
from video_processing.data.layouts import LayoutError
from video_processing.data.loaders import LoaderError
from video_processing.kinetics_module import KineticsDataModule
from video_processing.lessons import runs
from video_processing.prepare import FAILURES_CSV, main
from video_processing.synthetic import CLASSES

REPO = Path(__file__).resolve().parents[1]
QUIET = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
MODEL_ARGS = dict(num_classes=len(CLASSES), class_names=sorted(CLASSES), stem_dim_out=4, num_frames=4, crop_size=48)


@pytest.fixture(scope="module")
def small_shards(small_dataset, tmp_path_factory) -> Path:
    """The small self-made set as shards, the videos' bytes as they are, chunks of ~4 videos."""
    out = tmp_path_factory.mktemp("shards") / "small"
    handler = signal.getsignal(signal.SIGINT)
    assert shards.write_shards(small_dataset, out, chunk_bytes="200KB", workers=1) == []
    # LitData's writer leaves a Ctrl-C handler that exits with status 0: writing must put ours back
    assert signal.getsignal(signal.SIGINT) is handler
    return out


def _data(path, **kwargs) -> KineticsDataModule:
    return KineticsDataModule(str(path), **{**SMALL_DATA_KWARGS, "batch_size": 4, "num_workers": 0, **kwargs})


class RecordVideos(pl.Callback):
    def __init__(self):
        self.batches: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch["video_index"].tolist())


def test_prepare_writes_shards_lists_failures_and_keeps_finished_splits(dataset_copy, tmp_path, capsys):
    bad = dataset_copy / "train" / CLASSES[0]
    (bad / "text.mp4").write_text("just some text, not a video\n" * 10)
    (bad / "empty.mp4").write_bytes(b"")
    out = tmp_path / "shards"
    args = [str(dataset_copy), str(out), "--format", "shards", "--workers", "1", "--short-side", "48"]
    with pytest.raises(SystemExit):
        main(args)
    with open(out / FAILURES_CSV) as f:
        failed = {Path(row["path"]).name: row["reason"] for row in csv.DictReader(f)}
    assert set(failed) == {"text.mp4", "empty.mp4"} and "empty" in failed["empty.mp4"]
    info = shards.read_info(out)
    assert info.classes == sorted(CLASSES) and info.videos == {"train": 24, "val": 12}
    assert all(min(h.width, h.height) == 48 and h.codec == "h264" for h in info.headers)  # re-encoded
    capsys.readouterr()
    with pytest.raises(SystemExit):  # a rerun keeps both finished splits and reports the same failures
        main(args)
    assert capsys.readouterr().out.count("already written: kept") == 2
    assert (out / FAILURES_CSV).is_file()


def test_a_folder_of_shards_is_recognised_and_an_unfinished_one_refused(small_shards, small_dataset, tmp_path):
    assert shards.is_shard_location(small_shards) and not shards.is_shard_location(small_dataset)
    assert shards.is_shard_location("s3://bucket/kinetics") and shards.is_shard_location("local:/data/shards")
    (tmp_path / shards.METADATA).write_text((small_shards / shards.METADATA).read_text())
    with pytest.raises(FileNotFoundError, match=r"train/index\.json is missing"):
        _data(tmp_path).setup("fit")


@pytest.mark.parametrize(
    "override",
    [{"decoder": "torchcodec"}, {"decoder_device": "cuda"}, {"decoder": "torchcodec", "decoder_device": "cuda"}],
)
def test_shards_refuse_another_decoder_once_naming_what_works(small_shards, override):
    """One message, whichever decoder option is set: leave both at their defaults, or decode from the files."""
    with pytest.raises(ValueError, match=r"decoded from memory with PyAV.*leave both at their defaults.*video files"):
        _data(small_shards, **override)


def test_shards_answer_what_the_data_module_asks_of_a_file_layout(small_shards, small_dataset):
    """Classes and videos per split from shards.json; the list of files, which shards do not keep, refused."""
    from_shards, from_files = _data(small_shards), _data(small_dataset)
    assert from_shards.video_counts == from_files.video_counts == {"train": 24, "val": 12}
    assert from_shards.classes == from_files.classes
    with pytest.raises(LayoutError, match=r"holds shards, which keep no list of video files.*data\.video_counts"):
        from_shards.dataset  # noqa: B018
    run = replace(runs.CPU, **SMALL_DATA_KWARGS, max_epochs=1)  # the sizes the data modules serve
    for data in (from_shards, from_files):  # the estimate times real steps, so only the counts are compared
        assert "over 24 training and 12 validation videos" in runs.describe_training(run, data, cuda=False)


def test_a_test_split_is_written_and_tested_from_the_shards(dataset_copy, tmp_path):
    (dataset_copy / "test" / CLASSES[0]).mkdir(parents=True)
    for video in sorted((dataset_copy / "val" / CLASSES[0]).glob("*.mp4")):
        video.rename(dataset_copy / "test" / CLASSES[0] / video.name)  # the test split: 2 videos of one class
    assert shards.write_shards(dataset_copy, tmp_path / "shards", chunk_bytes="200KB", workers=1) == []
    data = _data(tmp_path / "shards", test_clips=1, test_crops=1)
    assert data.video_counts == {"train": 24, "val": 10, "test": 2}
    data.setup("test")
    names = {name for batch in data.test_dataloader() for name in batch["video_name"]}
    assert names == {str(p.relative_to(dataset_copy)) for p in (dataset_copy / "test").glob("*/*.mp4")}


def test_shards_refuse_balanced_sampling_naming_what_works(small_shards):
    with pytest.raises(ValueError, match=r"drop --data\.balanced_sampling, or train from the video files"):
        _data(small_shards, balanced_sampling=True)


def test_prepare_shards_with_only_crf_re_encodes(small_dataset, tmp_path):
    import litdata

    out = tmp_path / "shards"
    main([str(small_dataset), str(out), "--format", "shards", "--workers", "1", "--crf", "45"])
    sample = litdata.StreamingDataset(str(out / "train"))[0]
    original = (small_dataset / sample["name"]).read_bytes()
    assert len(bytes(sample["video"])) < len(original)  # re-encoded at a lower quality, not the file's bytes


@pytest.mark.parametrize("stage", ["validate", "test"])
def test_validation_and_test_batches_equal_the_file_layouts(small_shards, small_dataset, stage):
    """The same clips (test: the same clips x crops), decoded from the shards' bytes, transformed alike, in the same
    batch format."""
    views = dict(test_clips=2, test_crops=2)
    from_files, from_shards = _data(small_dataset, **views), _data(small_shards, **views)
    assert from_shards.classes == from_files.classes
    from_files.setup(stage)
    from_shards.setup(stage)

    def loader(dm):
        return dm.val_dataloader() if stage == "validate" else dm.test_dataloader()

    assert len(loader(from_shards)) == len(loader(from_files)) == 3

    def clips(dm) -> dict[tuple[int, str], list[torch.Tensor]]:
        by_video = {}
        for batch in loader(dm):
            for index, name, clip in zip(
                batch["video_index"].tolist(), batch["video_name"], batch["video"], strict=True
            ):
                by_video.setdefault((index, name), []).append(clip)
        return by_video

    file_clips, shard_clips = clips(from_files), clips(from_shards)
    assert {len(views) for views in file_clips.values()} == ({2 * 2} if stage == "test" else {2})
    assert {index for index, _ in shard_clips} == set(range(12)) and set(shard_clips) == set(file_clips)
    assert all(torch.equal(torch.stack(shard_clips[key]), torch.stack(file_clips[key])) for key in file_clips)
    batches = list(loader(from_shards))
    assert all(b["video"].dtype == torch.float32 and b["label"].dtype == torch.long for b in batches)


def test_training_batches_have_the_file_format_and_a_length(small_shards):
    dm = _data(small_shards)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 6
    assert all(b["video"].shape == (4, 3, 4, 48, 48) and b["skipped"] == [] for b in batches)
    assert all(name.startswith("train/") for b in batches for name in b["video_name"])
    order = [i for b in batches for i in b["video_index"].tolist()]
    assert sorted(order) == list(range(24))
    second_epoch = [i for b in loader for i in b["video_index"].tolist()]
    assert sorted(second_epoch) == list(range(24)) and second_epoch != order  # reshuffled every epoch


def test_unreadable_samples_are_skipped_and_named_once(dataset_copy, tmp_path, caplog):
    """A 0.2-s clip opens (so it is written) but holds no clip: training skips it and names its path."""
    write_clip(dataset_copy / "train" / CLASSES[0] / "short.mp4", seconds=0.2)
    out = tmp_path / "shards"
    assert shards.write_shards(dataset_copy, out, chunk_bytes="200KB", workers=1) == []
    dm = _data(out, batch_size=5)
    model = VideoClassificationLightningModule(**MODEL_ARGS)
    trainer = pl.Trainer(max_epochs=2, limit_val_batches=0, enable_checkpointing=False, **QUIET)
    with caplog.at_level(logging.WARNING, logger="video_processing"):
        trainer.fit(model, dm)
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped video")]
    assert len(warnings) == 1 and f"train/{CLASSES[0]}/short.mp4: too short" in warnings[0]
    assert trainer.callback_metrics["train_skipped_videos"] == 1


def test_shard_loaders_warn_without_a_trainer_and_explain_a_stalled_worker(dataset_copy, tmp_path, caplog, monkeypatch):
    write_clip(dataset_copy / "train" / CLASSES[0] / "short.mp4", seconds=0.2)
    out = tmp_path / "shards"
    assert shards.write_shards(dataset_copy, out, chunk_bytes="200KB", workers=1) == []
    dm = _data(out, batch_size=5)
    dm.setup("fit")
    with caplog.at_level(logging.WARNING, logger="video_processing"):
        for _ in range(2):  # two epochs, iterated as the README iterates a loader
            for _batch in dm.train_dataloader():
                pass
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped video")]
    assert len(warnings) == 1 and "short.mp4: too short" in warnings[0]

    read = shards.sample_item

    def stall_in_workers(sample, **kwargs):
        if get_worker_info() is not None:
            time.sleep(4)  # just past the timeout: the worker wakes and exits once the loader has failed
        return read(sample, **kwargs)

    monkeypatch.setattr(shards, "sample_item", stall_in_workers)
    stalling = _data(out, num_workers=1, loader_timeout_s=2)
    stalling.setup("fit")
    with pytest.raises(LoaderError, match=r"within loader_timeout_s=2 s.*raise --data\.loader_timeout_s"):
        next(iter(stalling.train_dataloader()))


def _fit_accuracy(data_path: Path) -> float:
    pl.seed_everything(0, workers=True)
    dm = KineticsDataModule(str(data_path), **TINY_DATA_ARGS)
    model = VideoClassificationLightningModule(**TINY_MODEL_ARGS, lr=5e-3)
    pl.Trainer(max_epochs=4, enable_checkpointing=False, limit_val_batches=0, **QUIET).fit(model, dm)
    return pl.Trainer(**QUIET).validate(model, dm, verbose=False)[0]["val_acc_top1"]


def test_training_from_shards_reaches_the_accuracy_of_the_files(tmp_path):
    """Same seed and sizes, on the brightness set (3 classes, learnt in a few epochs): the random clips and the
    order differ (LitData shuffles chunks, then videos in them), the accuracy band holds."""
    # 8 training videos per class: with 4, 12 steps of this 4-channel model end anywhere from 0.6 to 1.0 by order
    files = write_tiny_dataset(tmp_path / "files", train_per_class=8)
    assert shards.write_shards(files, tmp_path / "shards", chunk_bytes="100KB", workers=1) == []
    from_files, from_shards = _fit_accuracy(files), _fit_accuracy(tmp_path / "shards")
    print(f"validation clip accuracy after 4 epochs: files {from_files:.3f}, shards {from_shards:.3f}")
    assert from_files >= 2 / 3 and from_shards >= 2 / 3  # twice chance
    assert abs(from_files - from_shards) <= 0.2


class Preempted(RuntimeError):
    """Stands for a job killed mid-epoch."""


class StopAt(pl.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Preempted(f"stopped at step {self.step}")


def _resumable_fit(data_path: Path, root: Path, callbacks: list, ckpt_path: str | None = None) -> None:
    dm = _data(data_path, num_workers=1)
    checkpoints = ModelCheckpoint(dirpath=root, every_n_train_steps=2, save_last=True, save_top_k=0)
    trainer = pl.Trainer(max_epochs=1, limit_val_batches=0, callbacks=[checkpoints, *callbacks], **QUIET)
    trainer.fit(VideoClassificationLightningModule(**MODEL_ARGS), dm, ckpt_path=ckpt_path)


def test_a_fit_resumed_mid_epoch_reads_the_videos_it_had_not_read(small_shards, tmp_path):
    """6 steps of 4 videos; stopped after step 5, resumed from the checkpoint of step 4 with --ckpt_path last."""
    whole = _data(small_shards, num_workers=1)
    whole.setup("fit")
    order = [batch["video_index"].tolist() for batch in whole.train_dataloader()]  # an uninterrupted epoch
    stopped = RecordVideos()
    with pytest.raises(Preempted):
        _resumable_fit(small_shards, tmp_path / "run", [stopped, StopAt(5)])
    saved = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 4 and saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    resumed = RecordVideos()
    _resumable_fit(small_shards, tmp_path / "run", [resumed], ckpt_path="last")
    assert stopped.batches == order[:5]
    assert resumed.batches == order[4:]


def test_two_ranks_read_disjoint_videos_and_validate_as_one_process(small_shards, tmp_path):
    """DDP on 2 CPU processes (gloo) from the shards: each rank half of the training videos, validation once."""
    model = VideoClassificationLightningModule(**MODEL_ARGS)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    data_args = {**SMALL_DATA_KWARGS, "batch_size": 3, "num_workers": 0}
    command = [sys.executable, str(REPO / "tests" / "distributed_run.py"), str(tmp_path), str(small_shards)]
    command += [str(tmp_path / "weights.pt"), json.dumps(data_args), json.dumps(MODEL_ARGS)]
    run = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, capture_output=True)
    assert run.returncode == 0, run.stderr[-3000:].decode()

    single = pl.Trainer(**QUIET).validate(model, KineticsDataModule(str(small_shards), **data_args), verbose=False)
    ddp = json.loads((tmp_path / "val.json").read_text())
    for name in ("val_loss", "val_acc_top1", "val_video_acc_top1"):
        assert ddp[name] == pytest.approx(single[0][name], abs=1e-5), name
    videos = [json.loads((tmp_path / f"train_rank{rank}.json").read_text())["video_indices"] for rank in (0, 1)]
    assert len(videos[0]) == len(videos[1]) == 12 and not set(videos[0]) & set(videos[1])
    assert set(videos[0]) | set(videos[1]) == set(range(24))


def test_a_url_is_downloaded_into_the_cache_and_streamed(small_shards, tmp_path):
    """LitData's "local:" URLs go through the same download-and-cache path as s3:// and gs://."""
    cache = tmp_path / "cache"
    dm = _data(f"local:{small_shards}", cache_dir=str(cache))
    assert dm.source.location == f"local:{small_shards}" and dm.classes == sorted(CLASSES)
    dm.setup("fit")
    indices = [i for batch in dm.train_dataloader() for i in batch["video_index"].tolist()]
    assert sorted(indices) == list(range(24))
    cached = {p.name for p in cache.rglob("chunk-*.bin")}
    assert cached and cached <= {p.name for p in (small_shards / "train").glob("chunk-*.bin")}


@pytest.fixture
def s3_bucket(monkeypatch):
    """An S3-compatible server (moto) on 127.0.0.1 with an empty bucket; boto3 and LitData are pointed at it."""
    import boto3
    import litdata.streaming.downloader
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in dict(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    ).items():
        monkeypatch.setenv(name, value)
    # LitData's fast S3 client (obstore) takes https only unless told otherwise; a real bucket is https
    monkeypatch.setitem(litdata.streaming.downloader._OBSTORE_CLIENT_OPTIONS, "allow_http", "true")
    client = boto3.client("s3")
    client.create_bucket(Bucket="videos")
    yield client
    server.stop()


def test_an_s3_bucket_on_this_machine_is_streamed_through_the_cache(small_shards, s3_bucket, tmp_path):
    for path in small_shards.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            s3_bucket.upload_file(str(path), "videos", f"kinetics/{path.relative_to(small_shards)}")
    cache = tmp_path / "cache"
    dm = _data("s3://videos/kinetics", cache_dir=str(cache))
    assert dm.classes == sorted(CLASSES)
    dm.setup("fit")
    indices = [i for batch in dm.train_dataloader() for i in batch["video_index"].tolist()]
    assert sorted(indices) == list(range(24))
    assert {p.name for p in cache.rglob("chunk-*.bin")}  # the chunks were downloaded into the cache
    names = {name for batch in dm.val_dataloader() for name in batch["video_name"]}
    assert len(names) == 12 and all(name.startswith("val/") for name in names)
