"""Result figures draw what they are given: curves, counts, labels and bars checked on tiny inputs."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, default_collate

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import eval_preset
from video_processing.inference.segments import WindowLabel
from video_processing.lessons import result_plots as vz

CLASSES = ["growing", "shrinking", "spinning"]


@pytest.fixture
def clip() -> torch.Tensor:
    """A uint8 (T, C, H, W) clip whose frames differ, as decoding returns it."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (8, 3, 36, 48), dtype=torch.uint8, generator=generator)


METRICS_CSV = """\
epoch,step,train_loss_epoch,train_loss_step,val_acc_top1,val_acc_top5,val_loss,val_video_acc_top1
,0,,,,,,
0,1,,1.9,,,,
0,2,,,0.25,0.75,1.7,0.5
0,2,1.8,,,,,
1,5,,1.2,,,,
1,5,,,0.5,1.0,1.1,0.75
1,5,1.3,,,,,
"""


def test_read_epoch_metrics(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    metrics = vz.read_epoch_metrics(path)
    assert metrics["train_loss_epoch"] == {0: 1.8, 1: 1.3}
    assert metrics["val_video_acc_top1"] == {0: 0.5, 1: 0.75}
    assert "step" not in metrics


def test_training_curves_plot_each_metric(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    fig = vz.plot_training_curves(vz.read_epoch_metrics(path))
    loss, accuracy, clip_vs_video = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in loss.lines}
    assert lines == {"train": [1.8, 1.3], "validation": [1.7, 1.1]}
    assert {line.get_label(): list(line.get_ydata()) for line in accuracy.lines} == {
        "top-1": [0.25, 0.5],
        "top-5": [0.75, 1.0],
    }
    assert [list(line.get_ydata()) for line in clip_vs_video.lines] == [[0.25, 0.5], [0.5, 0.75]]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)


CONFUSION = torch.tensor([[2, 0, 0], [1, 1, 0], [0, 0, 0]])


def test_confusion_matrix_writes_counts_and_class_names():
    fig = vz.plot_confusion_matrix(CONFUSION, CLASSES, title="validation videos")
    ax = fig.axes[0]
    assert np.array_equal(ax.images[0].get_array(), CONFUSION.numpy())
    assert [t.get_text() for t in ax.texts] == [str(int(c)) for c in CONFUSION.flatten()]
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")


def test_per_class_accuracy_hardest_first():
    np.testing.assert_array_equal(vz.per_class_accuracy(CONFUSION), [1.0, 0.5, np.nan])
    fig = vz.plot_per_class_accuracy(CONFUSION, CLASSES)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["spinning", "shrinking", "growing"]
    assert [bar.get_width() for bar in ax.containers[0]] == [0.0, 0.5, 1.0]


def test_predictions_titles_name_true_and_predicted(clip):
    preset = eval_preset(crop_size=32, short_side=36)
    clips = torch.stack([preset(clip), preset(clip.flip(0))])
    logits = torch.tensor([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])
    fig = vz.plot_predictions(clips, [2, 1], logits, CLASSES, frames_shown=3)
    titles = [sub.get_suptitle() for sub in fig.subfigs]
    assert titles[0].startswith("true: spinning  |  predicted: spinning (")
    assert titles[1].startswith("true: shrinking  |  predicted: growing (")
    assert [sub._suptitle.get_color() for sub in fig.subfigs] == ["tab:green", "tab:red"]
    assert len(fig.axes) == 6


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
    fig = vz.plot_runs_compared(runs)
    assert len(fig.axes) == len(vz.COMPARED_METRICS)
    accuracy = fig.axes[0]
    assert [line.get_label() for line in accuracy.get_lines()] == ["fine-tuned", "from scratch"]
    assert list(accuracy.get_lines()[1].get_xdata()) == [0, 1]
    assert list(accuracy.get_lines()[1].get_ydata()) == [0.2, 0.3]  # sorted by epoch
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == [1.2, 0.4]


def test_top_k_bars_have_the_probabilities_most_probable_on_top():
    frames = torch.randint(0, 256, (8, 3, 24, 32), dtype=torch.uint8)
    top = [("playing guitar", 0.7), ("zumba", 0.2), ("abseiling", 0.05)]
    fig = vz.plot_top_k(frames, top, frames_shown=4)
    *frame_axes, bars = fig.axes
    assert len(frame_axes) == 4
    assert [ax.get_title() for ax in frame_axes] == ["frame 0", "frame 2", "frame 5", "frame 7"]
    np.testing.assert_allclose([patch.get_width() for patch in bars.patches], [0.7, 0.2, 0.05])
    assert [label.get_text() for label in bars.get_yticklabels()] == [name for name, _ in top]
    assert bars.yaxis_inverted()
    np.testing.assert_array_equal(frame_axes[0].get_images()[0].get_array(), frames[0].permute(1, 2, 0).numpy())


