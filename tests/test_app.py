"""The app: the numbers of `predict --json` and `predict --segments --json`, in Python and on the page read by
headless Chromium, with nothing sent off this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import av
import pytest
from test_predict import ROOT, _frames, checkpoint  # noqa: F401  (the checkpoint fixture: a thin 3-class ResNet)
from test_site import CHROMIUM_ARGS, chromium  # noqa: F401  (the chromium fixture: fails in CI if missing)

from video_processing.app import classify
from video_processing.data.video import write_video
from video_processing.inference.classifiers import load_classifier
from video_processing.predict import main as predict


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("app") / "three_seconds.mp4"
    write_video(path, _frames(3.0, 20, 11), 20)
    return path


def _predict_json(capsys, *argv: str) -> list[dict]:
    capsys.readouterr()
    assert predict(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]


def _expected(capsys, model: Path, video: Path) -> dict:
    """The app's numbers as the command line gives them."""
    (whole,) = _predict_json(capsys, str(model), str(video), "--json")
    rows = _predict_json(capsys, str(model), str(video), "--segments", "--json")
    by_kind = {kind: [_fields(row) for row in rows if row["kind"] == kind] for kind in ("window", "segment")}
    return {"top": whole["top"], "windows": by_kind["window"], "segments": by_kind["segment"]}


def _fields(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in ("source", "kind")}


def test_classify_gives_the_numbers_of_predict_json_and_an_annotated_copy(checkpoint, video, tmp_path, capsys):  # noqa: F811
    result = classify(load_classifier(checkpoint), video, tmp_path)
    expected = _expected(capsys, checkpoint, video)
    assert len(expected["top"]) == 3 and len(expected["windows"]) == 3
    assert {key: result[key] for key in expected} == expected
    with av.open(result["annotated"]) as copy:
        assert sum(1 for _ in copy.decode(video=0)) == 60  # every frame of the 3 s at 20 frames a second


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConnectionRecorder:
    """A proxy on 127.0.0.1 that answers nothing and notes every connection: set as the app's HTTP(S) proxy, it
    sees any request the server would send off the machine (httpx and urllib take the proxy from the environment)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.5)
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                self.requests.append(connection.recv(1024))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def app_url(checkpoint, tmp_path):  # noqa: F811
    """The app serving the checkpoint on 127.0.0.1, started as a user would; what it tried to send elsewhere."""
    port, recorder = _free_port(), ConnectionRecorder()
    env = {
        **{k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"},  # the app turns it off itself
        "PYTHONPATH": str(ROOT),
        "HTTP_PROXY": recorder.url,
        "HTTPS_PROXY": recorder.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
        "PYTHONUNBUFFERED": "1",  # the log says what was started as it happens
    }
    command = [sys.executable, "-m", "video_processing.app", str(checkpoint), "--port", str(port)]
    log = open(tmp_path / "app.log", "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the app did not start:\n{(tmp_path / 'app.log').read_text()}")
                time.sleep(0.5)
        yield url, recorder, tmp_path / "app.log"
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        recorder.close()


def test_the_page_shows_the_numbers_of_predict_json(app_url, chromium, checkpoint, video, capsys):  # noqa: F811
    from playwright.sync_api import sync_playwright

    url, recorder, log = app_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            outside = []
            page.route("**/*", lambda route: _local_only(route, outside))
            page.goto(url, wait_until="load")
            page.locator("#video input[type=file]").set_input_files(str(video))
            page.locator("#video video").wait_for(timeout=60_000)  # the upload has arrived
            page.locator("#classify").click()
            numbers = page.locator("#numbers textarea")
            page.wait_for_function(
                "() => document.querySelector('#numbers textarea').value.length > 0", timeout=120_000
            )
            shown = json.loads(numbers.input_value())
            annotated = page.locator("#annotated video").get_attribute("src", timeout=30_000)
            top_text = page.locator("#top").inner_text()
            if os.environ.get("VIDEO_PROCESSING_APP_SCREENSHOT"):
                page.screenshot(path=os.environ["VIDEO_PROCESSING_APP_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    expected = _expected(capsys, checkpoint, video)
    assert shown == expected
    assert expected["top"][0]["class"] in top_text and annotated
    assert not outside and not recorder.requests, (outside, recorder.requests)
    said = log.read_text()  # served here only: no Node server for server-side rendering, no share link
    assert f"Running on local URL:  {url.rstrip('/')}" in said and "SSR" not in said and "public URL" not in said


def _local_only(route, outside: list[str]) -> None:
    if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        outside.append(route.request.url)
        route.abort()
