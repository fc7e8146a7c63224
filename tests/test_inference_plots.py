"""inference_plots: the figures draw the numbers they are given."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch

from video_processing.inference_plots import COMPARED_METRICS, plot_runs_compared, plot_top_k

matplotlib.use("Agg")


def test_runs_compared_draw_one_line_per_run_and_metric():
    runs = {
        "fine-tuned": {
            "val_acc_top1": {0: 0.5, 1: 0.8},
            "val_video_acc_top1": {0: 0.6, 1: 0.9},
            "train_loss_epoch": {0: 1.2, 1: 0.4},
        },
        "from scratch": {
            "val_acc_top1": {1: 0.3, 0: 0.2},
            "val_video_acc_top1": {0: 0.2, 1: 0.3},
            "train_loss_epoch": {0: 1.8, 1: 1.6},
        },
    }
    fig = plot_runs_compared(runs)
    assert len(fig.axes) == len(COMPARED_METRICS)
    accuracy = fig.axes[0]
    assert [line.get_label() for line in accuracy.get_lines()] == ["fine-tuned", "from scratch"]
    assert list(accuracy.get_lines()[1].get_xdata()) == [0, 1]
    assert list(accuracy.get_lines()[1].get_ydata()) == [0.2, 0.3]  # sorted by epoch
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == [1.2, 0.4]


def test_top_k_bars_have_the_probabilities_most_probable_on_top():
    frames = torch.randint(0, 256, (8, 3, 24, 32), dtype=torch.uint8)
    top = [("playing guitar", 0.7), ("zumba", 0.2), ("abseiling", 0.05)]
    fig = plot_top_k(frames, top, frames_shown=4)
    *frame_axes, bars = fig.axes
    assert len(frame_axes) == 4
    assert [ax.get_title() for ax in frame_axes] == ["frame 0", "frame 2", "frame 5", "frame 7"]
    np.testing.assert_allclose([patch.get_width() for patch in bars.patches], [0.7, 0.2, 0.05])
    assert [label.get_text() for label in bars.get_yticklabels()] == [name for name, _ in top]
    assert bars.yaxis_inverted()
    np.testing.assert_array_equal(frame_axes[0].get_images()[0].get_array(), frames[0].permute(1, 2, 0).numpy())
