"""Finding videos and their labels in the three supported dataset layouts (no torch, no decoding).

a. class folders:       <root>/train/<label>/<clip>, <root>/val/<label>/<clip>
b. Kinetics release:    <root>/annotations/{train,validate}.csv (label,youtube_id,time_start,time_end,split)
                        with clips in <root>/{train,val}/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4
c. PyTorchVideo CSV:    <root>/train.csv and <root>/val.csv of "path label" lines (label: class index)

Each may add a test split, read the same way: <root>/test/<label>/<clip>; annotations/test.csv (the release's
labelled test annotations) with clips in <root>/test/; <root>/test.csv.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")
SPLITS = ("train", "val")
TEST_SPLIT = "test"  # optional: `trainer.test` uses it where a layout has one, else the validation split
LAYOUTS_HELP = (
    "expected one of three layouts:\n"
    "  a. class folders:    <data_path>/train/<label>/<clip>.mp4 and <data_path>/val/<label>/<clip>.mp4\n"
    "  b. Kinetics release: <data_path>/annotations/train.csv and validate.csv, clips in\n"
    "                       <data_path>/train/ and <data_path>/val/ named <youtube_id>_<start:06d>_<end:06d>.mp4\n"
    "  c. PyTorchVideo CSV: <data_path>/train.csv and <data_path>/val.csv of '<path> <label index>' lines\n"
    "See data/README.md for how to arrange a download into one of them."
)


class LayoutError(ValueError):
    """The dataset folder does not match a supported layout, or its labels do not fit together."""


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video: where it is and the index of its class."""

    path: Path
    label: int


@dataclass(frozen=True)
class Layout:
    """A dataset folder as its layout lists it: both splits and the one sorted class list they share."""

    layout: str
    classes: list[str]
    train: list[VideoRecord]
    val: list[VideoRecord]
    test: list[VideoRecord] = field(default_factory=list)  # empty where the layout has no test split

    def split(self, name: str) -> list[VideoRecord]:
        return {"train": self.train, "val": self.val, TEST_SPLIT: self.test}[name]

    def splits(self) -> tuple[str, ...]:
        """The splits the layout has: train and val, and test where it lists test videos."""
        return (*SPLITS, TEST_SPLIT) if self.test else SPLITS


def detect_layout(root: Path) -> str:
    """Return "kinetics_csv", "pytorchvideo_csv" or "class_folders"; raise LayoutError naming the path."""
    if not root.is_dir():
        raise LayoutError(f"data_path {root} does not exist; {LAYOUTS_HELP}")
    if (root / "annotations" / "train.csv").is_file():
        return "kinetics_csv"
    if (root / "train.csv").is_file() and (root / "val.csv").is_file():
        return "pytorchvideo_csv"
    if all((root / split).is_dir() for split in SPLITS) and any(p.is_dir() for p in (root / "train").iterdir()):
        return "class_folders"
    raise LayoutError(f"{root} matches no supported dataset layout; {LAYOUTS_HELP}")


def load_dataset(root: str | Path) -> Layout:
    """Read both splits of the dataset at `root`, whichever supported layout it uses."""
    root = Path(root).expanduser()
    layout = detect_layout(root)
    reader = {
        "class_folders": _read_class_folders,
        "kinetics_csv": _read_kinetics_csv,
        "pytorchvideo_csv": _read_pytorchvideo_csv,
    }[layout]
    classes, splits = reader(root)
    if not splits["train"]:
        raise LayoutError(f"{root} ({layout}) lists no training videos; {LAYOUTS_HELP}")
    return Layout(layout, classes, splits["train"], splits["val"], splits.get(TEST_SPLIT, []))


def check_splits(dataset: Layout, root: str | Path) -> None:
    """Raise LayoutError, naming `root` and the fix, when the splits cannot train and validate a classifier.

    Training needs videos of every class, and at least two classes; validation needs videos, of at least two
    classes, to mean anything (a class without validation videos is warned about).
    (load_dataset already rejects a training split without videos and validation labels unknown to training.)
    """
    train_classes = {r.label for r in dataset.train}
    if empty := [name for i, name in enumerate(dataset.classes) if i not in train_classes]:
        raise LayoutError(
            f"{root} ({dataset.layout}): the training split has no videos of class {', '.join(map(repr, empty))}, "
            "so the model would get an output that never trains. Add training videos of it, or remove it "
            "(an empty class folder)."
        )
    if len(train_classes) < 2:
        names = [dataset.classes[i] for i in sorted(train_classes)]
        raise LayoutError(
            f"{root} ({dataset.layout}): the training split has videos of {len(train_classes)} class "
            f"{names}; a classifier needs at least two. Add videos of other classes to the training split."
        )
    if not dataset.val:
        raise LayoutError(
            f"{root} ({dataset.layout}) lists no validation videos; add some to the validation split "
            f"(a few per class are enough); {LAYOUTS_HELP}"
        )
    val_classes = {r.label for r in dataset.val}
    if empty := [name for i, name in enumerate(dataset.classes) if i not in val_classes]:
        logger.warning(
            "%s (%s): the validation split has no videos of class %s: its accuracy is not measured",
            root,
            dataset.layout,
            ", ".join(map(repr, empty)),
        )
    if len(val_classes) < 2:
        names = [dataset.classes[i] for i in sorted(val_classes)]
        raise LayoutError(
            f"{root} ({dataset.layout}): the validation split has videos of one class {names}, so its "
            "accuracy says nothing. Add validation videos of the other classes."
        )


