import av
import numpy as np
import pytest

from video_processing.data.video import open_video, video_info
from video_processing.synthetic import CLASSES, make_dataset, render_video, render_video_with_boxes


def test_small_dataset_layout_and_videos(small_dataset):
    for split, count in (("train", 4), ("val", 2)):
        assert sorted(p.name for p in (small_dataset / split).iterdir()) == sorted(CLASSES)
        videos = sorted((small_dataset / split).glob("*/*.mp4"))
        assert len(videos) == count * len(CLASSES)
    with open_video(videos[0]) as container:
        info = video_info(container)
    assert info.codec == "h264" and 2 <= info.duration_s <= 3.1 and 24 <= info.fps <= 30


def test_same_seed_same_videos(tmp_path):
    """A seed fixes every video's content; x264 itself is not bit-exact from run to run here, so the decoded
    frames are compared, and allowed to differ by under one grey level on average."""
    first = make_dataset(tmp_path / "a", size="small", seed=3, workers=1)
    second = make_dataset(tmp_path / "b", size="small", seed=3, workers=1)
    for path in sorted(first.rglob("*.mp4"))[::6]:
        a, b = (_decoded(p) for p in (path, second / path.relative_to(first)))
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b).mean() < 1.0
    other = make_dataset(tmp_path / "c", size="small", seed=4, workers=1)
    path = next(first.rglob("*.mp4"))
    assert _decoded(path).shape != _decoded(other / path.relative_to(first)).shape or (
        np.abs(_decoded(path).astype(int) - _decoded(other / path.relative_to(first))).mean() > 5
    )


def _decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_remaking_the_dataset_keeps_existing_videos(small_dataset, capsys):
    before = {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.mp4")}
    make_dataset(small_dataset, size="small", seed=0, workers=1)
    assert {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.mp4")} == before
    assert "writing" not in capsys.readouterr().err  # no empty progress bar


def test_one_frame_cannot_tell_growing_from_shrinking():
    """The same shape's sizes over a growing and a shrinking video cover the same range."""
    growing = render_video("growing", np.random.default_rng(1), 64, 64, num_frames=150, fps=25)
    shrinking = render_video("shrinking", np.random.default_rng(1), 64, 64, num_frames=150, fps=25)
    area = lambda frames: (np.abs(frames.astype(int) - np.median(frames, axis=0)).sum(-1) > 60).sum((1, 2))  # noqa: E731
    assert growing.shape == shrinking.shape == (150, 64, 64, 3)
    assert area(growing).max() > 3 * area(growing).min() and area(shrinking).max() > 3 * area(shrinking).min()


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown motion class 'jumping'"):
        render_video("jumping", np.random.default_rng(0), 64, 64, num_frames=5, fps=25)


@pytest.mark.parametrize("label", CLASSES)
def test_boxes_hold_exactly_the_shape(label):
    """Each frame's box bounds the pixels that differ from the same video rendered without a shape's colour:
    the box is tight around the shape, and nothing of the shape lies outside it."""
    frames, boxes = render_video_with_boxes(label, np.random.default_rng(2), 64, 48, num_frames=60, fps=25)
    assert np.array_equal(frames, render_video(label, np.random.default_rng(2), 64, 48, num_frames=60, fps=25))
    for frame, (x0, y0, x1, y1) in zip(frames, boxes, strict=True):
        if x1 == x0:  # out of view
            continue
        colour = frame[y0:y1, x0:x1].reshape(-1, 3)
        values, counts = np.unique(colour, axis=0, return_counts=True)
        shape_colour = values[counts.argmax()]  # the flat fill: the most common colour inside the box
        inside = (frame == shape_colour).all(axis=-1)
        assert inside[y0:y1, x0:x1].any(axis=0).all() and inside[y0:y1, x0:x1].any(axis=1).all()  # tight
        inside[y0:y1, x0:x1] = False
        assert not inside.any()  # the shape's colour appears nowhere else
    assert (boxes[:, 2] > boxes[:, 0]).mean() > 0.5  # in view most of the time
