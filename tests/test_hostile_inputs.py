"""Hostile and odd inputs to the data tools and predict, on files made here: nothing lost, nothing unbounded."""

from __future__ import annotations

import json
import pathlib
import resource
import shutil
import tarfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.test_reliability import CLASSES, quiet_trainer, write_tiny_dataset
from tests.test_reliability import DATA_ARGS as TINY_DATA_ARGS
from video_processing.check_data import main as check_data_main
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import shards, video
from video_processing.data.layouts import LayoutError
from video_processing.data.video import VideoError, decode_last_clip, decode_uniform_clips, open_video, write_video
from video_processing.download import extract_ucf101
from video_processing.inference import checkpoints, predictions, streams
from video_processing.inference.checkpoints import CheckpointError, load_checkpoint
from video_processing.inference.classifiers import load_classifier
from video_processing.inference.streams import stream_clips
from video_processing.kinetics_module import KineticsDataModule
from video_processing.predict import main as predict_main
from video_processing.prepare import main as prepare_main
from video_processing.prepare import prepare_dataset

FPS = 10
MODULE_ARGS = dict(num_classes=2, class_names=["cat", "dog"], stem_dim_out=4, num_frames=4, crop_size=32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """1 s of 32 x 32 noise."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 256, (FPS, 32, 32, 3), dtype=np.uint8), FPS)
    return path


def _place(video: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(video, path)
    return path


def _class_folders(root: Path, clip: Path, labels: tuple[str, ...] = ("a", "b")) -> Path:
    for split in ("train", "val"):
        for label in labels:
            _place(clip, root / split / label / f"{label}1.mp4")
    return root


# --- 1-2. prepare: never overwrite, never write outside DST -------------------------------------------------


def test_prepare_keeps_two_videos_that_would_share_a_name_apart(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    _place(clip, src / "train" / "a" / "clip.mp4")
    other = _place(clip, src / "train" / "a" / "clip.avi")
    other.write_bytes(other.read_bytes())  # a second file (the content does not matter for names)
    assert prepare_dataset(src, tmp_path / "dst", short_side=32, workers=1) == []
    written = sorted(p.name for p in (tmp_path / "dst" / "train" / "a").iterdir())
    assert written == ["a1.mp4", "clip.avi.mp4", "clip.mp4"]


def test_prepare_refuses_names_that_still_collide_before_any_work(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    for name in ("clip.avi", "clip.mkv", "clip.avi.mp4", "clip.mkv.mp4"):
        _place(clip, src / "train" / "a" / name)
    with pytest.raises(SystemExit) as exit_info:
        prepare_main([str(src), str(tmp_path / "dst"), "--workers", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "clip.avi" in error and "one name" in error
    assert not (tmp_path / "dst").exists()  # refused before anything was written


def _pytorchvideo_csv(root: Path, clip: Path, train_rows: list[str]) -> Path:
    _place(clip, root / "clips" / "a.mp4")
    _place(clip, root / "clips" / "b.mp4")
    (root / "train.csv").write_text("".join(f"{row}\n" for row in ["clips/a.mp4 0", "clips/b.mp4 1", *train_rows]))
    (root / "val.csv").write_text("clips/a.mp4 0\nclips/b.mp4 1\n")
    return root


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_prepare_puts_a_video_listed_outside_the_source_under_external(tmp_path, clip):
    outside = _place(clip, tmp_path / "outside" / "x.mp4")
    src = _pytorchvideo_csv(tmp_path / "src", clip, ["../outside/x.mp4 1"])
    before = _files_under(tmp_path / "outside")
    dst = tmp_path / "dst"
    assert prepare_dataset(src, dst, short_side=32, workers=1) == []
    assert _files_under(tmp_path / "outside") == before  # nothing written beside DST
    external = dst / "external" / outside.relative_to("/")
    assert external.is_file()
    with open(dst / "train.csv") as f:
        assert f"external/{outside.relative_to('/')} 1" in f.read().splitlines()


def test_prepare_keeps_videos_reached_through_a_link_inside_dst(tmp_path, clip):
    _place(clip, tmp_path / "elsewhere" / "y.mp4")
    src = _pytorchvideo_csv(tmp_path / "src", clip, ["linked/y.mp4 1"])
    (src / "linked").symlink_to(tmp_path / "elsewhere")
    dst = tmp_path / "dst"
    assert prepare_dataset(src, dst, short_side=32, workers=1) == []
    assert (dst / "linked" / "y.mp4").is_file() and not (dst / "linked").is_symlink()
    assert {p.name for p in (tmp_path / "elsewhere").iterdir()} == {"y.mp4"}


def test_prepare_refuses_a_link_in_dst_that_leads_outside(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    outside.mkdir()
    dst.mkdir()
    (dst / "train").symlink_to(outside)
    with pytest.raises(SystemExit):
        prepare_main([str(src), str(dst), "--workers", "1"])
    assert "leads outside" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


# --- 9. an empty class folder --------------------------------------------------------------------------------


def test_check_data_names_a_class_folder_without_videos(tmp_path, clip, capsys):
    src = _class_folders(tmp_path / "src", clip)
    (src / "train" / "empty").mkdir()
    assert check_data_main([str(src), "--workers", "1", "--clip-duration", "1.0", "--num-frames", "4"]) == 1
    out = capsys.readouterr()
    assert "no usable training video of class 'empty'" in out.err
    assert "imbalance (largest / smallest class): train inf" in out.out


def test_the_data_module_refuses_a_training_class_without_videos_and_warns_for_validation(tmp_path, clip, caplog):
    src = _class_folders(tmp_path / "src", clip, ("a", "b", "c"))
    (src / "train" / "empty").mkdir()
    with pytest.raises(LayoutError, match=r"training split has no videos of class 'empty'"):
        KineticsDataModule(str(src), **TINY_DATA_ARGS).setup("fit")
    (src / "train" / "empty").rmdir()
    (src / "val" / "a" / "a1.mp4").unlink()
    KineticsDataModule(str(src), **TINY_DATA_ARGS).setup("fit")
    assert "validation split has no videos of class 'a'" in caplog.text


# --- 4, 5, 10. checkpoints that ask for more than they carry, or are not what they seem -------------------------


def _fabricated_checkpoint(path: Path, hparams: dict | None = None, state: dict | None = None, **extra) -> Path:
    """A checkpoint as training saves it (state_dict and hyper_parameters) of a 2-class thin ResNet; `hparams`
    and `state` replace what it says."""
    module = VideoClassificationLightningModule(**MODULE_ARGS)
    saved = {
        "state_dict": module.state_dict() if state is None else state,
        "hyper_parameters": {**module.hparams, **(hparams or {})},
        **extra,
    }
    torch.save(saved, path)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_tiny_checkpoint_describing_a_huge_network_is_refused_before_it_is_built(tmp_path):
    path = _fabricated_checkpoint(tmp_path / "tiny.ckpt", {"stem_dim_out": 1024, "model_depth": 152}, state={})
    assert path.stat().st_size < 4096
    before = _peak_rss_mb()
    with pytest.raises(CheckpointError, match=r"do not match the file's: model\.backbone\.blocks\.0\.conv\.weight"):
        load_classifier(path)
    assert _peak_rss_mb() - before < 500  # 21 billion parameters were never allocated (78 GiB)


def test_weights_of_another_shape_are_refused_naming_the_first_key(tmp_path):
    path = _fabricated_checkpoint(tmp_path / "wide.ckpt", {"stem_dim_out": 8})  # weights of width 4
    with pytest.raises(CheckpointError, match=r"model\.backbone\.blocks\.0\.conv\.weight is \(8, 3, 3, 7, 7\) in the"):
        load_classifier(path)


def test_a_pickle_that_inflates_is_refused_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_PICKLE_BYTES", 1 << 20)
    plain = _fabricated_checkpoint(tmp_path / "plain.ckpt", notes="x" * (2 << 20))
    inflating = tmp_path / "inflating.ckpt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(inflating, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(
                info.filename, source.read(info), zipfile.ZIP_DEFLATED if info.filename.endswith(".pkl") else 0
            )
    assert inflating.stat().st_size < plain.stat().st_size // 4
    with pytest.raises(CheckpointError, match=r"pickle .* inflates to 2,\d{3},\d{3} bytes, more than the 1,048,576"):
        load_checkpoint(inflating)
    monkeypatch.setattr(checkpoints, "MAX_PICKLE_BYTES", 4 << 20)  # under the bound, the same file loads
    assert len(load_checkpoint(inflating)["notes"]) == 2 << 20


def test_a_legacy_checkpoint_loads_trusted_or_not(tmp_path):
    module = VideoClassificationLightningModule(**MODULE_ARGS)
    saved = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save(saved, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    for trust in (False, True):
        assert load_classifier(tmp_path / "legacy.ckpt", trust=trust).class_names == ["cat", "dog"]


def test_a_torchscript_file_is_named_as_one_with_or_without_trust(tmp_path, capsys):
    torch.jit.script(torch.nn.Linear(2, 2)).save(tmp_path / "model.pt")
    for trust in ([], ["--trust-checkpoint"]):
        assert predict_main([str(tmp_path / "model.pt"), "video.mp4", *trust]) == 2
        error = capsys.readouterr().err
        assert "is a TorchScript file (torch.jit.save)" in error and "weights_only" not in error


def test_torchs_advice_to_drop_weights_only_never_reaches_the_user(tmp_path, capsys):
    (tmp_path / "garbage.ckpt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    assert predict_main([str(tmp_path / "garbage.ckpt"), "video.mp4"]) == 2
    error = capsys.readouterr().err
    assert "cannot load" in error and "weights_only" not in error and "arbitrary code" not in error


def test_a_checkpoint_holding_a_windows_path_loads_as_a_pure_path(tmp_path):
    path = _fabricated_checkpoint(tmp_path / "win.ckpt", datamodule_hyper_parameters={"data_path": "x"})
    data_path = pathlib.PureWindowsPath(r"C:\\data\\kinetics")
    saved = torch.load(path, weights_only=True)
    saved["datamodule_hyper_parameters"]["data_path"] = data_path
    torch.save(saved, path)
    # the file names pathlib.WindowsPath, as a checkpoint written on Windows does
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp_path / "windows.ckpt", "w") as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(
                info, data.replace(b"PureWindowsPath", b"WindowsPath") if info.filename.endswith(".pkl") else data
            )
    for trust in (False, True):
        loaded = load_checkpoint(tmp_path / "windows.ckpt", trust=trust)
        assert loaded["datamodule_hyper_parameters"]["data_path"] == data_path
    assert load_classifier(tmp_path / "windows.ckpt").class_names == ["cat", "dog"]


# --- 6. timestamps far apart ---------------------------------------------------------------------------------


def write_gap_video(path: Path, gap_s: float, fps: int = FPS, frames: int = 20) -> Path:
    """`frames` frames at `fps`, then one more `gap_s` seconds on (Matroska: 64-bit millisecond timestamps)."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for pts in [*range(frames), round(gap_s * fps)]:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory) -> Path:
    return write_gap_video(tmp_path_factory.mktemp("gap") / "gap.mkv", 1e9)


def test_uniform_clips_of_a_video_with_a_1e9_s_gap_are_decoded_with_one_warning(gap_video, caplog):
    before = _peak_rss_mb()
    clips = decode_uniform_clips(gap_video, 1.0, 4)
    assert len(clips) == 2 and _peak_rss_mb() - before < 200
    (warning,) = caplog.records
    assert "skipped 999999998 of 1000000000 clip windows, between 2.00 s and 1000000000.00 s" in warning.message


def test_predict_on_a_video_with_a_1e9_s_gap_prints_one_warning(gap_video, tmp_path, capsys, caplog):
    checkpoint = _fabricated_checkpoint(tmp_path / "model.ckpt")
    assert predict_main([str(checkpoint), str(gap_video)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{gap_video} (1 clips)") and len(captured.out) < 500  # 2-s clips
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "skipped 500000000 windows between 2.00 s and 1000000002.00 s" in warning.message


# --- 7. huge frames ------------------------------------------------------------------------------------------


def test_frames_far_larger_than_the_model_needs_are_scaled_as_they_are_decoded(tmp_path, monkeypatch):
    path = tmp_path / "large.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 256, (10, 240, 320, 3), dtype=np.uint8), FPS)
    held = []
    real_held = streams._held
    monkeypatch.setattr(streams, "_held", lambda *args: held.append(real_held(*args)) or held[-1])
    with open_video(path) as container:  # up to 1080p, a window holds decoded frames and scales the kept ones
        (clip,) = stream_clips(container, path, 1.0, 1.0, 4, short_side=40)
    assert clip.frames.shape == (4, 3, 40, 53) and all(isinstance(frame, av.VideoFrame) for frame in held)
    monkeypatch.setattr(streams, "HOLD_DECODED_MAX_PIXELS", 320 * 240 - 1)  # as if these were 4K frames
    held.clear()
    with open_video(path) as container:
        (scaled,) = stream_clips(container, path, 1.0, 1.0, 4, short_side=40)
    assert torch.equal(scaled.frames, clip.frames)  # the same pixels, scaled as they arrived
    assert all(tuple(frame.shape) == (3, 40, 53) for frame in held)  # the window never held a full-size frame
    assert decode_last_clip(path, 1.0, 4, short_side=40).shape == (4, 3, 40, 53)
    # up to twice the short side, frames are decoded as they are, as validation decodes them
    assert decode_last_clip(path, 1.0, 4, short_side=120).shape == (4, 3, 240, 320)


def test_frames_over_the_largest_size_are_refused_naming_the_size(tmp_path, monkeypatch):
    path = tmp_path / "large.mp4"
    write_video(path, np.zeros((10, 240, 320, 3), dtype=np.uint8), FPS)
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 320 * 239)
    with pytest.raises(VideoError, match=r"frames of 320x240 are more than the 76,480 pixels .* --short-side 256"):
        open_video(path)


# --- 10. what predict prints ---------------------------------------------------------------------------------


def test_class_and_file_names_cannot_forge_lines_or_send_terminal_escapes(clip, tmp_path, capsys):
    names = ["cat\nFAKE  99.00%  dog", "\x1b[2Jdog"]
    checkpoint = _fabricated_checkpoint(tmp_path / "model.ckpt", {"class_names": names})
    video = _place(clip, tmp_path / "new\nline.mp4")
    assert predict_main([str(checkpoint), str(video), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2Jdog" in out and "cat\\nFAKE" in out and "new\\nline.mp4" in out
    assert len(out.splitlines()) == 3
    assert predict_main([str(checkpoint), str(video), "--json"]) == 0  # JSON keeps the names as they are
    assert sorted(entry["class"] for entry in json.loads(capsys.readouterr().out)[0]["top"]) == sorted(names)


def test_ctrl_c_during_whole_file_predict_prints_the_finished_files_and_exits_130(clip, tmp_path, capsys, monkeypatch):
    checkpoint = _fabricated_checkpoint(tmp_path / "model.ckpt")
    real = predictions.predict_video

    def interrupted_on_the_second(classifier, path, top_k):
        if path == "second.mp4":
            raise KeyboardInterrupt
        return real(classifier, path, top_k)

    monkeypatch.setattr(predictions, "predict_video", interrupted_on_the_second)
    for output in ([], ["--json"]):
        assert predict_main([str(checkpoint), str(clip), "second.mp4", "third.mp4", *output]) == 130
        captured = capsys.readouterr()
        assert "interrupted: 1 of 3 files done" in captured.err and "Traceback" not in captured.err
        done = json.loads(captured.out)[0]["path"] if output else captured.out.splitlines()[0]
        assert done.startswith(str(clip))


def test_a_url_password_is_never_printed(tmp_path, capsys):
    checkpoint = _fabricated_checkpoint(tmp_path / "model.ckpt")
    url = "http://user:secret@127.0.0.1:9/live.ts"  # the discard port: nothing listens
    for output in ([], ["--json"], ["--csv"]):
        assert predict_main([str(checkpoint), url, "--segments", "--timeout-s", "2", *output]) == 1
        captured = capsys.readouterr()
        assert "secret" not in captured.out + captured.err and "user:***@127.0.0.1" in captured.err


# --- 10. an archive holding one clip twice -------------------------------------------------------------------


def test_an_archive_holding_one_clip_twice_extracts_it_once_and_says_so(clip, tmp_path, caplog):
    archive = tmp_path / "ucf.tar"
    with tarfile.open(archive, "w") as tar:
        for folder in ("a", "b"):
            tar.add(clip, f"{folder}/v_Jump_g08_c01.avi")
    counts = extract_ucf101(archive, tmp_path / "out")
    assert counts == {("train", "Jump"): 1}
    assert (
        "holds v_Jump_g08_c01.avi twice (a/v_Jump_g08_c01.avi and b/v_Jump_g08_c01.avi): kept the first" in caplog.text
    )


# --- 8. damaged shards ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory) -> Path:
    """The tiny set (3 classes x 4 training videos) as shards of chunks of about 2 videos."""
    root = tmp_path_factory.mktemp("shards")
    out = root / "shards"
    assert shards.write_shards(write_tiny_dataset(root / "data"), out, chunk_bytes="30KB", workers=1) == []
    return out


def _damaged_chunk(tiny_shards: Path, tmp_path: Path, damage) -> tuple[Path, str, int]:
    """A copy of the shards whose second training chunk `damage` rewrites; the copy, the chunk's name, its samples."""
    copy = Path(shutil.copytree(tiny_shards, tmp_path / "shards"))
    chunk = json.loads((copy / "train" / "index.json").read_text())["chunks"][1]
    path = copy / "train" / chunk["filename"]
    path.write_bytes(damage(path.read_bytes()))
    return copy, chunk["filename"], chunk["chunk_size"]


@pytest.mark.parametrize(
    "damage",
    [lambda data: bytes(64) + data[64:], lambda data: data[: len(data) // 2]],
    ids=["zeroed", "truncated"],
)
def test_a_damaged_chunk_is_named_its_samples_skipped_and_counted_and_training_goes_on(
    tiny_shards, tmp_path, caplog, damage
):
    shard_copy, name, samples = _damaged_chunk(tiny_shards, tmp_path, damage)
    data = KineticsDataModule(str(shard_copy), **{**TINY_DATA_ARGS, "batch_size": 2})
    model = VideoClassificationLightningModule(**{**MODULE_ARGS, "num_classes": 3, "class_names": list(CLASSES)})
    trainer = quiet_trainer(max_epochs=1, limit_val_batches=0)
    trainer.fit(model, data)
    assert trainer.global_step > 0 and trainer.callback_metrics["train_skipped_videos"] == samples
    warnings = [r.getMessage() for r in caplog.records if "damaged shard chunk" in r.getMessage()]
    assert len(warnings) == 1 and f"train/{name}" in warnings[0]