def _label_index(classes: list[str], label: str, where: str) -> int:
    try:
        return classes.index(label)
    except ValueError:
        raise LayoutError(
            f"{where}: label {label!r} does not occur in the training split, so the model cannot learn it. "
            "Add training videos of that class or remove it from the split that has it."
        ) from None


Splits = dict[str, list[VideoRecord]]


def _read_class_folders(root: Path) -> tuple[list[str], Splits]:
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    splits: Splits = {}
    ignored: list[Path] = []
    for split in (*SPLITS, TEST_SPLIT) if (root / TEST_SPLIT).is_dir() else SPLITS:
        records = []
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            label = _label_index(classes, class_dir.name, str(class_dir))
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() in VIDEO_EXTENSIONS:
                    records.append(VideoRecord(path, label))
                else:
                    ignored.append(path)
        splits[split] = records
    if ignored:
        names = ", ".join(str(p) for p in ignored[:20]) + (" ..." if len(ignored) > 20 else "")
        logger.warning("ignored %d files that are not videos (%s): %s", len(ignored), "/".join(VIDEO_EXTENSIONS), names)
    return classes, splits


def kinetics_clip_name(youtube_id: str, time_start: float, time_end: float) -> str:
    """File name of a clip in the official Kinetics release: <youtube_id>_<start:06d>_<end:06d>.mp4."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}.mp4"


def _read_kinetics_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"label", "youtube_id", "time_start", "time_end"} - set(rows[0] if rows else {})
    if missing:
        raise LayoutError(f"{csv_path} lacks the columns {sorted(missing)} of the Kinetics annotation CSVs")
    return rows


def _read_kinetics_csv(root: Path) -> tuple[list[str], Splits]:
    annotations = root / "annotations"
    val_csv = next((annotations / n for n in ("validate.csv", "val.csv") if (annotations / n).is_file()), None)
    if val_csv is None:
        raise LayoutError(f"{annotations} has train.csv but no validate.csv; {LAYOUTS_HELP}")
    csvs = {"train": annotations / "train.csv", "val": val_csv}
    if (annotations / "test.csv").is_file():
        csvs[TEST_SPLIT] = annotations / "test.csv"
    rows = {split: _read_kinetics_rows(csv_path) for split, csv_path in csvs.items()}
    classes = sorted({row["label"] for row in rows["train"]})
    splits = {}
    for split, csv_path in csvs.items():
        records, absent = [], 0
        for line, row in enumerate(rows[split], start=2):
            label = _label_index(classes, row["label"], f"{csv_path}:{line}")
            path = root / split / kinetics_clip_name(row["youtube_id"], row["time_start"], row["time_end"])
            if path.is_file():
                records.append(VideoRecord(path, label))
            else:
                absent += 1
        if absent:
            logger.warning(
                "%s: %d of %d rows have no clip in %s (videos removed from YouTube or not downloaded); "
                "training uses the %d present",
                csv_path,
                absent,
                len(rows[split]),
                root / split,
                len(records),
            )
        splits[split] = records
    return classes, splits


def _read_pytorchvideo_csv(root: Path) -> tuple[list[str], Splits]:
    splits: dict[str, list[tuple[Path, int]]] = {}
    for split in (*SPLITS, TEST_SPLIT) if (root / f"{TEST_SPLIT}.csv").is_file() else SPLITS:
        csv_path = root / f"{split}.csv"
        entries = []
        for line_no, line in enumerate(csv_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            path_text, _, label_text = line.strip().rpartition(" ")
            if not path_text or not label_text.isdigit():
                raise LayoutError(f"{csv_path}:{line_no}: expected '<path> <label index>', got {line!r}")
            path = Path(path_text) if Path(path_text).is_absolute() else root / path_text
            entries.append((path, int(label_text)))
        splits[split] = entries
    num_classes = 1 + max((label for _, label in splits["train"]), default=-1)
    classes = [str(i) for i in range(num_classes)]
    records: dict[str, list[VideoRecord]] = {}
    for split, entries in splits.items():
        for path, label in entries:
            if label >= num_classes:
                _label_index(classes, str(label), f"{root / (split + '.csv')} ({path})")
        present = [VideoRecord(p, label) for p, label in entries if p.is_file()]
        if len(present) < len(entries):
            logger.warning(
                "%s: %d of %d listed videos are absent; training uses the %d present",
                root / f"{split}.csv",
                len(entries) - len(present),
                len(entries),
                len(present),
            )
        records[split] = present
    return classes, records
