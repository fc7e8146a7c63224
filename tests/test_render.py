"""predict --render: an annotated copy with every frame at the input's times, its audio, and the label of the
segment `predict --segments --json` gives for each frame's time, also for a stream written as it plays."""

from __future__ import annotations

import io
import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from stream_helpers import mpegts_bytes
from test_predict import STAND_IN_CLIPS, GrowthStandIn, _segment_args

from video_processing.data.video import VideoError
from video_processing.inference.classifiers import Classifier
from video_processing.inference.predictions import SegmentWriter, predict_segments
from video_processing.inference.render import AnnotatedVideo, class_color, render_annotated
from video_processing.inference.segments import WindowLabel
from video_processing.predict import main
from video_processing.synthetic import render_video

ORDER = ["growing", "spinning", "shrinking"]  # 2 s each


def _standin() -> Classifier:
    return Classifier(GrowthStandIn(), GrowthStandIn.classes, STAND_IN_CLIPS)


def _motion_frames(fps: float) -> np.ndarray:
    per_part = round(2 * fps)
    parts = [render_video(label, np.random.default_rng([3, i]), 72, 72, per_part, fps) for i, label in enumerate(ORDER)]
    return np.concatenate(parts)


def _write(path: Path, frames: np.ndarray, rate: Fraction, pts_ms: list[int] | None = None, audio: bool = False):
    """H.264 in mp4 at `rate`, or at the millisecond timestamps `pts_ms` (a variable rate); with AAC sound."""
    with av.open(str(path), "w") as container:
        options = {"time_base": Fraction(1, 1000)} if pts_ms else {}
        video = container.add_stream("libx264", rate=rate, **options)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            if pts_ms:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            tone = np.sin(np.arange(round(len(frames) / rate * 16000)) * 2 * np.pi * 440 / 16000).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())


def _frames_of(path: Path) -> tuple[list[float], list[np.ndarray], Fraction]:
    """The frames' times and pixels, and the stream's average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return [f.time for f in frames], [f.to_ndarray(format="rgb24") for f in frames], stream.average_rate


def _drawn_class(rgb: np.ndarray, classes: list[str]) -> str:
    """The class whose colour the label's swatch (top left corner) shows."""
    pixel = rgb[4, 4].astype(float)
    return classes[int(np.argmin([np.abs(pixel - class_color(i)).sum() for i in range(len(classes))]))]


def _label_at(time: float, segments: list[dict]) -> str:
    inside = [s["label"] for s in segments if s["start_s"] <= time < s["end_s"]]
    return inside[0] if inside else segments[-1]["label"]


def test_render_keeps_every_frame_the_rate_and_the_audio_and_shows_each_frames_segment(tmp_path):
    rate = Fraction(30000, 1001)  # 29.97 frames a second
    source, out = tmp_path / "motion.mp4", tmp_path / "annotated.mp4"
    _write(source, _motion_frames(float(rate)), rate, audio=True)
    json_out = io.StringIO()
    annotated = AnnotatedVideo(out, GrowthStandIn.classes)
    assert predict_segments(_standin(), str(source), _segment_args(), SegmentWriter("json", json_out), annotated)
    records = [json.loads(line) for line in json_out.getvalue().splitlines()]
    segments = [r for r in records if r["kind"] == "segment"]
    assert [s["label"] for s in segments] == ORDER  # the stand-in reads the motion: three segments

    in_times, _, in_rate = _frames_of(source)
    out_times, out_frames, out_rate = _frames_of(out)
    assert len(out_times) == len(in_times) == annotated.frames_written == 180
    assert out_rate == in_rate == rate
    assert out_times == pytest.approx([t - in_times[0] for t in in_times], abs=1e-3)
    drawn = [_drawn_class(rgb, GrowthStandIn.classes) for rgb in out_frames]
    assert drawn == [_label_at(t, segments) for t in out_times]
    with av.open(str(source)) as original, av.open(str(out)) as copy:
        assert copy.streams.audio[0].codec_context.name == "aac"
        in_audio = [p for p in original.demux(original.streams.audio[0]) if p.dts is not None]
        out_audio = [p for p in copy.demux(copy.streams.audio[0]) if p.dts is not None]
        assert len(out_audio) >= len(in_audio) - 2  # all sound after the first frame (AAC may prime a packet)
        assert bytes(out_audio[-1]) == bytes(in_audio[-1])  # copied, not encoded again


