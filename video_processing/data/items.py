"""The batch contract: what one video's item holds and how items become a batch.

An item is one video's clips and what they are; a batch is items concatenated (`collate_clips`):

    video        float (B, C, T, H, W), normalized; uint8 (B, C, T, H, W) while a data module sends uint8 batches
                 (`KineticsDataModule.uint8_batches`), made float on the batch's device by its
                 `on_after_batch_transfer` (without a Trainer: `data.device_transform(batch["video"])`)
    label        long (B,): the class of each clip's video
    video_name   list of B str: each clip's video, relative to the dataset folder
    video_index  long (B,): each clip's video, its position in the split (clips of one video share it)
    skipped      list of (path, reason): the videos that could not be read, reported and never raised

An item holds N clips of one video: N = 1 for training, N = the video's clips for validation, N = clips x crops
for the multi-view test, N = 0 for a video that could not be read. Items of planned clips (`reads.py`) hold
the clips' plans (a list of `video.PlannedClip`) as their "video" until the main process decodes them
(`gpu_decode.py`, `decoded_clips`). Datasets, shards, collate and the planned decoder build and read items only here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Clips = torch.Tensor | list  # a stack of clips (N, C, T, H, W), or a list of N clip plans


def make_item(video: Clips, *, label: int, video_name: str, video_index: int, skipped: Sequence = ()) -> dict:
    """The item of a video whose N clips (stacked, or planned) were read."""
    n = len(video)
    return {
        "video": video,
        "label": torch.full((n,), label),
        "video_name": [video_name] * n,
        "video_index": torch.full((n,), video_index),
        "skipped": list(skipped),
    }


def empty_item(video: Clips, path: str, reason: str) -> dict:
    """The item of a video that could not be read: no clips (`video` holds none), and (path, reason) in "skipped"."""
    return {
        "video": video,
        "label": torch.empty(0, dtype=torch.long),
        "video_name": [],
        "video_index": torch.empty(0, dtype=torch.long),
        "skipped": [(path, reason)],
    }


def no_clips(num_frames: int, crop_size: int) -> torch.Tensor:
    """The empty stack of clips of an unreadable video: (0, C, T, H, W)."""
    return torch.empty(0, 3, num_frames, crop_size, crop_size)


def collate_clips(items: list[dict]) -> dict:
    """Concatenate items' clips into one batch (see the module's docstring); plans are concatenated as a list."""
    videos = [item["video"] for item in items]
    if isinstance(videos[0], torch.Tensor):
        # an unreadable video's empty float stack would turn uint8 clips into float: leave empty stacks out
        video = torch.cat([v for v in videos if len(v)] or videos[:1])
    else:
        video = [plan for plans in videos for plan in plans]
    return {
        "video": video,
        "label": torch.cat([item["label"] for item in items]).long(),
        "video_name": [name for item in items for name in item["video_name"]],
        "video_index": torch.cat([item["video_index"] for item in items]).long(),
        "skipped": [entry for item in items for entry in item["skipped"]],
    }


def with_video(batch: dict, video: torch.Tensor) -> dict:
    """The batch with its clips replaced (made float on the device)."""
    return {**batch, "video": video}


def decoded_clips(batch: dict, video: torch.Tensor, kept: Sequence[int], skipped: Sequence = ()) -> dict:
    """A batch of plans, decoded: `video` holds the clips of the plans at positions `kept`; the other clips'
    labels and names are left out with them, and the videos that could not be decoded are added to "skipped"."""
    index = torch.tensor(kept, dtype=torch.long)
    return {
        "video": video,
        "label": batch["label"][index],
        "video_name": [batch["video_name"][i] for i in kept],
        "video_index": batch["video_index"][index],
        "skipped": batch["skipped"] + list(skipped),
    }
