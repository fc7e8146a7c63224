import pytest
import torch

from video_processing.inference.segments import Segment, SegmentMerger, WindowLabel, label_windows, merge_segments

CLASSES = ["a", "b"]


def _windows(probabilities_of_a: list[float]):
    return [(i, i + 1, torch.tensor([p, 1 - p])) for i, p in enumerate(probabilities_of_a)]


def test_each_window_gets_its_top_1_class():
    labels = list(label_windows(_windows([0.9, 0.2, 0.6]), CLASSES))
    assert [(w.start_s, w.end_s, w.label) for w in labels] == [(0, 1, "a"), (1, 2, "b"), (2, 3, "a")]
    assert [w.probability for w in labels] == pytest.approx([0.9, 0.8, 0.6])


def test_smoothing_averages_the_last_k_windows():
    # one stray window of "b" inside "a": a moving average over 3 windows keeps "a"
    labels = list(label_windows(_windows([0.9, 0.9, 0.3, 0.9, 0.1, 0.1, 0.1]), CLASSES, smooth=3))
    assert [w.label for w in labels] == ["a", "a", "a", "a", "b", "b", "b"]
    assert [w.label for w in label_windows(_windows([0.9, 0.9, 0.3]), CLASSES)][2] == "b"  # unsmoothed
    assert labels[1].probability == pytest.approx(0.9)  # trailing: only the windows so far
    assert labels[2].probability == pytest.approx((0.9 + 0.9 + 0.3) / 3)
    assert labels[4].probability == pytest.approx(1 - (0.3 + 0.9 + 0.1) / 3)
    with pytest.raises(ValueError, match="smooth"):
        list(label_windows(_windows([0.5]), CLASSES, smooth=0))


def test_consecutive_windows_of_one_label_merge():
    windows = [
        WindowLabel(0, 1, "a", 0.8),
        WindowLabel(1, 2, "a", 0.6),
        WindowLabel(2, 3, "b", 0.9),
        WindowLabel(3, 4, "a", 0.5),
    ]
    segments = merge_segments(windows)
    assert segments == [
        Segment(0, 2, "a", pytest.approx(0.7), 2),
        Segment(2, 3, "b", 0.9, 1),
        Segment(3, 4, "a", 0.5, 1),
    ]
    assert merge_segments([]) == []


def test_segments_close_as_windows_arrive_holding_only_the_open_one():
    merger = SegmentMerger()
    closed = [merger.add(WindowLabel(k, k + 1, label, 0.5)) for k, label in enumerate("aab")]
    assert closed == [None, None, Segment(0, 2, "a", 0.5, 2)]  # printed when "b" arrives, not at the end
    assert merger.close() == Segment(2, 3, "b", 0.5, 1) and merger.close() is None
