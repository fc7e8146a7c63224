"""Hostile servers on 127.0.0.1: downloads and streams that stall, are cut short, resume, or send noise."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from conftest import write_clip

from video_processing import download
from video_processing.classification import VideoClassificationLightningModule
from video_processing.data import downloads
from video_processing.data.downloads import DownloadError, fetch, redact
from video_processing.data.video import VideoError
from video_processing.inference.streams import open_stream
from video_processing.lessons.standins import serve_directory
from video_processing.models.backbones import PretrainedWeightsError, load_pretrained_state
from video_processing.predict import main as predict_main

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes


class Hostile(BaseHTTPRequestHandler):
    """/stall: headers, then nothing; /short: half the announced bytes; /ranged: half, then the rest on a Range
    request; /random: noise of the announced length; /slow-random: noise for ever, slowly."""

    protocol_version = "HTTP/1.0"  # the connection closes after each answer: a cut is a cut

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
        mode = self.path.strip("/")
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers.get("Range") else 0
        if mode == "ranged" and start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            self.send_header("Content-Length", str(len(PAYLOAD) - start))
            self.end_headers()
            self.wfile.write(PAYLOAD[start:])
            return
        self.send_response(200)
        if mode != "slow-random":
            self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if mode == "stall":
            self.wfile.flush()
            self.server.stop.wait(20)
        elif mode in ("short", "ranged"):
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
        elif mode == "random":
            self.wfile.write(os.urandom(len(PAYLOAD)))
        elif mode == "slow-random":
            with contextlib.suppress(OSError):
                while not self.server.stop.wait(0.02):
                    self.wfile.write(os.urandom(4096))


@pytest.fixture
def server(monkeypatch) -> Iterator[ThreadingHTTPServer]:
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.01)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.requests, server.stop = [], threading.Event()
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


def test_a_stalled_download_ends_after_its_timeout_saying_stalled_and_naming_the_url(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"/stall: stalled: no data for 0\.5 s .*\(after 2 tries\)"):
        fetch(f"{server.url}/stall", tmp_path / "x.bin", timeout_s=0.5, retries=1, progress=False)
    assert time.monotonic() - started < 10 and len(server.requests) == 2
    assert not (tmp_path / "x.bin").exists()


def test_a_download_cut_short_is_retried_and_then_reported_as_cut_short(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/short: cut short: the connection closed after 512,000 of 1,024,000"):
        fetch(f"{server.url}/short", tmp_path / "x.bin", timeout_s=5, retries=2, progress=False)
    assert [r[1] for r in server.requests] == [None, "bytes=512000-", "bytes=512000-"]  # asked to resume; refused


def test_a_download_cut_short_resumes_where_the_server_allows_ranges(server, tmp_path):
    path = fetch(f"{server.url}/ranged", tmp_path / "x.bin", timeout_s=5, retries=1, progress=False)
    assert path.read_bytes() == PAYLOAD and not downloads.partial_path(path).exists()
    assert [r[1] for r in server.requests] == [None, "bytes=512000-"]


def test_noise_that_flows_is_downloaded_then_refused_by_its_checksum_never_called_stalled(server, tmp_path):
    path = fetch(f"{server.url}/random", tmp_path / "x.bin", timeout_s=5, retries=0, progress=False)
    assert path.stat().st_size == len(PAYLOAD)
    with pytest.raises(download.ChecksumError, match="corrupt or the file changed") as error:
        download.verify(path, "0" * 64)
    assert "stalled" not in str(error.value)


def test_a_noise_stream_is_not_called_stalled(server):
    with pytest.raises(VideoError) as error:
        open_stream(f"{server.url}/slow-random", timeout_s=1.0)
    assert "stalled" not in error.value.reason and "no video recognised" in error.value.reason


def test_the_download_command_takes_a_timeout_and_never_prints_a_password(server, tmp_path, capsys):
    url = server.url.replace("://", "://user:secret@") + "/stall"
    args = ["ucf101-subset", "--out", str(tmp_path / "ucf"), "--url", url, "--sha256", "0" * 64]
    assert download.main([*args, "--timeout-s", "0.5", "--retries", "0"]) == 1
    captured = capsys.readouterr()
    assert "stalled" in captured.err and "user:***@127.0.0.1" in captured.err
    assert "secret" not in captured.out + captured.err
    assert server.requests[0][2] == "Basic dXNlcjpzZWNyZXQ="  # the credentials went as a header, not the host


def test_backbone_weights_come_through_the_same_download(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(downloads, "DEFAULT_TIMEOUT_S", 0.5)
    monkeypatch.setattr(downloads, "DEFAULT_RETRIES", 1)
    with pytest.raises(PretrainedWeightsError, match=r"/stall: stalled: no data for 0\.5 s"):
        load_pretrained_state("x3d_xs", f"{server.url}/stall")
    assert len(server.requests) == 2
    assert list(Path(tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:secret@host/x", "http://user:***@host/x"),
        ("rtsp://admin:p%40ss@10.0.0.2:554/live (refused)", "rtsp://admin:***@10.0.0.2:554/live (refused)"),
        ("https://host/x?token=1", "https://host/x?token=1"),
        ("/data/user:x@y.mp4", "/data/user:x@y.mp4"),
    ],
)
def test_redact_hides_only_a_urls_password(text, shown):
    assert redact(text) == shown


def test_predict_rows_name_a_url_without_its_password(tmp_path, capsys):
    write_clip(tmp_path / "served" / "a.mp4", seconds=2.0)
    module = VideoClassificationLightningModule(num_classes=2, stem_dim_out=4, num_frames=4, crop_size=32)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "m.ckpt")
    with serve_directory(tmp_path / "served") as url:
        source = url.replace("://", "://user:secret@") + "/a.mp4"
        for output in (["--json"], ["--csv"], []):
            assert predict_main([str(tmp_path / "m.ckpt"), source, "--segments", "--window", "1", *output]) == 0
            captured = capsys.readouterr()
            assert "secret" not in captured.out + captured.err
            assert "user:***@127.0.0.1" in captured.out and "segment" in captured.out
