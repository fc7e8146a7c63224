"""Kinetics as LitData shards: each video's encoded bytes, label and header facts in chunks, streamed to training.

A shard folder (local, or a bucket URL such as s3://bucket/kinetics) holds:

    shards.json          the class list, how many videos each split holds, and a sample of header facts
    train/, val/         LitData chunks (`litdata.optimize`): one sample per readable video
    test/                the same, where the source dataset has a test split

A sample is the video file's bytes (re-encoded or as they were), never decoded frames, so shards stay the size
of the videos. Training decodes them from memory with the same decoder (`video.py`) and the same reads
(`reads.py`, through `sample_item`) as the file layouts; `StreamingDataset` gives each rank and node a disjoint
share, reshuffles every epoch and saves its position for a mid-epoch resume; URLs are downloaded chunk by chunk
into a local cache.

Samples: index (the video's position in its split, the batches' video_index), name (its path relative to the
source dataset, the name errors give), label, video (bytes), duration_s, fps, width, height, codec.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from video_processing.data.datasets import Read, read_item, video_name
from video_processing.data.items import Clips, collate_clips, empty_item
from video_processing.data.layouts import VideoRecord, check_splits, load_dataset
from video_processing.data.loaders import Hinting
from video_processing.data.video import EncodedVideo, VideoError, VideoInfo, open_video, video_info

if TYPE_CHECKING:
    import litdata

METADATA = "shards.json"
# Where LitData streams from object storage; "local:/path" reads a folder through the same download-and-cache path.
REMOTE_PREFIXES = ("s3://", "gs://", "azure://", "r2://", "local:")
# Header facts kept in shards.json per split, for the data module's clip checks before training.
HEADER_SAMPLES_PER_SPLIT = 16

Encoder = Callable[[Path], bytes]


def _litdata():
    """LitData, imported where shards are used: the file layouts work without it (an optional extra)."""
    try:
        import litdata
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "shards need LitData: pip install 'video-classification[shards]' (or pip install litdata)"
        ) from None
    return litdata


def is_remote(location: str | Path) -> bool:
    return str(location).startswith(REMOTE_PREFIXES)


def is_shard_location(location: str | Path) -> bool:
    """True for a bucket URL or a folder that holds shards.json."""
    return is_remote(location) or (Path(location) / METADATA).is_file()


# --- writing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardJob:
    """One video to put in a shard."""

    index: int
    path: Path
    name: str
    label: int
    failures_file: Path


def file_bytes(path: Path) -> bytes:
    """The video as it is on disk (the default encoder: no re-encoding)."""
    return path.read_bytes()


def shard_sample(job: ShardJob, encode: Encoder = file_bytes) -> dict | None:
    """The sample of one video, or None after appending (name, reason) to the job's failures file.

    Runs in LitData's worker processes, which cannot hand failures back: a line appended to a file per split
    is the report. The header is read from the bytes that go into the shard, so a sample that cannot be opened
    from memory never enters one.
    """
    try:
        data = encode(job.path)
        container = open_video(EncodedVideo(job.name, data))
        try:
            info = video_info(container)
        finally:
            container.close()
    except Exception as e:  # one bad file must not stop a run over a whole dataset
        reason = e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"
        with open(job.failures_file, "a") as f:  # one short line per write: appends from workers do not mix
            f.write(json.dumps([str(job.path), reason]) + "\n")
        return None
    return {"index": job.index, "name": job.name, "label": job.label, "video": data, **asdict(info)}


def write_shards(
    src: str | Path,
    dst: str | Path,
    *,
    encode: Encoder = file_bytes,
    chunk_bytes: str = "256MB",
    workers: int = 1,
) -> list[tuple[Path, str]]:
    """Write the dataset at `src` (any supported layout) as shards in `dst`; return (path, reason) of failures.

    `encode` gives the bytes stored for a video file (module-level function or partial: it runs in worker
    processes). A split whose index.json exists is kept, so a run stopped in the second split only writes
    that one again; an unfinished split is written anew. shards.json is written last: its presence marks a
    finished folder.
    """
    src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().resolve()
    dataset = load_dataset(src)
    check_splits(dataset, src)  # what training will ask of the shards, told before hours of writing
    dst.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    for split in dataset.splits():
        failures += _write_split(dataset.split(split), src, dst, split, encode, chunk_bytes, workers)
    _write_metadata(dst, dataset.classes, dataset.splits())
    return failures


def _write_split(
    records: list[VideoRecord], src: Path, dst: Path, split: str, encode: Encoder, chunk_bytes: str, workers: int
) -> list[tuple[Path, str]]:
    out, failures_file = dst / split, dst / f".{split}_failures.jsonl"
    if (out / "index.json").is_file():
        print(f"{out} already written: kept")
        return _read_failures(failures_file)
    shutil.rmtree(out, ignore_errors=True)
    failures_file.unlink(missing_ok=True)
    failures_file.touch()
    jobs = [ShardJob(i, r.path, video_name(r.path, src), r.label, failures_file) for i, r in enumerate(records)]
    # The layouts list videos class by class, and streaming shuffles only chunks and the videos within one:
    # without mixing here, a batch would hold a handful of classes.
    random.Random(0).shuffle(jobs)
    print(f"writing {len(jobs)} {split} videos to {out}")
    with _sigint_kept():
        _optimize(jobs, out, encode, chunk_bytes, workers)
    return _read_failures(failures_file)


@contextmanager
def _sigint_kept() -> Iterator[None]:
    """LitData's writer installs a Ctrl-C handler that ends the process with status 0 and never removes it."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


