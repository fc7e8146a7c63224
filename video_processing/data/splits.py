"""Splitting a folder of one's own videos, SRC/<class>/<video>, into the class-folder layout's train/, val/, test/.

Clips of one group (the same person, scene or recording: UCF101 names them `..._g08_c01.avi`, so the pattern
`_g(\\d+)_`) always land in the same split, so validation and test never see a scene the model trained on. Groups
are shuffled per class with the seed and dealt to the splits until each has its share of that class's clips.
The source is never moved or changed: the new layout holds hard links to its files where the file system allows,
else symbolic links, else copies.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from video_processing.data.layouts import VIDEO_EXTENSIONS

SPLIT_NAMES = ("train", "val", "test")


class SplitError(ValueError):
    """The source, the destination or the shares asked for cannot make a split; the message names the fix."""


@dataclass
class SplitResult:
    """Clips per class and split, and how the files were placed (how many hard links, symbolic links, copies)."""

    counts: dict[str, dict[str, int]]
    groups: dict[str, int]
    placed: Counter = field(default_factory=Counter)
    ungrouped: int = 0
    skipped: list[Path] = field(default_factory=list)

    def table(self) -> str:
        """Counts per class and split as an aligned text table, with the totals."""
        splits = [s for s in SPLIT_NAMES if any(c.get(s) for c in self.counts.values())]
        width = max(len("total"), *(len(name) for name in self.counts))
        lines = [f"{'class':<{width}}  {'groups':>6}  " + "  ".join(f"{s:>5}" for s in splits)]
        for name, counts in self.counts.items():
            cells = "  ".join(f"{counts.get(s, 0):>5}" for s in splits)
            lines.append(f"{name:<{width}}  {self.groups[name]:>6}  {cells}")
        totals = "  ".join(f"{sum(c.get(s, 0) for c in self.counts.values()):>5}" for s in splits)
        lines.append(f"{'total':<{width}}  {sum(self.groups.values()):>6}  {totals}")
        return "\n".join(lines)

    def placement(self) -> str:
        """How the files were placed, e.g. "72 hard links"."""
        plural = {"hard link": "hard links", "symbolic link": "symbolic links", "copy": "copies"}
        return ", ".join(f"{count} {plural[kind]}" for kind, count in self.placed.items())


def class_videos(src: Path) -> dict[str, list[Path]]:
    """The videos of each class folder of `src`, sorted by name; raise SplitError when there are none."""
    if not src.is_dir():
        raise SplitError(f"{src} is not a folder; expected SRC/<class>/<video> (one sub-folder per class)")
    if (src / "train").is_dir() and (src / "val").is_dir():
        raise SplitError(f"{src} holds train/ and val/: it is split already; give the folder of class folders")
    classes = {
        d.name: sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        for d in sorted(src.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    if not classes:
        raise SplitError(f"{src} has no class folders; expected SRC/<class>/<video> (one sub-folder per class)")
    return classes


def not_videos(src: Path) -> list[Path]:
    """Files in the class folders of `src` that are not videos (by extension): left out of the split."""
    folders = [d for d in sorted(src.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return [p for d in folders for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() not in VIDEO_EXTENSIONS]


def group_of(path: Path, pattern: re.Pattern | None) -> str | None:
    """The group a clip belongs to: the pattern's first group (or whole match) in its file name; None if none."""
    match = pattern.search(path.name) if pattern is not None else None
    if match is None:
        return None
    return match.group(1) if pattern.groups else match.group(0)


def deal_groups(groups: list[list[Path]], shares: dict[str, float]) -> dict[str, list[Path]]:
    """Deal whole groups (in the given order) to the splits with a share, each to the split furthest below its
    share of the clips; every split gets at least one group (the caller checks there are enough)."""
    total = sum(len(g) for g in groups)
    dealt: dict[str, list[Path]] = {name: [] for name in shares}
    for i, group in enumerate(groups):
        empty = [name for name in shares if not dealt[name]]
        candidates = empty if len(groups) - i <= len(empty) else list(shares)
        name = max(candidates, key=lambda s: shares[s] * total - len(dealt[s]))
        dealt[name].extend(group)
    return dealt


def plan_split(
    src: Path, val: float, test: float, group_pattern: str | None = None, seed: int = 0
) -> tuple[dict[str, dict[str, list[Path]]], dict[str, int], int]:
    """Which source clips go to which split, per class; the number of groups of each class; and how many clips
    matched no group (each is then a group of its own).

    Raises SplitError naming every class with fewer groups than splits asked for.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise SplitError(f"--val {val} and --test {test} must each be in [0, 1) and leave some for training")
    shares = {"train": 1 - val - test, "val": val, "test": test}
    shares = {name: share for name, share in shares.items() if share > 0}
    pattern = re.compile(group_pattern) if group_pattern else None
    plan, groups, ungrouped, too_few = {}, {}, 0, []
    for name, videos in class_videos(src).items():
        by_group: dict[str, list[Path]] = {}
        for path in videos:
            key = group_of(path, pattern)
            ungrouped += key is None
            by_group.setdefault(key if key is not None else f"\0{path.name}", []).append(path)
        groups[name] = len(by_group)
        if len(by_group) < len(shares):
            too_few.append(f"{name} ({len(by_group)} groups)")
            continue
        order = sorted(by_group)
        random.Random(f"{seed}/{name}").shuffle(order)  # a string seed: the same on every run and machine
        plan[name] = deal_groups([by_group[key] for key in order], shares)
    if too_few:
        raise SplitError(
            f"{src}: too few groups of clips for {len(shares)} splits ({', '.join(shares)}) in: "
            f"{', '.join(too_few)}. Add clips of other groups, ask for fewer splits, or drop the class."
        )
    return plan, groups, ungrouped


def place(source: Path, target: Path) -> str:
    """Make `target` a hard link to `source`, else a symbolic link, else a copy; never overwrite. Its kind."""
    try:
        os.link(source, target)
        return "hard link"
    except FileExistsError:
        raise
    except OSError:  # another file system, or one without hard links
        pass
    try:
        target.symlink_to(source.resolve())
        return "symbolic link"
    except FileExistsError:
        raise
    except OSError:  # no symbolic links either (e.g. Windows without the privilege)
        pass
    with open(source, "rb") as reader, open(target, "xb") as writer:  # "x": never overwrite
        shutil.copyfileobj(reader, writer)
    shutil.copystat(source, target)
    return "copy"


def split_folder(
    src: str | Path,
    dst: str | Path,
    val: float = 0.2,
    test: float = 0.1,
    group_pattern: str | None = None,
    seed: int = 0,
) -> SplitResult:
    """Write dst/{train,val,test}/<class>/<video> from src/<class>/<video>; `src` is left as it is.

    Refuses a `dst` that exists and is not empty, or lies inside `src`.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise SplitError(f"{dst} exists and is not empty; give a new or empty folder (nothing is overwritten)")
    if dst.resolve().is_relative_to(src.resolve()):
        raise SplitError(f"{dst} is inside {src}: it would become a class; put it beside the source")
    plan, groups, ungrouped = plan_split(src, val, test, group_pattern, seed)
    result = SplitResult({}, groups, ungrouped=ungrouped, skipped=not_videos(src))
    for name, splits in plan.items():
        result.counts[name] = {split: len(paths) for split, paths in splits.items()}
        for split, paths in splits.items():
            folder = dst / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in paths:
                result.placed[place(path, folder / path.name)] += 1
    return result
