"""standins: the UCF101-like archive, stand-in weights in each real format, the 127.0.0.1 file server."""

from __future__ import annotations

import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from video_processing.data.video import open_video, video_info
from video_processing.download import UCF101_NAME
from video_processing.lessons.standins import (
    make_ucf101_archive,
    serve_directory,
    write_standin_weights,
)
from video_processing.models import backbones
from video_processing.models.backbones import build_backbone


def test_the_archive_is_laid_out_like_the_ucf101_subset(tmp_path):
    archive = tmp_path / "UCF101_subset.tar.gz"
    sha256 = make_ucf101_archive(archive, num_classes=2, groups=(3, 12), clips_per_group=2, size=(64, 48))
    with tarfile.open(archive, "r:") as tar:  # uncompressed despite the name, as the real file
        names = tar.getnames()
        clip = tar.extractfile("UCF101_subset/train/Growing/v_Growing_g03_c01.avi").read()
    assert len(names) == 2 * 2 * 2
    for name in names:
        top, split, label, file_name = name.split("/")
        match = UCF101_NAME.fullmatch(file_name)
        assert top == "UCF101_subset" and split in ("train", "val", "test") and match and match["label"] == label
    assert {name.split("/")[2] for name in names} == {"Growing", "MovingDown"}
    (tmp_path / "clip.avi").write_bytes(clip)
    with open_video(tmp_path / "clip.avi") as container:
        info = video_info(container)
    assert (info.width, info.height, info.codec) == (64, 48, "mpeg4") and info.duration_s == pytest.approx(1.2)
    # Same arguments, same bytes: a rebuilt stand-in matches the copy a smoke run downloaded before.
    again = make_ucf101_archive(tmp_path / "again.tar", num_classes=2, groups=(3, 12), clips_per_group=2)
    assert again == sha256


def test_an_impossible_class_count_is_refused(tmp_path):
    with pytest.raises(ValueError, match="num_classes must be 1..6"):
        make_ucf101_archive(tmp_path / "a.tar", num_classes=7)


@pytest.mark.parametrize(("name", "zoo_format"), [("x3d_xs", True), ("r2plus1d_18", False)])
def test_standin_weights_have_the_real_format_and_load_as_pretrained(name, zoo_format, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = write_standin_weights(name, tmp_path / "served", num_frames=4, crop_size=64)
    saved = torch.load(path, weights_only=True)
    assert ("model_state" in saved) == zoo_format
    state = saved["model_state"] if zoo_format else saved
    # Never under the real file's name, so torch.hub's cache keeps the real weights apart.
    assert path.name == f"{name}_standin.pth" and path.name != Path(backbones.get_backbone(name).weights_url).name
    with serve_directory(tmp_path / "served") as url:
        model = build_backbone(name, num_frames=4, crop_size=64, pretrained=True, weights_url=f"{url}/{path.name}")
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[key], rtol=0, atol=0, msg=key)


def test_videomae_standin_weights_are_safetensors_cached_apart_from_the_real_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = write_standin_weights("videomae_base", tmp_path / "served", num_frames=2, crop_size=32)
    assert path.name == "videomae_base_standin.safetensors"
    with serve_directory(tmp_path / "served") as url:
        model = build_backbone(
            "videomae_base", num_frames=2, crop_size=32, pretrained=True, weights_url=f"{url}/{path.name}"
        )
    cached = sorted(p.name for p in (tmp_path / "torch" / "hub" / "checkpoints").iterdir())
    assert cached == ["videomae_base_standin.safetensors"]  # never videomae_base-model.safetensors, the real one's
    state = load_file(path)
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[key], rtol=0, atol=0, msg=key)


def test_standin_weights_are_the_same_file_each_time_and_leave_the_random_state_alone(tmp_path):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = write_standin_weights("x3d_xs", tmp_path / "a", num_frames=4, crop_size=64)
    assert torch.equal(torch.rand(1), expected_next)
    again = write_standin_weights("x3d_xs", tmp_path / "b", num_frames=4, crop_size=64)
    assert again.read_bytes() == first.read_bytes()


def test_the_server_serves_a_folder_until_the_block_ends(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01payload")
    with serve_directory(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/a.bin", timeout=10) as response:
            assert response.read() == b"\x00\x01payload"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{url}/missing.bin", timeout=10)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/a.bin", timeout=10)
