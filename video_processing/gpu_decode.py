"""Decoding planned clips in the main process (NVDEC on a GPU), inside an ordinary DataLoader.

CUDA cannot start in forked loader workers, so the work is split:
1. Workers plan each clip, cheaply and on the CPU (`planning.py`): the file, the kept frames' times, the crop box
   and the flip.
2. The main process decodes the planned frames with torchcodec on `PlannedClipDecoder`'s device and crops,
   resizes and flips them there (uint8), in a background thread on its own CUDA stream, `prefetch` batches ahead
   of the training step (`PlanDecodingDataLoader`).
3. `KineticsDataModule.on_after_batch_transfer` converts the uint8 clips to float and normalizes them, as for
   any uint8 batch (`transforms.normalize_clips`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torchvision.transforms.v2 import functional as F

from video_processing.decoders import decode_planned
from video_processing.items import with_video
from video_processing.loaders import HintingDataLoader
from video_processing.transforms import AsVideo, ToCTHW, eval_preset, resized_crop
from video_processing.video import PlannedClip


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

    def clip(self, plan: PlannedClip, frames: torch.Tensor) -> torch.Tensor:
        """Decoded frames (T, C, H, W) -> the cropped uint8 clip (C, T, crop_size, crop_size)."""
        if plan.box is None:
            return self.eval_pixels(frames)
        video = resized_crop(AsVideo()(frames), plan.box, self.crop_size)
        return ToCTHW()(F.horizontal_flip(video) if plan.flip else video)

    def decode_batch(self, batch: dict) -> dict:
        """The batch with its plans replaced by their decoded clips on `device`."""
        clips = []
        # one decoder per run of plans of one file (a video's uniform clips), in the batch's order
        for _, run in itertools.groupby(batch["video"], key=lambda plan: plan.path):
            group = list(run)
            frames = decode_planned(group, self.device)
            clips += [self.clip(p, f) for p, f in zip(group, frames, strict=True)]
        shape = (0, 3, 0, self.crop_size, self.crop_size)
        video = torch.stack(clips) if clips else torch.empty(shape, dtype=torch.uint8, device=self.device)
        return with_video(batch, video)


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


class PlanDecodingDataLoader(HintingDataLoader):
    """A loader of planned clips (`planning.py`) whose batches arrive decoded on `clip_decoder`'s device."""

    def __init__(self, *args, clip_decoder: PlannedClipDecoder, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_decoder = clip_decoder

    def __iter__(self):
        return decode_ahead(super().__iter__(), self.clip_decoder)
