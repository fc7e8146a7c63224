"""Clip figures draw what they are given: bars, frames and step titles checked on tiny inputs."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from video_processing.data.transforms import eval_preset, train_preset
from video_processing.data.video import (
    constant_clip_windows,
    decode_random_clip,
    subsample_indices,
    uniform_clip_windows,
    write_video,
)
from video_processing.lessons import clip_plots as vz
from video_processing.synthetic import render_video

CLASSES = ["growing", "shrinking", "spinning"]


@pytest.fixture
def clip() -> torch.Tensor:
    """A uint8 (T, C, H, W) clip whose frames differ, as decoding returns it."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (8, 3, 36, 48), dtype=torch.uint8, generator=generator)


def _bars(ax) -> dict[str, list[tuple[float, float]]]:
    """(start, end) of every bar of an axes, by the bar group's label."""
    return {
        container.get_label(): [(bar.get_x(), bar.get_x() + bar.get_width()) for bar in container]
        for container in ax.containers
    }


def test_timeline_bars_are_the_sampler_windows():
    duration_s = 5.3
    windows = {d: vz.sampler_windows(duration_s, d, clips_per_video=3, random_draws=2) for d in (1.0, 2.0)}
    fig = vz.plot_clip_timeline(duration_s, windows)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax, clip_duration_s in zip(fig.axes, (1.0, 2.0), strict=True):
        bars = _bars(ax)
        assert list(bars) == list(windows[clip_duration_s])  # one bar group per sampler, in order
        for name, sampler_windows in windows[clip_duration_s].items():
            np.testing.assert_allclose(bars[name], sampler_windows)
        np.testing.assert_allclose(bars["uniform"], uniform_clip_windows(duration_s, clip_duration_s))
        np.testing.assert_allclose(
            bars["constant (3 per video)"], constant_clip_windows(duration_s, clip_duration_s, 3)
        )
        assert len(bars["random (2 draws)"]) == 2
        assert f"{clip_duration_s:g} s" in ax.get_title()
        assert [label.get_text() for label in ax.get_yticklabels()] == list(windows[clip_duration_s])
    assert fig.axes[-1].get_xlabel() == "time in the video (s)"


def test_sampler_windows_random_draws_follow_the_generator():
    first = vz.sampler_windows(10.0, 2.0, generator=torch.Generator().manual_seed(3))
    again = vz.sampler_windows(10.0, 2.0, generator=torch.Generator().manual_seed(3))
    assert first == again
    assert len(set(first["random (3 draws)"])) == 3


def test_frame_grid_shows_every_frame(clip):
    fig = vz.plot_frame_grid(clip, times=[k / 8 for k in range(len(clip))], ncols=4, title="a clip")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == len(clip)
    assert np.array_equal(shown[3].images[0].get_array(), clip[3].permute(1, 2, 0).numpy())
    assert shown[4].get_title() == "4: 0.50 s"
    assert fig.get_suptitle() == "a clip"


def test_frame_times_are_the_kept_frames_first_and_last_included(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, render_video("growing", np.random.default_rng(0), 64, 48, num_frames=75, fps=25), fps=25)
    clip, times = vz.random_clip_with_times(path, 1.0, 8, torch.Generator().manual_seed(1))
    assert len(times) == len(clip) == 8
    # a 1 s window at 25 fps holds frames at 0, 0.04 ... 0.96 s; subsampling keeps the first and the last
    assert times[0] == pytest.approx(0.0, abs=0.021) and times[-1] == pytest.approx(0.96, abs=0.021)
    again = decode_random_clip(path, 1.0, 8, torch.Generator().manual_seed(1))
    assert torch.equal(clip, again)  # the clip the same generator draws


def test_animation_has_one_frame_per_clip_frame(clip):
    html = vz.clip_animation(clip[:3], fps=4.0, title="clip").to_jshtml()
    assert html.count("data:image/png;base64") == 3


def test_subsampled_frames_follow_num_frames():
    fig = vz.plot_subsampled_frames(30, 6)
    kept = [line for line in fig.axes[0].lines if line.get_label().endswith("frames")]
    assert [list(line.get_xdata()) for line in kept] == [subsample_indices(30, n) for n in (3, 6, 12)]
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == ["keep 3", "keep 6 (NUM_FRAMES)", "keep 12"]


def test_forced_flip_column_is_the_mirrored_crop(clip):
    """Lesson 02 draws the train preset with hflip_prob=1.0: its flip column is the crop column mirrored."""
    results = vz.run_steps(train_preset(crop_size=32, min_short_side=36, max_short_side=40, hflip_prob=1.0), clip)
    names = [r.name for r in results]
    flipped = names.index("RandomHorizontalFlip")
    assert names[flipped - 1] == "RandomShortSideScaleCrop"
    np.testing.assert_array_equal(results[flipped].images, results[flipped - 1].images[:, :, ::-1])
    assert not np.array_equal(results[flipped].images, results[flipped - 1].images)


def test_run_steps_keeps_each_output_and_ends_at_the_preset_output(clip):
    preset = eval_preset(crop_size=32, short_side=36)
    results = vz.run_steps(preset, clip)
    assert [r.name for r in results] == ["decoded clip"] + [type(step).__name__ for step in preset.transforms]
    assert torch.equal(results[-1].output, preset(clip))
    assert results[-1].output.shape == (3, 8, 32, 32)
    # after Normalize the images are denormalized: the same pixels as right after ToDtype
    after_to_dtype = next(r for r in results if r.name == "ToDtype")
    np.testing.assert_allclose(results[-1].images, after_to_dtype.images, atol=1e-5)
    assert results[-1].images.shape == (8, 32, 32, 3)


def test_transform_steps_titles_give_shapes_and_dtypes(clip):
    results = vz.run_steps(train_preset(crop_size=32, min_short_side=36, max_short_side=40), clip)
    fig = vz.plot_transform_steps(results, frames_shown=2, title="train preset")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "decoded clip\n(8, 3, 36, 48) uint8"
    assert titles[-1] == "ToCTHW\n(3, 8, 32, 32) float32"
    assert len(fig.axes) == 2 * len(results)


def test_augmentation_draws_show_the_crop(clip):
    fig = vz.plot_augmentation_draws(train_preset(crop_size=32, min_short_side=36, max_short_side=40), clip, draws=3)
    assert len(fig.axes) == 4
    assert [ax.images[0].get_array().shape[:2] for ax in fig.axes[1:]] == [(32, 32)] * 3


def test_time_steps_and_table(clip):
    preset = eval_preset(crop_size=32, short_side=36)
    threads = torch.get_num_threads()
    rows = vz.time_steps(preset, clip, repeats=2)
    assert torch.get_num_threads() == threads  # timed single-threaded, then restored
    assert [row[0] for row in rows] == [type(step).__name__ for step in preset.transforms]
    assert rows[-1][1] == "(3, 8, 32, 32) float32"
    assert all(ms >= 0 for _, _, ms in rows)
    table = vz.format_table(rows, ["step", "output", "ms"]).splitlines()
    assert table[0].split() == ["step", "output", "ms"] and len(table) == len(rows) + 2
