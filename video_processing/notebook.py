"""What the notebooks share besides their runs (`runs.py`): smoke mode, where they work, which data they use.

`VIDEO_PROCESSING_SMOKE=1` (set by `make test` and CI) shrinks data, model and epochs so every notebook runs
on a CPU in a minute or two. Unset, the notebooks run at full size on the data that suits the machine:
- `KINETICS_DATA_PATH` set: that dataset (Kinetics, or any dataset in a supported layout);
- a GPU: the UCF101 subset, real video, downloaded once into data/ucf101_subset;
- a CPU: the default self-made dataset (what `make demo` trains on).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from video_processing.download import ensure_dataset
from video_processing.synthetic import make_dataset

SMOKE_ENV = "VIDEO_PROCESSING_SMOKE"


def smoke_mode() -> bool:
    """True when `VIDEO_PROCESSING_SMOKE` is set to 1, true or yes."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes")


def project_root(start: str | Path | None = None) -> Path:
    """The checkout holding `start` (default: the working directory), else `start` itself (e.g. on Colab).

    Notebooks run in notebooks/, so data/ and lightning_logs/ land next to the ones `make demo` uses.
    """
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "video_processing").is_dir():
            return folder
    return start


def workspace(drive_folder: str | Path | None = None) -> Path:
    """Where data/ and lightning_logs/ go: the checkout, or on Colab `drive_folder` on Google Drive if given.

    A Colab runtime forgets its disk when it ends; a folder on Drive (e.g. "MyDrive/video-classification")
    keeps the downloaded data and the checkpoints for the next session. Drive is mounted on first use.
    """
    if drive_folder is None or "google.colab" not in sys.modules:
        return project_root()
    from google.colab import drive  # only on Colab

    drive.mount("/content/drive")
    folder = Path("/content/drive") / drive_folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class LessonData:
    """The dataset a notebook uses: its folder and its kind ("synthetic", "ucf101" or "kinetics")."""

    path: Path
    kind: str


def lesson_data(root: str | Path, *, smoke: bool, cuda: bool, kinetics_path: str | Path | None = None) -> LessonData:
    """`kinetics_path` when given; else, smoke mode or a CPU, the self-made set under root/data (written when
    missing); else, a GPU, the UCF101 subset under root/data (downloaded once, then reused).

    Smoke mode uses the small self-made set (data/synthetic_small, 36 videos), a CPU the default one
    (data/synthetic, 300 videos, the one `make demo` trains on).
    """
    if kinetics_path:
        return LessonData(Path(kinetics_path), "kinetics")
    data = Path(root) / "data"
    if cuda and not smoke:
        return LessonData(ensure_dataset("ucf101-subset", data / "ucf101_subset"), "ucf101")
    folder = data / ("synthetic_small" if smoke else "synthetic")
    return LessonData(make_dataset(folder, size="small" if smoke else "default"), "synthetic")
