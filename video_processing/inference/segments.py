"""Labels per time window of a long video or a stream, optionally smoothed, merged into segments.

Model-free: it takes each window's class probabilities (from `predict.py`) and works as they arrive, so a
stream's labels and segments can be printed while it plays, with nothing kept that grows with its length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WindowLabel:
    """The top-1 class of one window [start_s, end_s) and its (smoothed) probability."""

    start_s: float
    end_s: float
    label: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """Consecutive windows of one label: from the first window's start to the last one's end."""

    start_s: float
    end_s: float
    label: str
    probability: float  # mean over its windows
    num_windows: int


def label_windows(
    windows: Iterable[tuple[float, float, torch.Tensor]], class_names: list[str], smooth: int = 1
) -> Iterator[WindowLabel]:
    """Top-1 label of each (start_s, end_s, class probabilities) window, as the windows arrive.

    `smooth` > 1 averages the probabilities of the last `smooth` windows (this one included) before the argmax:
    a trailing moving average, so no window waits for later ones (a stream prints without delay), at the cost
    of changes showing up to `smooth - 1` windows late.
    """
    if smooth < 1:
        raise ValueError(f"smooth must be 1 or more windows, got {smooth}")
    recent: deque[torch.Tensor] = deque(maxlen=smooth)
    for start_s, end_s, probabilities in windows:
        recent.append(probabilities)
        probability, index = torch.stack(list(recent)).mean(0).max(0)
        yield WindowLabel(start_s, end_s, class_names[int(index)], float(probability))


class SegmentMerger:
    """Merges windows into segments as they arrive, holding only the open segment (a stream can run for ever)."""

    def __init__(self):
        self.open: Segment | None = None

    def add(self, window: WindowLabel) -> Segment | None:
        """Extend the open segment with `window`; return the segment it closes, if its label differs."""
        last = self.open
        if last is not None and last.label == window.label:
            n = last.num_windows
            probability = (last.probability * n + window.probability) / (n + 1)
            self.open = Segment(last.start_s, window.end_s, last.label, probability, n + 1)
            return None
        self.open = Segment(window.start_s, window.end_s, window.label, window.probability, 1)
        return last

    def close(self) -> Segment | None:
        """The open segment (at the end of a source), if any; the merger starts afresh."""
        last, self.open = self.open, None
        return last


def merge_segments(windows: Iterable[WindowLabel]) -> list[Segment]:
    """Runs of consecutive windows with the same label, in order."""
    merger = SegmentMerger()
    segments = [closed for window in windows if (closed := merger.add(window)) is not None]
    return segments + [last] if (last := merger.close()) is not None else segments
