"""GPU decoding (NVDEC) inside an ordinary DataLoader: workers plan clips on the CPU, the main process decodes them.

CUDA cannot start in forked loader workers, so the work is split:
1. Workers plan each clip, cheaply and on the CPU: the file, the kept frames' times (from packet timestamps, no
   decoding), the crop box and the flip. They draw random numbers in the order the CPU path does (window, then
   scale and crop, then flip), so with the same seed both paths sample the same clips.
2. The main process decodes the planned frames on the GPU with torchcodec and crops, resizes and flips them
   there (uint8), in a background thread on its own CUDA stream, `prefetch` batches ahead of the training step.
3. `KineticsDataModule.on_after_batch_transfer` converts the uint8 clips to float and normalizes them, as for
   any uint8 batch (`transforms.normalize_clips`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as F

from video_processing.datasets import RandomClipDataset, UniformClipsDataset
from video_processing.decoders import decode_planned
from video_processing.transforms import AsVideo, CropBox, RandomShortSideScaleCrop, ToCTHW, eval_preset, resized_crop
from video_processing.video import PlannedClip, plan_random_clip, plan_uniform_clips


@dataclass(frozen=True)
class ClipPlan:
    """A clip to decode and how to crop it: `box` None means the eval preset (short side, center crop)."""

    clip: PlannedClip
    box: CropBox | None = None
    flip: bool = False


class TrainClipPlanner:
    """PlannedClip -> ClipPlan with the train preset's random crop box and flip, drawn as the preset draws them."""

    def __init__(self, *, crop_size: int, min_short_side: int, max_short_side: int, hflip_prob: float):
        self.scale_crop = RandomShortSideScaleCrop(crop_size, min_short_side, max_short_side)
        self.hflip_prob = hflip_prob

    def __call__(self, clip: PlannedClip) -> ClipPlan:
        box = self.scale_crop.crop_box(clip.height, clip.width)
        flip = bool(torch.rand(1) < self.hflip_prob)  # as v2.RandomHorizontalFlip decides
        return ClipPlan(clip, box, flip)


def eval_clip_plan(clip: PlannedClip) -> ClipPlan:
    """The eval preset takes no random numbers: the plan is the clip itself."""
    return ClipPlan(clip)


def _plans(self, clips: list[PlannedClip]) -> list[ClipPlan]:
    return [self.transform(clip) for clip in clips]


class PlannedRandomClipDataset(RandomClipDataset):
    """`RandomClipDataset` whose items hold the clip's plan ("plans", a list of one ClipPlan) instead of pixels."""

    def __init__(self, records, *, planner: TrainClipPlanner, **kwargs):
        super().__init__(records, transform=planner, decode=plan_random_clip, **kwargs)

    item_key = "plans"
    _views = _plans


class PlannedUniformClipsDataset(UniformClipsDataset):
    """`UniformClipsDataset` whose items hold the video's clip plans ("plans") instead of pixels."""

    def __init__(self, records, **kwargs):
        super().__init__(records, transform=eval_clip_plan, decode=plan_uniform_clips, **kwargs)

    item_key = "plans"
    _views = _plans

    def _no_views(self) -> list:
        return []


class PlannedClipDecoder:
    """Decodes a batch's planned clips on `device` into uint8 (B, C, T, crop_size, crop_size), as the presets crop.

    Args:
        device: where torchcodec decodes and the clips are cropped ("cuda": NVDEC; "cpu" works too); check it
            first with `decoders.check_decoder("torchcodec", device)`.
        crop_size, short_side: the presets' sizes; `short_side` is the eval preset's.
    """

    def __init__(self, device: str | torch.device, *, crop_size: int, short_side: int):
        self.device = torch.device(device)
        self.crop_size = crop_size
        self.eval_pixels = eval_preset(crop_size=crop_size, short_side=short_side, uint8=True)

    def clip(self, plan: ClipPlan, frames: torch.Tensor) -> torch.Tensor:
        """Decoded frames (T, C, H, W) -> the cropped uint8 clip (C, T, crop_size, crop_size)."""
        if plan.box is None:
            return self.eval_pixels(frames)
        video = resized_crop(AsVideo()(frames), plan.box, self.crop_size)
        return ToCTHW()(F.horizontal_flip(video) if plan.flip else video)

    def decode_batch(self, batch: dict) -> dict:
        """The batch with "plans" replaced by "video", its decoded clips on `device`."""
        clips = []
        # one decoder per run of plans of one file (a video's uniform clips), in the batch's order
        for _, run in itertools.groupby(batch["plans"], key=lambda plan: plan.clip.path):
            group = list(run)
            frames = decode_planned([p.clip for p in group], self.device)
            clips += [self.clip(p, f) for p, f in zip(group, frames, strict=True)]
        shape = (0, 3, 0, self.crop_size, self.crop_size)
        video = torch.stack(clips) if clips else torch.empty(shape, dtype=torch.uint8, device=self.device)
        return {"video": video, **{k: v for k, v in batch.items() if k != "plans"}}


def decode_ahead(batches: Iterable[dict], clip_decoder: PlannedClipDecoder, prefetch: int = 2) -> Iterator[dict]:
    """Batches of planned clips -> the same batches decoded, `prefetch` ahead, in a background thread.

    On a GPU the thread decodes on its own CUDA stream while the training step runs on the default stream.
    """
    device = clip_decoder.device
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    pending: deque = deque()
    with ThreadPoolExecutor(1, thread_name_prefix="gpu-decode") as pool:
        for batch in batches:
            pending.append(pool.submit(_decode_on, clip_decoder, batch, stream))
            if len(pending) > prefetch:
                yield _ready(pending.popleft().result(), stream)
        while pending:
            yield _ready(pending.popleft().result(), stream)


def _decode_on(clip_decoder: PlannedClipDecoder, batch: dict, stream: torch.cuda.Stream | None) -> dict:
    if stream is None:
        return clip_decoder.decode_batch(batch)
    with torch.cuda.stream(stream):
        decoded = clip_decoder.decode_batch(batch)
    stream.synchronize()  # the clips are complete before the training step's stream reads them
    return decoded


def _ready(batch: dict, stream: torch.cuda.Stream | None) -> dict:
    if stream is not None:  # memory made on the decode stream, used on the step's: keep it until both finish
        batch["video"].record_stream(torch.cuda.current_stream(batch["video"].device))
    return batch
