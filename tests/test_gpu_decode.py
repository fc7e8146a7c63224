"""GPU decoding's split: workers plan clips exactly as the CPU path samples them; the main process decodes them.

Run here on the CPU, torchcodec on the CPU standing in for NVDEC: the plans, the crops and flips of planned clips,
the loader that decodes batches ahead in threads, under a Trainer (fit, validate, predict, two DDP ranks, an epoch
left mid-way), and its failures (an undecodable video, out of memory, a CPU fallback, with stand-in decoders).
Not run here: NVDEC itself, the CUDA stream, and pinning to a real GPU (`benchmarks/` has the GPU check).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning import Callback, Trainer
from torch.utils.data import DataLoader

from tests.conftest import SMALL_DATA_KWARGS, break_frames, planned_on_cpu
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import reads
from video_processing.data.datasets import RandomClipDataset, WholeVideoDataset
from video_processing.data.decoders import DecoderUnavailable
from video_processing.data.gpu_decode import PlanDecodingDataLoader, PlannedClipDecoder, decode_ahead
from video_processing.data.items import collate_clips, no_clips
from video_processing.data.layouts import load_dataset
from video_processing.data.reads import TrainClipPlanner
from video_processing.data.transforms import eval_preset, train_preset
from video_processing.data.video import (
    decode_random_clip,
    decode_uniform_clips,
    open_video,
    plan_uniform_clips,
    random_clip_window,
    video_info,
)
from video_processing.kinetics_module import KineticsDataModule

REPO = Path(__file__).resolve().parents[1]
SIZES = dict(crop_size=48, min_short_side=56, max_short_side=64)
CLIP = dict(clip_duration_s=1.0, num_frames=4)


def planned_train(records, planner: TrainClipPlanner | None = None) -> RandomClipDataset:
    planner = planner or TrainClipPlanner(**SIZES, hflip_prob=0.5)
    return RandomClipDataset(records.train, partial(reads.planned_clip, planner=planner, **CLIP))


def planned_val(records) -> WholeVideoDataset:
    return WholeVideoDataset(records.val, partial(plan_uniform_clips, **CLIP), empty=[])


def cpu_train(records) -> RandomClipDataset:
    transform = train_preset(**SIZES, uint8=True)
    return RandomClipDataset(
        records.train, partial(reads.random_clip, decode=decode_random_clip, transform=transform, **CLIP)
    )


def cpu_val(records, *, uint8: bool) -> WholeVideoDataset:
    transform = eval_preset(crop_size=48, short_side=56, uint8=uint8)
    read = partial(reads.uniform_clips, decode=decode_uniform_clips, transform=transform, **CLIP)
    return WholeVideoDataset(records.val, read, empty=no_clips(4, 48))


@pytest.fixture(scope="module")
def records(small_dataset):
    return load_dataset(small_dataset)


def _frames_at(path, times):
    """Reference: every frame of the file decoded by PyAV, those presented at `times` picked out."""
    container = open_video(path)
    try:
        frames = {float(f.time): f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    finally:
        container.close()
    return torch.stack([torch.from_numpy(frames[t]).permute(2, 0, 1) for t in times])


def test_a_plan_holds_the_cpu_paths_window_and_frames(records):
    record = records.train[0]
    planned = planned_train(records)
    torch.manual_seed(3)
    plan = planned[0]["video"][0]
    container = open_video(record.path)
    duration_s = video_info(container).duration_s
    container.close()
    torch.manual_seed(3)
    assert plan.window == random_clip_window(duration_s, 1.0)  # the same draw
    torch.manual_seed(3)
    frames = decode_random_clip(record.path, 1.0, 4)
    assert torch.equal(_frames_at(record.path, plan.times), frames)  # the same kept frames
    assert (plan.height, plan.width) == frames.shape[-2:]


def test_planned_training_clips_equal_the_uint8_presets_clips(records):
    planner = TrainClipPlanner(**SIZES, hflip_prob=0.5)
    planned = planned_train(records, planner)
    cpu = cpu_train(records)
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    flips = set()
    for seed in range(6):  # crops and flips differ from seed to seed; each is the preset's
        torch.manual_seed(seed)
        plan = planned[seed]["video"][0]
        torch.manual_seed(seed)
        expected = cpu[seed]["video"][0]
        frames = _frames_at(plan.path, plan.times)
        assert torch.equal(decoder.clip(plan, frames), expected)
        flips.add(plan.flip)
    assert flips == {True, False}


def test_planned_validation_clips_equal_the_eval_presets_clips(records):
    planned = planned_val(records)
    cpu = cpu_val(records, uint8=False)
    plans, expected = planned[1]["video"], cpu[1]["video"]
    assert len(plans) == len(expected) == len(decode_uniform_clips(records.val[1].path, 1.0, 4))
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    pixels = eval_preset(crop_size=48, short_side=56, uint8=True)
    for plan, clip in zip(plans, decode_uniform_clips(records.val[1].path, 1.0, 4), strict=True):
        assert plan.box is None and torch.equal(decoder.clip(plan, _frames_at(plan.path, plan.times)), pixels(clip))


def test_decode_ahead_gives_the_cpu_loaders_batches(records, torchcodec_ffmpeg):
    planned = planned_train(records)
    cpu = cpu_train(records)
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    torch.manual_seed(0)
    decoded = list(decode_ahead(DataLoader(planned, batch_size=4, collate_fn=collate_clips), decoder))
    torch.manual_seed(0)
    expected = list(DataLoader(cpu, batch_size=4, collate_fn=collate_clips))
    assert len(decoded) == len(expected) == 6
    for got, want in zip(decoded, expected, strict=True):
        assert isinstance(got["video"], torch.Tensor) and got["video_name"] == want["video_name"]
        assert got["video"].dtype == torch.uint8 and (got["video"].int() - want["video"].int()).abs().max() <= 1


def test_a_batch_holding_one_video_twice_decodes_every_clip_in_its_place(records, torchcodec_ffmpeg):
    """A substituted training video can recur in a batch, apart from its first place."""
    planned = planned_train(records)
    items = [planned[0], planned[1], planned[0]]
    batch = collate_clips(items)
    decoded = PlannedClipDecoder("cpu", crop_size=48, short_side=56).decode_batch(batch)
    assert decoded["video"].shape == (3, 3, 4, 48, 48)
    for clip, item in zip(decoded["video"], items, strict=True):
        alone = PlannedClipDecoder("cpu", crop_size=48, short_side=56).decode_batch(collate_clips([item]))
        assert torch.equal(clip, alone["video"][0])


def test_gpu_decoding_without_a_gpu_fails_at_once_naming_the_option(small_dataset, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        DecoderUnavailable, match="--data.decoder_device cuda .* no CUDA GPU .* --data.decoder_device cpu"
    ):
        KineticsDataModule(str(small_dataset), **SMALL_DATA_KWARGS, decoder="torchcodec", decoder_device="cuda")


def test_workers_plan_and_the_main_process_decodes(records, torchcodec_ffmpeg):
    planned = planned_val(records)
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)  # the GPU's stand-in
    loader = PlanDecodingDataLoader(
        planned, batch_size=4, num_workers=1, collate_fn=collate_clips, clip_decoder=decoder
    )
    cpu = cpu_val(records, uint8=True)
    expected = list(DataLoader(cpu, batch_size=4, collate_fn=collate_clips))
    decoded = list(loader)  # plans made in a forked worker, decoded here
    assert len(decoded) == len(expected) == 3
    for got, want in zip(decoded, expected, strict=True):
        assert got["video_index"].tolist() == want["video_index"].tolist()
        assert (got["video"].int() - want["video"].int()).abs().max() <= 1


def _val_batch(records, indices):
    planned = planned_val(records)
    return collate_clips([planned[i] for i in indices])


def test_an_undecodable_video_leaves_its_batch_named_in_skipped(dataset_copy, torchcodec_ffmpeg):
    records = load_dataset(dataset_copy)
    broken = break_frames(records.val[1].path)
    batch = _val_batch(records, [0, 1, 2])  # planning reads packets only: the broken video plans
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    decoded = decoder.decode_batch(batch)
    assert [path for path, _ in decoded["skipped"]] == [str(broken)]
    assert "decoding failed" in decoded["skipped"][0][1]
    good = decoder.decode_batch(_val_batch(records, [0, 2]))
    assert len(decoded["video"]) == len(decoded["label"]) == len(decoded["video_name"]) == len(good["video"])
    assert torch.equal(decoded["video"], good["video"]) and torch.equal(decoded["label"], good["label"])
    assert decoded["video_index"].tolist() == good["video_index"].tolist() and 1 not in good["video_index"]


class _OutOfMemoryDecoder:
    """Stands in for torchcodec's VideoDecoder: opens, then runs out of memory decoding."""

    cpu_fallback = False

    def __init__(self, path, **kwargs):
        pass

    def get_frames_played_at(self, times):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_is_raised_as_itself_not_blamed_on_a_file(records, monkeypatch, torchcodec_ffmpeg):
    import torchcodec.decoders

    monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", _OutOfMemoryDecoder)
    batches = [_val_batch(records, [0, 1])]
    with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory"):  # from the decoding thread
        next(decode_ahead(batches, PlannedClipDecoder("cpu", crop_size=48, short_side=56)))


