"""Download a small public action dataset and arrange it in the class-folder layout.

    python -m video_processing.download ucf101-subset --out data/ucf101_subset [--url URL] [--sha256 HEX]
    ensure_dataset("ucf101-subset", "data/ucf101_subset")  # the same from Python: the folder, ready to train on

The archive is downloaded once into <out>/.downloads/ with a progress bar (a read waits at most --timeout-s; a
stalled or cut download is retried --retries times, continuing where it stopped), its size and sha256 are checked, and
every video named in UCF101's convention, v_<Class>_g<group>_c<clip>.avi, is written to <out>/train/<Class>/ or
<out>/val/<Class>/. The split follows UCF101's official split 1 (groups 1-7 are its test list): all clips of a
group (one actor and scene) land in the same split, so validation never sees a training group's scene. Any
split the archive itself carries is ignored for that reason. A finished extraction is recorded in <out>/.extracted
(the archive's sha256), so later runs reuse the folder without the network; an interrupted one is redone.

A dataset whose sha256 is not pinned in ARCHIVES is downloaded but not extracted: the error gives the file's
sha256, to be checked and passed with --sha256 (or pinned in ARCHIVES).
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from video_processing.data.downloads import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, fetch, sha256_of

logger = logging.getLogger("video_processing")

UCF101_NAME = re.compile(r"v_(?P<label>[A-Za-z0-9]+)_g(?P<group>\d+)_c(?P<clip>\d+)\.avi")
# UCF101's official split 1 tests on groups 1-7 and trains on groups 8-25.
VAL_GROUPS = frozenset(range(1, 8))
# Written last, holding the archive's sha256: its presence means the extraction finished.
EXTRACTED_MARKER = ".extracted"


@dataclass(frozen=True)
class RemoteArchive:
    """Where a dataset archive lives, the sha256 it must have (None: not pinned yet) and its size in bytes."""

    url: str
    sha256: str | None
    about: str
    size_bytes: int | None = None


ARCHIVES: dict[str, RemoteArchive] = {
    "ucf101-subset": RemoteArchive(
        url="https://huggingface.co/datasets/sayakpaul/ucf101-subset/resolve/main/UCF101_subset.tar.gz",
        # From the dataset's file page. Despite its name the file is an uncompressed tar.
        sha256="e9fcc76af48d320be88c5265f2e0576ecd615956976f6ce4742fdf2b042b71eb",
        about="10 UCF101 classes, 405 clips (the subset used by Hugging Face's video tutorial)",
        size_bytes=171_386_880,
    ),
}


class ChecksumError(RuntimeError):
    """The downloaded archive's size or sha256 is not the expected one, or no sha256 is known."""


def verify(path: Path, expected: str | None, size_bytes: int | None = None) -> None:
    """Raise ChecksumError unless `path` has `size_bytes` (if given) and sha256 `expected`.

    A wrong file is deleted, so a rerun downloads it again; an unchecked one (no sha256 known) is kept.
    """
    actual_size = path.stat().st_size
    if size_bytes is not None and actual_size != size_bytes:
        path.unlink()
        raise ChecksumError(
            f"{path.name}: {actual_size:,} bytes, expected {size_bytes:,}: the download was cut short or the file "
            "changed at its source. It was deleted; rerun to download it again."
        )
    actual = sha256_of(path)
    if expected is None:
        raise ChecksumError(
            f"no sha256 is pinned for {path.name}, whose sha256 is {actual}. Check it against the source, "
            f"then rerun with --sha256 {actual} (the download is kept)."
        )
    if actual != expected.lower():
        path.unlink()
        raise ChecksumError(
            f"{path.name}: sha256 {actual} differs from the expected {expected}: the download is corrupt or "
            "the file changed at its source. It was deleted; rerun to download it again."
        )