def test_confident_mistakes_rank_wrong_clips_by_confidence():
    labels = torch.zeros(5, dtype=torch.long)
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 4.0], [0.0, 2.0], [3.0, 0.0]])
    assert vz.confident_mistakes(logits, labels, count=5) == [2, 3, 1]
    assert vz.confident_mistakes(logits, labels, count=1) == [2]
    assert vz.confident_mistakes(logits[[0, 4]], labels[[0, 4]], count=3) == []


def test_clips_at_rows_count_across_batches_and_name_missing_rows():
    batches = [{"video": torch.arange(3).view(3, 1)}, {"video": torch.arange(3, 5).view(2, 1)}]
    assert vz.clips_at_rows(batches, [4, 0, 3]).flatten().tolist() == [4, 0, 3]
    with pytest.raises(IndexError, match=r"rows \[7\]"):
        vz.clips_at_rows(batches, [1, 7])


def test_mistake_titles_are_the_eval_mode_predictions(tmp_path):
    """The gallery's logits are trainer.predict's (eval mode), for exactly the clips shown: calling the model as
    load_from_checkpoint returns it (train mode: dropout, batch statistics) gives other titles."""
    model = VideoClassificationLightningModule(num_classes=3, stem_dim_out=4, num_frames=4, crop_size=32)
    model.train()  # as load_from_checkpoint returns it
    generator = torch.Generator().manual_seed(0)
    items = [
        {"video": torch.randn(3, 4, 32, 32, generator=generator), "label": k % 3, "video_index": k // 2}
        for k in range(8)
    ]
    loader = DataLoader(items, batch_size=3, collate_fn=lambda b: {**default_collate(b), "skipped": []})
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    rows = trainer.predict(model, dataloaders=loader)
    logits, labels = torch.cat([r["logits"] for r in rows]), torch.cat([r["label"] for r in rows])
    shown = list(range(len(labels)))[::-2]
    clips = vz.clips_at_rows(loader, shown)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clips), logits[shown])
        assert not torch.allclose(model.train()(clips), logits[shown])  # what the old gallery titled
    fig = vz.plot_predictions(clips, labels[shown].tolist(), logits[shown], CLASSES)
    assert len(fig.subfigs) == len(shown)


def test_uint8_clips_are_shown_as_they_are(clip):
    fig = vz.plot_predictions(clip.permute(1, 0, 2, 3)[None], [0], torch.tensor([[1.0, 0.0, 0.0]]), CLASSES)
    assert np.array_equal(fig.axes[0].images[0].get_array(), clip[0].permute(1, 2, 0).numpy())


def test_learning_rate_is_read_per_step_and_drawn(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,lr-Adam,train_loss_step\n0,0,0.001,\n0,0,,2.0\n0,1,0.0005,\n0,2,0.0,\n")
    steps, rates = vz.read_learning_rate(path)
    assert (steps, rates) == ([0, 1, 2], [0.001, 0.0005, 0.0])
    (ax,) = vz.plot_learning_rate(steps, rates).axes
    assert list(ax.lines[0].get_ydata()) == rates


def test_labels_over_time_draw_one_bar_per_window_coloured_by_label():
    windows = [
        WindowLabel(0.0, 1.0, "growing", 0.9),
        WindowLabel(1.0, 2.0, "growing", 0.6),
        WindowLabel(2.0, 3.0, "spinning", 0.7),
    ]
    (ax,) = vz.plot_labels_over_time(windows, title="a video").axes
    bars = ax.patches
    assert [(bar.get_x(), bar.get_height()) for bar in bars] == [(0.0, 0.9), (1.0, 0.6), (2.0, 0.7)]
    assert bars[0].get_facecolor() == bars[1].get_facecolor() != bars[2].get_facecolor()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["growing", "spinning"]


def test_accuracies_draw_one_labelled_bar_each():
    fig = vz.plot_accuracies({"per clip": 0.5, "per video": 0.75}, title="validation")
    (ax,) = fig.axes
    assert [bar.get_width() for bar in ax.patches] == [0.5, 0.75]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["per clip", "per video"]
    assert [text.get_text() for text in ax.texts] == ["50.0%", "75.0%"]