class _FellBackStatus:
    def __bool__(self):
        return True

    def __str__(self):
        return "[CUDA] Fallback status: Falling back due to: NVcuvid unavailable"


class _FallingBackDecoder(_OutOfMemoryDecoder):
    """Stands in for a VideoDecoder on "cuda" that decodes on the CPU, as when libnvcuvid is missing."""

    cpu_fallback = _FellBackStatus()


def test_a_cpu_fallback_on_a_gpu_stops_the_run_naming_the_cause_and_fix(records, monkeypatch, torchcodec_ffmpeg):
    import torchcodec.decoders

    monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", _FallingBackDecoder)
    decoder = PlannedClipDecoder("cuda:0", crop_size=48, short_side=56)  # no CUDA call comes before the check
    with pytest.raises(DecoderUnavailable) as failure:
        decoder.decode_batch(_val_batch(records, [0, 1]))
    message = str(failure.value)
    assert "NVcuvid unavailable" in message and str(records.val[0].path) in message
    assert "libnvcuvid" in message and "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video" in message


def test_an_index_less_cuda_device_is_pinned_to_the_ranks_gpu():
    decoder = PlannedClipDecoder("cuda", crop_size=48, short_side=56)
    decoder.pin(torch.device("cuda", 1))  # what the data module's setup passes: the Trainer's root device
    assert decoder.device == torch.device("cuda", 1)
    decoder.pin(torch.device("cuda", 0))
    assert decoder.device == torch.device("cuda", 1)  # a device with an index is kept
    cpu = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    cpu.pin(torch.device("cuda", 1))
    assert cpu.device == torch.device("cpu")


