"""The source of shards (`shards.py`): streaming splits whose samples are decoded from memory with PyAV in the
loader workers, giving the same items as the file sources; the training stream's position is resumable."""

from __future__ import annotations

from functools import cached_property

import torch
from torch.utils.data import DataLoader, Dataset

from video_processing.data import shards
from video_processing.data.source import ClipSettings, Source
from video_processing.data.video import VideoInfo


class ShardSource(Source):
    """Shards in a folder or at a bucket URL; streamed splits are shuffled and shared out over ranks by LitData.

    Refuses, naming what works instead, the settings that need video files: another decoder or GPU decoding
    (shards hold bytes decoded from memory with PyAV), and balanced sampling (the stream sets the order).
    """

    def __init__(
        self,
        location: str,
        clips: ClipSettings,
        *,
        cache_dir: str | None,
        decoder: str,
        decoder_device: str,
        balanced_sampling: bool,
    ):
        if decoder != "pyav" or torch.device(decoder_device).type != "cpu":
            raise ValueError(
                f"shards ({location}) are decoded from memory with PyAV on the CPU, so --data.decoder {decoder} "
                f"--data.decoder_device {decoder_device} cannot read them: leave both at their defaults (pyav, cpu), "
                "or train from the video files (`python -m video_processing.prepare SRC DST` writes them) to decode "
                "with torchcodec or on the GPU"
            )
        if balanced_sampling:
            raise ValueError(
                f"balanced_sampling draws videos by label from a file layout; shards ({location}) are shuffled by "
                "the stream: drop --data.balanced_sampling, or train from the video files to balance the classes"
            )
        super().__init__(location, clips)
        self.cache_dir = cache_dir
        self._train_stream = None
        self._train_stream_state = None

    @cached_property
    def info(self) -> shards.ShardsInfo:
        return shards.read_info(self.location, self.cache_dir)

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def headers(self) -> list[VideoInfo]:
        return self.info.headers  # a sample written into shards.json

    def _sizes(self) -> dict:
        return dict(
            clip_duration_s=self.clips.clip_duration, num_frames=self.clips.num_frames, crop_size=self.clips.crop_size
        )

    def make_train_set(self) -> Dataset:
        to_item = shards.RandomClipFromSample(**self._sizes(), transform=self.clips.train_transform())
        return shards.streaming_split(self.location, "train", to_item, shuffle=True, cache_dir=self.cache_dir)

    def make_val_set(self) -> Dataset:
        to_item = shards.UniformClipsFromSample(**self._sizes(), transform=self.clips.eval_transform())
        return shards.streaming_split(self.location, "val", to_item, shuffle=False, cache_dir=self.cache_dir)

    def make_test_set(self) -> Dataset:
        to_item = shards.MultiViewClipsFromSample(
            **self._sizes(), transform=self.clips.test_transform(), clips_per_video=self.clips.test_clips
        )
        return shards.streaming_split(self.location, "val", to_item, shuffle=False, cache_dir=self.cache_dir)

    def train_loader(self) -> DataLoader:
        self._train_stream = self._loader(self.train_set)  # a stream's position within the epoch is saved
        self._resume_train_stream()
        return self._train_stream

    def val_loader(self) -> DataLoader:
        return self._loader(self.val_set)  # the stream shares out whole videos itself

    def test_loader(self) -> DataLoader:
        return self._loader(self.test_set)

    def _loader(self, dataset: Dataset) -> DataLoader:
        return shards.streaming_loader(
            dataset,
            batch_size=self.clips.batch_size,
            num_workers=self.clips.num_workers,
            timeout_s=self.clips.loader_timeout_s,
            warned_paths=self.warned_paths,
        )

    # Lightning 2.6 saves a stateful train loader's state_dict in the fit loop's checkpoint state, but restores
    # it only into a loader made after the checkpoint is read; the learning-rate schedule's
    # `estimated_stepping_batches` makes the loader before. The data module's own state is restored in time.
    def state_dict(self) -> dict:
        return {"train_stream": self._train_stream.state_dict()} if self._train_stream is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._train_stream_state = state_dict.get("train_stream")
        if self._train_stream is not None:  # strategies that restore after making loaders
            self._resume_train_stream()

    def _resume_train_stream(self) -> None:
        if self._train_stream_state is not None:
            self._train_stream.load_state_dict(self._train_stream_state)
            self._train_stream_state = None