def _archive_files(archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """(name, opener) of every regular file in a tar (any compression) or zip archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: z.open(info)
    else:
        # "r:*" detects the compression from the bytes, not the name: the UCF101 subset's .tar.gz is a plain tar.
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, lambda member=member: tar.extractfile(member)


def extract_ucf101(archive: Path, out: Path) -> Counter:
    """Write the archive's UCF101-named videos to out/{train,val}/<Class>/, split by group; count per split.

    Destination paths are built from the matched file name only, so no archive path can escape `out`. A clip
    name that occurs twice is written once, with a warning naming both members.
    """
    counts: Counter = Counter()
    written: dict[Path, str] = {}
    for name, opener in _archive_files(archive):
        match = UCF101_NAME.fullmatch(Path(name).name)
        if match is None:
            continue
        split = "val" if int(match["group"]) in VAL_GROUPS else "train"
        target = out / split / match["label"] / match.group(0)
        if target in written:  # two members for one clip: the first is kept, and both are named
            logger.warning("%s holds %s twice (%s and %s): kept the first", archive, target.name, written[target], name)
            continue
        written[target] = name
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener() as source, open(target, "wb") as destination:
            shutil.copyfileobj(source, destination)
        counts[split, match["label"]] += 1
    if not counts:
        raise ValueError(f"{archive} holds no video named like UCF101's v_<Class>_g<group>_c<clip>.avi")
    return counts


def summarize(counts: Counter) -> str:
    """One line per class: training and validation clips; warns about a class missing from a split."""
    labels = sorted({label for _, label in counts})
    lines = [f"{'class':<24}{'train':>7}{'val':>7}"]
    for label in labels:
        train, val = counts["train", label], counts["val", label]
        lines.append(f"{label:<24}{train:>7}{val:>7}")
        if not train or not val:
            logger.warning("class %s has no %s clips", label, "training" if not train else "validation")
    return "\n".join(lines)


def prepare(
    name: str,
    out: str | Path,
    url: str | None = None,
    sha256: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> Counter:
    """Download dataset `name` (or `url`), verify it, and extract it under `out`; clip counts per split.

    An earlier extraction is replaced. The pinned size is checked only against the pinned sha256's file. The
    download waits at most `timeout_s` per read and is retried `retries` times, continuing where it stopped
    (`downloads.fetch`).
    """
    remote = ARCHIVES[name]
    url = url or remote.url
    out = Path(out)
    _check_ours(out)
    destination = out / ".downloads" / Path(urllib.parse.urlparse(url).path).name
    expected = sha256 or remote.sha256
    size_bytes = None if sha256 else remote.size_bytes
    if destination.is_file() and expected:
        try:  # an archive kept from an earlier download: reuse it only if it is still the expected one
            verify(destination, expected, size_bytes)
        except ChecksumError:
            logger.info("the archive downloaded before is not the expected one: downloading it again")
    if destination.is_file():
        logger.info("using the archive downloaded before: %s", destination)
    archive = fetch(url, destination, timeout_s=timeout_s, retries=retries)
    verify(archive, expected, size_bytes)
    _clear_extraction(out)
    counts = extract_ucf101(archive, out)
    (out / EXTRACTED_MARKER).write_text(f"{expected.lower()}\n")  # verify() passed, so expected is known
    return counts


def ensure_dataset(
    name: str, out: str | Path, *, url: str | None = None, sha256: str | None = None, **download: float
) -> Path:
    """The folder `out` holding dataset `name` in the class-folder layout, downloaded and extracted if needed.

    A folder completely extracted from the expected archive before is returned as it is, without the network;
    a missing or interrupted one is (re)made by `prepare`. `url` and `sha256` override the pinned ones (a
    mirror, a local stand-in); `download` holds `prepare`'s timeout_s and retries.
    """
    out = Path(out)
    expected = sha256 or ARCHIVES[name].sha256
    marker = out / EXTRACTED_MARKER
    if expected and marker.is_file() and marker.read_text().strip() == expected.lower():
        logger.info("using %s, extracted before", out)
        return out
    prepare(name, out, url, sha256, **download)
    return out


def count_clips(out: Path) -> Counter:
    """Clips per (split, class) of an extracted dataset, for `summarize`."""
    return Counter((video.parent.parent.name, video.parent.name) for video in Path(out).glob("*/*/*.avi"))


def _check_ours(out: Path) -> None:
    """Refuse a folder whose train/ or val/ this module did not write (it has no .downloads/): never delete data."""
    foreign = [split for split in ("train", "val") if (out / split).exists()]
    if foreign and not (out / ".downloads").is_dir():
        raise FileExistsError(
            f"{out} already holds {' and '.join(foreign)}/ that this command did not write; "
            "choose an empty or new folder for the dataset."
        )


def _clear_extraction(out: Path) -> None:
    """Remove an earlier or interrupted extraction, so no clip of another archive stays behind."""
    (out / EXTRACTED_MARKER).unlink(missing_ok=True)
    for split in ("train", "val"):
        if (out / split).exists():
            shutil.rmtree(out / split)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    datasets_help = "; ".join(f"{name}: {remote.about}" for name, remote in ARCHIVES.items())
    parser.add_argument("dataset", choices=sorted(ARCHIVES), help=datasets_help)
    parser.add_argument("--out", type=Path, required=True, help="folder to write train/ and val/ into")
    parser.add_argument("--url", help="download from this mirror instead")
    parser.add_argument("--sha256", help="expected sha256 of the archive, for an unpinned dataset or a mirror")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds a read may wait for data before the download counts as stalled (default: %(default)s)",
    )
    parser.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, help="tries after a stall or a cut (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        out = ensure_dataset(
            args.dataset, args.out, url=args.url, sha256=args.sha256, timeout_s=args.timeout_s, retries=args.retries
        )
    # OSError covers network errors (URLError); TarError and BadZipFile a truncated archive.
    except (ChecksumError, ValueError, OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summarize(count_clips(out)))
    print(f"dataset ready: {out} (train/ and val/ in the class-folder layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