def test_the_data_modules_setup_pins_the_planned_decoder_to_the_trainers_device(small_dataset, torchcodec_ffmpeg):
    data = planned_on_cpu(small_dataset, **SMALL_DATA_KWARGS)
    data.source.clip_decoder.device = torch.device("cuda")  # index-less, as --data.decoder_device cuda gives it
    data.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 1)))
    data.setup("validate")  # no CUDA call: pinning only names the device
    assert data.source.clip_decoder.device == torch.device("cuda", 1)


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("plan-fetch", "plan-decode")]


def test_decode_ahead_releases_a_batch_without_waiting_for_the_next_plan(records, torchcodec_ffmpeg):
    release = threading.Event()

    def planned_batches():
        yield _val_batch(records, [0])
        release.wait(30)  # planning of the next batch stalls until the first decoded batch arrives
        yield _val_batch(records, [1])

    batches = decode_ahead(planned_batches(), PlannedClipDecoder("cpu", crop_size=48, short_side=56))
    first = next(batches)
    release.set()
    assert first["video_index"].tolist() == [0, 0] and next(batches)["video_index"].tolist() == [1, 1]
    batches.close()
    assert not _decode_threads()


class _ClipSkips(Callback):
    """Checks every batch's clips against its labels, and collects its skipped videos."""

    def __init__(self):
        self.skipped: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        assert len(batch["video"]) == len(batch["label"]) == len(batch["video_name"]) == len(batch["video_index"])
        assert batch["video"].dtype == torch.float32  # made float and normalized after the transfer
        self.skipped += [path for path, _ in batch["skipped"]]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.on_train_batch_start(trainer, pl_module, batch, batch_idx)