def test_render_of_a_variable_rate_video_keeps_each_frames_time(tmp_path):
    steps = [33, 50, 41, 66, 25] * 12  # milliseconds between frames, irregular
    pts = list(np.cumsum([0] + steps[:-1]))
    source, out = tmp_path / "variable.mp4", tmp_path / "annotated.mp4"
    frames = render_video("growing", np.random.default_rng(1), 64, 48, len(pts), 24)
    _write(source, frames, Fraction(24), pts_ms=[int(p) for p in pts])
    windows = [WindowLabel(0.0, 1.0, "growing", 0.9), WindowLabel(1.0, 2.0, "shrinking", 0.6)]
    assert render_annotated(source, windows, out, GrowthStandIn.classes) == len(pts)
    times, rgb, _ = _frames_of(out)
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    drawn = [_drawn_class(frame, GrowthStandIn.classes) for frame in rgb]
    assert drawn == ["growing" if t < 1.0 else "shrinking" for t in times]


class RenderWatcher(SegmentWriter):
    """Notes, at each window printed, how many frames the annotated copy has written and holds waiting."""

    def __init__(self, annotated: AnnotatedVideo):
        super().__init__("json", io.StringIO())
        self.annotated, self.seen = annotated, []

    def window(self, source, window):
        super().window(source, window)
        self.seen.append((self.annotated.frames_written, len(self.annotated._pending)))


def test_a_piped_stream_is_rendered_as_it_plays_with_few_frames_waiting(tmp_path, monkeypatch):
    frames = _motion_frames(25)  # 6 s at 25 frames a second, as MPEG-TS on standard input
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mpegts_bytes(frames, 25, start_s=1.4))))
    annotated = AnnotatedVideo(tmp_path / "live.mp4", GrowthStandIn.classes)
    watcher = RenderWatcher(annotated)
    assert predict_segments(_standin(), "-", _segment_args(), watcher, annotated)
    written = [w for w, _ in watcher.seen]
    assert len(written) == 6 and written == sorted(written) and 0 < written[2] < written[-1] < len(frames)
    # the window labelled, the one handed over, the one being decoded (and the frame that closed it): not the stream
    assert max(waiting for _, waiting in watcher.seen) <= 3 * 25 + 1
    times, rgb, _ = _frames_of(tmp_path / "live.mp4")
    assert len(times) == len(frames) and times[0] == pytest.approx(0, abs=1e-3)
    segments = [r for r in map(json.loads, watcher.stream.getvalue().splitlines()) if r["kind"] == "segment"]
    assert [s["label"] for s in segments] == ORDER
    assert [_drawn_class(frame, GrowthStandIn.classes) for frame in rgb] == [_label_at(t, segments) for t in times]


def test_render_needs_segments_one_source_and_an_existing_folder(tmp_path, capsys):
    for argv in (
        ["x3d_xs", "a.mp4", "--render", str(tmp_path / "out.mp4")],
        ["x3d_xs", "a.mp4", "b.mp4", "--segments", "--render", str(tmp_path / "out.mp4")],
        ["x3d_xs", "a.mp4", "--segments", "--render", str(tmp_path / "missing" / "out.mp4")],
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("--render needs --segments and one source") == 2 and "no folder" in err


def test_an_output_that_cannot_be_written_fails_before_decoding(tmp_path):
    with pytest.raises(VideoError, match="cannot write the annotated video") as error:
        AnnotatedVideo(tmp_path / "copy.unknown-format")
    assert "copy.unknown-format" in str(error.value)
