"""The lessons' setup: one call, `lesson = start_lesson("03")`, owns everything that is not the lesson.

It decides where a notebook works (the checkout, or a Google Drive folder on Colab), which data it uses, the run
sizes its knobs start from, and, for a quick check run, small sizes and offline copies of what the lessons
download. The lessons then read `lesson.run`, `lesson.data`, `lesson.logs_dir`... and nothing else of this.

Data, unless `kinetics_data_path` (or `KINETICS_DATA_PATH`) names a dataset:
- a GPU: the UCF101 subset, real video, downloaded once into data/ucf101_subset;
- a CPU: the default self-made dataset (what `make demo` trains on).

`VIDEO_PROCESSING_SMOKE=1` (set by `make test`) is a quick check run: small data, a thin model, 2 epochs of a few
batches, and the UCF101 archive and pretrained weights served from this machine on 127.0.0.1 (look-alikes made by
`standins.py`), so every lesson cell, download and weight loading included, runs offline in seconds.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from video_processing.data.video import write_video
from video_processing.download import ensure_dataset
from video_processing.lessons.runs import Run, finetune_runs, lesson_run
from video_processing.lessons.standins import make_ucf101_archive, serve_directory, write_standin_weights
from video_processing.synthetic import CLASSES, make_dataset, render_video

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


def chance_accuracy_bound(num_items: int, num_classes: int, *, alpha: float = 0.01) -> float:
    """The accuracy that uniform random guessing over `num_classes` reaches on `num_items` with probability
    below `alpha`: an accuracy above it is above chance with confidence 1 - alpha (a one-sided binomial test)."""
    p = 1 / num_classes
    tail = 1.0  # P(correct >= k) for k = 0
    for k in range(num_items + 1):
        if tail < alpha:
            return k / num_items
        tail -= math.comb(num_items, k) * p**k * (1 - p) ** (num_items - k)
    return 1.0


@dataclass
class Lesson:
    """What a notebook's setup chose. `full_size` is False in a quick check run (small sizes, offline copies)."""

    number: str
    full_size: bool
    cuda: bool
    on_colab: bool
    root: Path
    data: LessonData | None
    run: Run | None
    archive_url: str | None = None  # None: the UCF101 subset's pinned address
    archive_sha256: str | None = None
    _served: tuple[Path, str] | None = field(default=None, repr=False)

    @property
    def logs_dir(self) -> Path:
        return self.root / "lightning_logs"

    @property
    def ucf101_folder(self) -> Path:
        """Where the UCF101 subset goes (a look-alike, in a quick check run, never under the real name)."""
        return self.root / "data" / ("ucf101_subset" if self._served is None else "ucf101_lookalike")

    def finetune_runs(self, backbone: str) -> tuple[Run, Run]:
        """`runs.finetune_runs` for `backbone` at this lesson's size: the fine-tuning run and its from-scratch twin."""
        return finetune_runs(backbone, smoke=not self.full_size)

    def weights_url(self, backbone: str) -> str | None:
        """Where `backbone`'s Kinetics-400 weights come from: None, the registry's address (or a local copy)."""
        if self._served is None:
            return None
        folder, url = self._served
        return f"{url}/{write_standin_weights(backbone, folder).name}"

    def video_to_classify(self, path: str | Path | None) -> Path:
        """The video a learner brings: `path`; else on Colab an upload; else a self-made two-action video."""
        if path is not None:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such video file; set MY_VIDEO to a file PyAV can read")
            return Path(path)
        if self.on_colab:
            from google.colab import files  # only on Colab

            name, content = next(iter(files.upload().items()))
            target = self.root / "uploads" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            return target
        print("MY_VIDEO is None: classifying a self-made video instead (set MY_VIDEO to a file of yours)")
        return two_action_video(self.root / "data" / "two_actions.mp4")


def two_action_video(path: Path, *, seconds_each: float = 3.0, fps: int = 25, seed: int = 0) -> Path:
    """A self-made video of one motion class, then another (the first two, which the UCF101 look-alike holds
    too): something whose label changes over time."""
    rng = np.random.default_rng(seed)
    frames = [render_video(motion, rng, 160, 120, round(seconds_each * fps), fps) for motion in CLASSES[:2]]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate(frames), fps)
    return path


def start_lesson(
    number: str,
    *,
    drive_folder: str | None = None,
    kinetics_data_path: str | None = None,
    ucf101: bool = False,
    own_videos: bool = False,
) -> Lesson:
    """Set up lesson `number`: where it works, its data (`ucf101`: the UCF101 subset, fetched by the lesson
    itself; `own_videos`: the medium self-made set, small in a quick check, whose class folders stand in for a
    learner's own), the run its knobs start from. `drive_folder` (Colab): keep data, checkpoints and downloaded
    weights in that Google Drive folder across runtimes. Prints what it chose."""
    quick = smoke_mode()
    cuda = torch.cuda.is_available()
    root = workspace(drive_folder)
    if drive_folder is not None:
        os.environ["TORCH_HOME"] = str(root / "torch_hub")  # torch.hub's weight cache on Drive as well
    lesson = Lesson(number, not quick, cuda, "google.colab" in sys.modules, root, None, None)
    if ucf101:
        if quick:
            _serve_lookalikes(lesson)
    elif own_videos:
        size = "small" if quick else "medium"
        lesson.data = LessonData(make_dataset(root / "data" / f"synthetic_{size}", size=size), "synthetic")
        lesson.run = lesson_run(smoke=quick, cuda=cuda, data="synthetic")
    else:
        kinetics = kinetics_data_path or os.environ.get("KINETICS_DATA_PATH")
        lesson.data = lesson_data(root, smoke=quick, cuda=cuda, kinetics_path=kinetics)
        lesson.run = lesson_run(smoke=quick, cuda=cuda, data=lesson.data.kind)
    size = "full size" if lesson.full_size else "quick check (small data, a few batches)"
    print(f"lesson {number}: {size} on {'a GPU' if cuda else 'the CPU'}; working in {root}")
    if lesson.data is not None:
        print(f"data: {lesson.data.kind}, {lesson.data.path}")
    return lesson


def _serve_lookalikes(lesson: Lesson) -> None:
    """Serve a UCF101-like archive (and, on request, weights) on 127.0.0.1 until the kernel exits."""
    folder = lesson.root / "data" / "served"
    sha256 = make_ucf101_archive(folder / "UCF101_subset.tar.gz", seconds=2.0)  # longer than the runs' clips
    stack = ExitStack()
    url = stack.enter_context(serve_directory(folder))
    atexit.register(stack.close)
    lesson.archive_url, lesson.archive_sha256 = f"{url}/UCF101_subset.tar.gz", sha256
    lesson._served = (folder, url)