def _model() -> VideoClassificationLightningModule:
    return VideoClassificationLightningModule(num_classes=6, stem_dim_out=4, num_frames=4, crop_size=48)


def _trainer(**kwargs) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, **kwargs)


def test_a_trainer_fits_validates_and_predicts_from_the_planned_loader_past_a_broken_video(
    dataset_copy, caplog, torchcodec_ffmpeg
):
    records = load_dataset(dataset_copy)
    broken = {str(break_frames(records.train[5].path)), str(break_frames(records.val[3].path))}
    data = planned_on_cpu(dataset_copy, **{**SMALL_DATA_KWARGS, "batch_size": 4, "num_workers": 1})
    model, checks = _model(), _ClipSkips()
    with caplog.at_level(logging.WARNING, logger="video_processing"):
        _trainer(max_epochs=2, callbacks=[checks], enable_model_summary=False).fit(model, datamodule=data)
        (metrics,) = _trainer(callbacks=[checks]).validate(model, datamodule=data, verbose=False)
        predictions = _trainer(callbacks=[checks]).predict(model, datamodule=data)
    assert set(checks.skipped) == broken  # each epoch's batches name them
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped video")]
    assert len(warnings) == 2 and all(any(path in w for w in warnings) for path in broken)  # once each, in all
    assert "val_acc_top1" in metrics
    predicted = torch.cat([p["video_index"] for p in predictions]).unique().tolist()
    assert predicted == [i for i in range(len(records.val)) if i != 3]


def test_an_epoch_left_mid_way_ends_the_decode_threads(small_dataset, torchcodec_ffmpeg):
    data = planned_on_cpu(small_dataset, **{**SMALL_DATA_KWARGS, "batch_size": 2, "num_workers": 1})
    trainer = _trainer(max_epochs=3, limit_train_batches=2, limit_val_batches=1, enable_model_summary=False)
    trainer.fit(_model(), datamodule=data)  # each epoch leaves its loader after 2 of 12 batches
    assert trainer.fit_loop.total_batch_idx == 5
    assert not _decode_threads()


def test_two_ddp_ranks_decode_their_own_videos_past_a_broken_one(dataset_copy, tmp_path, torchcodec_ffmpeg):
    records = load_dataset(dataset_copy)
    broken = str(break_frames(records.val[2].path))
    model_args = dict(num_classes=6, stem_dim_out=4, num_frames=4, crop_size=48)
    torch.save(VideoClassificationLightningModule(**model_args).state_dict(), tmp_path / "weights.pt")
    data_args = {**SMALL_DATA_KWARGS, "batch_size": 4, "num_workers": 0}
    command = [sys.executable, str(REPO / "tests" / "planned_distributed_run.py"), str(tmp_path), str(dataset_copy)]
    command += [str(tmp_path / "weights.pt"), json.dumps(data_args), json.dumps(model_args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"skipped video {broken}: decoding failed" in run.stderr
    val = [json.loads((tmp_path / f"val_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert not set(val[0]) & set(val[1]) and set(val[0]) | set(val[1]) == set(range(len(records.val))) - {2}
    train = [json.loads((tmp_path / f"train_rank{rank}.json").read_text())["video_indices"] for rank in (0, 1)]
    assert not set(train[0]) & set(train[1]) and len(train[0]) + len(train[1]) == len(records.train)
    skipped = [json.loads((tmp_path / f"skipped_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert broken in skipped[0] + skipped[1]
