"""GPU decoding's split: workers plan clips exactly as the CPU path samples them; the main process decodes them.

Everything but NVDEC itself runs here on the CPU: the plans, the crops and flips of planned clips, and the
loader that decodes batches ahead in a thread (torchcodec on the CPU standing in for the GPU).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from tests.conftest import SMALL_DATA_KWARGS
from video_processing.datasets import RandomClipDataset, UniformClipsDataset
from video_processing.decoders import DecoderUnavailable
from video_processing.gpu_decode import PlanDecodingDataLoader, PlannedClipDecoder, decode_ahead
from video_processing.items import collate_clips
from video_processing.kinetics_module import KineticsDataModule
from video_processing.layouts import load_dataset
from video_processing.planning import PlannedRandomClipDataset, PlannedUniformClipsDataset, TrainClipPlanner
from video_processing.transforms import eval_preset, train_preset
from video_processing.video import decode_random_clip, decode_uniform_clips, open_video, random_clip_window, video_info

SIZES = dict(crop_size=48, min_short_side=56, max_short_side=64)
CLIP = dict(clip_duration_s=1.0, num_frames=4)


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
    planned = PlannedRandomClipDataset(records.train, planner=TrainClipPlanner(**SIZES, hflip_prob=0.5), **CLIP)
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
    planned = PlannedRandomClipDataset(records.train, planner=planner, **CLIP)
    cpu = RandomClipDataset(records.train, transform=train_preset(**SIZES, uint8=True), **CLIP)
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
    planned = PlannedUniformClipsDataset(records.val, **CLIP)
    cpu = UniformClipsDataset(records.val, crop_size=48, transform=eval_preset(crop_size=48, short_side=56), **CLIP)
    plans, expected = planned[1]["video"], cpu[1]["video"]
    assert len(plans) == len(expected) == len(decode_uniform_clips(records.val[1].path, 1.0, 4))
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    pixels = eval_preset(crop_size=48, short_side=56, uint8=True)
    for plan, clip in zip(plans, decode_uniform_clips(records.val[1].path, 1.0, 4), strict=True):
        assert plan.box is None and torch.equal(decoder.clip(plan, _frames_at(plan.path, plan.times)), pixels(clip))


def test_decode_ahead_gives_the_cpu_loaders_batches(records, torchcodec_ffmpeg):
    planned = PlannedRandomClipDataset(records.train, planner=TrainClipPlanner(**SIZES, hflip_prob=0.5), **CLIP)
    cpu = RandomClipDataset(records.train, transform=train_preset(**SIZES, uint8=True), **CLIP)
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)
    torch.manual_seed(0)
    decoded = list(decode_ahead(DataLoader(planned, batch_size=4, collate_fn=collate_clips), decoder, prefetch=2))
    torch.manual_seed(0)
    expected = list(DataLoader(cpu, batch_size=4, collate_fn=collate_clips))
    assert len(decoded) == len(expected) == 6
    for got, want in zip(decoded, expected, strict=True):
        assert isinstance(got["video"], torch.Tensor) and got["video_name"] == want["video_name"]
        assert got["video"].dtype == torch.uint8 and (got["video"].int() - want["video"].int()).abs().max() <= 1


def test_a_batch_holding_one_video_twice_decodes_every_clip_in_its_place(records, torchcodec_ffmpeg):
    """A substituted training video can recur in a batch, apart from its first place."""
    planned = PlannedRandomClipDataset(records.train, planner=TrainClipPlanner(**SIZES, hflip_prob=0.5), **CLIP)
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
    planned = PlannedUniformClipsDataset(records.val, **CLIP)
    decoder = PlannedClipDecoder("cpu", crop_size=48, short_side=56)  # the GPU's stand-in
    loader = PlanDecodingDataLoader(
        planned, batch_size=4, num_workers=1, collate_fn=collate_clips, clip_decoder=decoder
    )
    cpu = UniformClipsDataset(
        records.val, crop_size=48, transform=eval_preset(crop_size=48, short_side=56, uint8=True), **CLIP
    )
    expected = list(DataLoader(cpu, batch_size=4, collate_fn=collate_clips))
    decoded = list(loader)  # plans made in a forked worker, decoded here
    assert len(decoded) == len(expected) == 3
    for got, want in zip(decoded, expected, strict=True):
        assert got["video_index"].tolist() == want["video_index"].tolist()
        assert (got["video"].int() - want["video"].int()).abs().max() <= 1
