"""Decoding planned clips in the main process (NVDEC on a GPU), inside an ordinary DataLoader.

CUDA cannot start in forked loader workers, so the work is split:
1. Workers plan each clip, cheaply and on the CPU (`reads.py`): the file, the kept frames' times, the crop box
   and the flip.
2. The main process decodes the planned frames with torchcodec on `PlannedClipDecoder`'s device and crops,
   resizes and flips them there (uint8), in a background thread on its own CUDA stream, batches ahead of the
   training step, while a second thread fetches the next planned batches (`PlanDecodingDataLoader`).
3. `KineticsDataModule.on_after_batch_transfer` converts the uint8 clips to float and normalizes them, as for
   any uint8 batch (`transforms.normalize_clips`).

A video that fails to decode is dropped from its batch and named in the batch's "skipped", as the workers do on
the CPU path; running out of GPU memory, or torchcodec decoding on the CPU instead of NVDEC, stops the run.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Iterator
from contextlib import closing

import torch
from torchvision.transforms.v2 import functional as F

from video_processing.data.decoders import decode_planned
from video_processing.data.handover import Handover
from video_processing.data.items import decoded_clips
from video_processing.data.loaders import HintingDataLoader, warn_skipped
from video_processing.data.transforms import AsVideo, ToCTHW, clip_augmentation, eval_preset, resized_crop
from video_processing.data.video import PlannedClip, VideoError


class PlannedClipDecoder:
    """Decodes a batch's planned clips on `device` into uint8 (B, C, T, crop_size, crop_size), as the presets crop.

    Args:
        device: where torchcodec decodes and the clips are cropped ("cuda": NVDEC; "cpu" works too); check it
            first with `decoders.check_decoder("torchcodec", device)`. An index-less "cuda" is pinned to one GPU
            (`pin`) before the first batch.
        crop_size, short_side: the presets' sizes; `short_side` is the eval preset's.
        augment: the training clips' augmentation, as in the train preset (`transforms.clip_augmentation`),
            applied to the uint8 clip on `device` after the crop and flip.
    """

    def __init__(self, device: str | torch.device, *, crop_size: int, short_side: int, augment: str | None = None):
        self.device = torch.device(device)
        self.crop_size = crop_size
        self.augmentation = clip_augmentation(augment)
        self.eval_pixels = eval_preset(crop_size=crop_size, short_side=short_side, uint8=True)
        self.nvdec_checked = False  # torchcodec's CPU fallback is ruled out on the first file decoded

    def pin(self, device: torch.device | None = None) -> None:
        """Give an index-less "cuda" its GPU: `device` (the Trainer's root device: each DDP rank its own GPU),
        else the current one (call it in the thread that set it, as Lightning and torchrun scripts do)."""
        if self.device.type != "cuda" or self.device.index is not None:
            return
        if device is not None and device.type == "cuda":
            self.device = device
        elif device is None:
            self.device = torch.device("cuda", torch.cuda.current_device())

    def clip(self, plan: PlannedClip, frames: torch.Tensor) -> torch.Tensor:
        """Decoded frames (T, C, H, W) -> the cropped uint8 clip (C, T, crop_size, crop_size)."""
        if plan.box is None:
            return self.eval_pixels(frames)
        video = resized_crop(AsVideo()(frames), plan.box, self.crop_size)
        video = F.horizontal_flip(video) if plan.flip else video
        return ToCTHW()(self.augmentation(video) if self.augmentation else video)

    def decode_batch(self, batch: dict) -> dict:
        """The batch with its plans replaced by their decoded clips on `device`; the clips of a video that fails
        to decode are left out (with their labels and names) and the video is added to "skipped"."""
        clips, kept, skipped = [], [], []
        # one decoder per run of plans of one file (a video's uniform clips), in the batch's order
        positions = itertools.count()
        for _, run in itertools.groupby(batch["video"], key=lambda plan: plan.path):
            group = list(run)
            places = [next(positions) for _ in group]
            try:
                frames = decode_planned(group, self.device, check_nvdec=not self.nvdec_checked)
            except VideoError as e:
                skipped.append((e.path, e.reason))
                continue
            self.nvdec_checked = True
            clips += [self.clip(p, f) for p, f in zip(group, frames, strict=True)]
            kept += places
        shape = (0, 3, 0, self.crop_size, self.crop_size)
        video = torch.stack(clips) if clips else torch.empty(shape, dtype=torch.uint8, device=self.device)
        return decoded_clips(batch, video, kept, skipped)


def decode_ahead(batches: Iterable[dict], clip_decoder: PlannedClipDecoder) -> Iterator[dict]:
    """Batches of planned clips -> the same batches decoded, ahead of the caller, by two background threads: one
    fetches planned batches (from the loader's workers), one decodes them, so neither waits on the other
    (`handover.Handover`: a batch in each hand-over's slot, one in each thread's hands).

    On a GPU the decoding thread works on its own CUDA stream while the training step runs on the default stream.
    Errors in either thread are raised here. Closing the iterator (or dropping it) ends both threads.
    """
    clip_decoder.pin()  # here, in the caller's thread, whose current GPU is this rank's
    stream = torch.cuda.Stream(clip_decoder.device) if clip_decoder.device.type == "cuda" else None
    decoded = Handover(_decoded(batches, clip_decoder, stream), drop=False, name="plan-decode", wait=True)
    with closing(iter(decoded)) as ready:
        for batch in ready:
            yield _ready(batch, stream)


def _decoded(batches: Iterable[dict], clip_decoder: PlannedClipDecoder, stream) -> Iterator[dict]:
    """Planned batches fetched in their own thread, decoded in this one."""
    fetched = Handover(iter(batches), drop=False, name="plan-fetch", wait=True)
    with closing(iter(fetched)) as planned:
        for batch in planned:
            yield _decode_on(clip_decoder, batch, stream)


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
    """A loader of planned clips (`reads.py`) whose batches arrive decoded on `clip_decoder`'s device.

    Videos that failed to decode are warned about once per file, as the loader warns about those its workers
    skipped.
    """

    def __init__(self, *args, clip_decoder: PlannedClipDecoder, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_decoder = clip_decoder
        self._decoding = lambda: None  # a weak reference to the current epoch's batches: dropping them ends it

    def __iter__(self):
        if (left := self._decoding()) is not None:
            # an epoch left mid-way (limit_train_batches): its threads end before the workers are reused
            left.close()
        batches = self._decode()
        self._decoding = weakref.ref(batches)
        return batches

    def _decode(self) -> Iterator[dict]:
        with closing(decode_ahead(super().__iter__(), self.clip_decoder)) as batches:
            for batch in batches:
                warn_skipped(batch, self.warned_paths)
                yield batch