def _optimize(jobs: list[ShardJob], out: Path, encode: Encoder, chunk_bytes: str, workers: int) -> None:
    _litdata().optimize(
        fn=partial(shard_sample, encode=encode),
        inputs=jobs,
        output_dir=str(out),
        chunk_bytes=chunk_bytes,
        num_workers=min(workers, len(jobs)),
        # fork: a spawned worker imports torch anew, seconds per worker; nothing here has started threads yet
        start_method="fork",
        verbose=True,
    )


def _read_failures(failures_file: Path) -> list[tuple[Path, str]]:
    if not failures_file.is_file():
        return []
    return [(Path(path), reason) for path, reason in map(json.loads, failures_file.read_text().splitlines())]


def _write_metadata(dst: Path, classes: list[str], splits: tuple[str, ...]) -> None:
    """shards.json: classes, videos per split, and header facts of a spread of samples."""
    counts, headers = {}, []
    for split in splits:
        samples = _litdata().StreamingDataset(str(dst / split))
        counts[split] = len(samples)
        step = max(1, len(samples) // HEADER_SAMPLES_PER_SPLIT)
        for i in range(0, len(samples), step)[:HEADER_SAMPLES_PER_SPLIT]:
            sample = samples[i]
            headers.append({field: sample[field] for field in VideoInfo.__dataclass_fields__})
    metadata = {"classes": classes, "videos": counts, "headers": headers}
    (dst / METADATA).write_text(json.dumps(metadata, indent=1) + "\n")


# --- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardsInfo:
    """What shards.json says: the class list, videos per split, header facts of a sample of videos."""

    classes: list[str]
    videos: dict[str, int]
    headers: list[VideoInfo]


def read_info(location: str | Path, cache_dir: str | Path | None = None) -> ShardsInfo:
    """shards.json of a shard folder or URL (downloaded into `cache_dir`, or a temporary folder)."""
    location = str(location).rstrip("/")
    if is_remote(location):
        _litdata()
        from litdata.streaming.downloader import get_downloader

        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            local = str(Path(tmp, METADATA))
            try:
                get_downloader(location, tmp, []).download_file(f"{location}/{METADATA}", local)
                text = Path(local).read_text()
            except Exception as e:
                raise FileNotFoundError(
                    f"cannot read {location}/{METADATA} ({type(e).__name__}: {e}); write shards with "
                    "`python -m video_processing.prepare SRC DST --format shards` and copy DST there"
                ) from None
    else:
        text = (Path(location) / METADATA).read_text()
    metadata = json.loads(text)
    headers = [VideoInfo(**header) for header in metadata["headers"]]
    return ShardsInfo(metadata["classes"], metadata["videos"], headers)


def sample_item(sample: dict, *, read: Read, empty: Clips) -> dict:
    """A shard sample -> the item a file dataset gives for the same video, its clips read from the sample's bytes
    by `read` (`reads.py`). A stream cannot hand out another video in its place: one that cannot be read gives an
    item of `empty` clips, named in "skipped"."""
    video = EncodedVideo(sample["name"], bytes(sample["video"]))
    return read_item(
        read, video, empty=empty, label=sample["label"], video_name=sample["name"], video_index=sample["index"]
    )


def streaming_split(
    location: str | Path,
    split: str,
    to_item: Callable[[dict], dict],
    *,
    shuffle: bool,
    cache_dir: str | Path | None = None,
) -> litdata.StreamingDataset:
    """The split's samples as a StreamingDataset of items (see `items.py`), shared out over ranks and workers.

    Shuffling reorders chunks and the samples inside them, differently every epoch and the same on every rank
    (LitData's fixed seed), so ranks keep disjoint shares. Under DDP, LitData drops the last few training
    samples that would leave ranks with unequal numbers of batches.
    """
    split_location = f"{str(location).rstrip('/')}/{split}"
    if not is_remote(location) and not (Path(location) / split / "index.json").is_file():
        raise FileNotFoundError(f"{split_location}/index.json is missing: the shard folder is incomplete")
    return _damage_skipping_dataset()(
        split_location,
        cache_dir=None if cache_dir is None else str(cache_dir),
        shuffle=shuffle,
        drop_last=None if shuffle else False,
        transform=to_item,
    )


def _read_or_skip(self, index):
    """A sample of a damaged chunk (zeroed, truncated) becomes an item skipped like an unreadable video, naming the
    chunk, so training goes on with the others and counts what it lost. The chunk's other samples are then skipped
    at once (a truncated local chunk would otherwise be waited for, sample by sample)."""
    chunk = getattr(index, "chunk_index", None)
    damaged = self.__dict__.setdefault("_damaged_chunks", {})
    if chunk not in damaged:
        try:
            return _litdata().StreamingDataset.__getitem__(self, index)
        except (RuntimeError, OSError, struct.error, ValueError, EOFError) as e:  # LitData's chunk errors
            if chunk is None:
                raise
            name = self.cache._reader.config._chunks[chunk]["filename"]
            detail = str(e).split(". ")[0] or type(e).__name__
            damaged[chunk] = (f"{self.input_dir.url or self.input_dir.path}/{name}", f"damaged shard chunk ({detail})")
    to_item = self.transform[-1] if isinstance(self.transform, list) else self.transform  # LitData may list it
    return empty_item(to_item.keywords["empty"], *damaged[chunk])  # to_item: partial(sample_item, ..., empty=)


def _next_past_damage(self):
    """LitData maps the next chunks ahead when it starts a chunk (local folders): a damaged one fails there, before
    its samples are read. The sample in hand is read nonetheless; the damaged chunk's own samples are then skipped
    by `_read_or_skip`."""
    try:
        return _litdata().StreamingDataset.__next__(self)
    except (RuntimeError, OSError, struct.error, ValueError, EOFError):
        if not self.upcoming_indexes:  # not the look-ahead: the error is the sample's own
            raise
        return _litdata().StreamingDataset.__next__(self)


@cache
def _damage_skipping_dataset() -> type:
    """LitData's StreamingDataset with `_read_or_skip` (made on first use: litdata is an optional extra); found by
    pickle through the module's `__getattr__`."""
    return type("DamageSkippingStreamingDataset", (_litdata().StreamingDataset,), {
        "__getitem__": _read_or_skip, "__next__": _next_past_damage, "__module__": __name__
    })  # fmt: skip


def __getattr__(name: str):
    if name == "DamageSkippingStreamingDataset":
        return _damage_skipping_dataset()
    raise AttributeError(name)


def streaming_loader(
    dataset: litdata.StreamingDataset,
    *,
    batch_size: int,
    num_workers: int,
    timeout_s: float,
    warned_paths: set[str] | None = None,
) -> litdata.StreamingDataLoader:
    """Batches of `collate_clips` from a streaming split; its state_dict is the position within the epoch.

    Workers are started anew every epoch (not persistent): a persistent worker's copy of the dataset would
    miss the next epoch's shuffle. A stalled or dead worker raises `loaders.LoaderError` with a hint, and
    skipped videos are warned about once per file, as with the file layouts' loaders.
    """
    return _hinting_streaming_loader()(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available(),
        timeout=timeout_s if num_workers > 0 else 0,
        warned_paths=warned_paths,
    )


@cache
def _hinting_streaming_loader() -> type:
    """LitData's StreamingDataLoader with `loaders.Hinting` (made on first use: litdata is an optional extra)."""
    return type("HintingStreamingDataLoader", (Hinting, _litdata().StreamingDataLoader), {})
