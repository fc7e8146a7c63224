"""`make lab`: its kernel registration and server command, run here on a free port as the Makefile writes them."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).parents[1]
STARTUP_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_commands(port: int) -> tuple[list[str], list[str]]:
    """The Makefile's kernel registration and server command, on this test's Python environment."""
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "print-lab-cmd", f"BIN={Path(sys.executable).parent}",
         f"LAB_PORT={port}", "NO_BROWSER=1"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    register, serve = (shlex.split(line) for line in printed.splitlines())
    return register, serve


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _wait_until_serving(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with status {server.returncode} before answering")
        try:
            json.loads(_get(url))
            return
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {url} within {STARTUP_TIMEOUT_S} s")


@pytest.fixture
def jupyter_dirs(tmp_path, monkeypatch) -> dict[str, str]:
    """Jupyter's config, data (kernels) and runtime folders in the test's folder, not the user's home."""
    for name in ("CONFIG", "DATA", "RUNTIME"):
        monkeypatch.setenv(f"JUPYTER_{name}_DIR", str(tmp_path / name.lower()))
    return dict(os.environ)


def test_make_lab_serves_jupyterlab_with_a_kernel_that_imports_the_package(jupyter_dirs, tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    register, serve = _lab_commands(port)
    assert ("--allow-root" in serve) == (os.geteuid() == 0)  # Jupyter refuses root without it
    subprocess.run(register, cwd=ROOT, env=jupyter_dirs, check=True, capture_output=True, timeout=120)

    log = open(tmp_path / "lab.log", "wb")
    server = subprocess.Popen(
        [*serve, f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0"],
        cwd=ROOT, env=jupyter_dirs, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_serving(server, f"{base}/api/status?token={token}")
        assert b"JupyterLab" in _get(f"{base}/lab?token={token}")
        contents = json.loads(_get(f"{base}/api/contents?token={token}"))
        assert any(item["name"].startswith("01_") for item in contents["content"])  # serves notebooks/
        kernelspecs = json.loads(_get(f"{base}/api/kernelspecs?token={token}"))["kernelspecs"]
        assert "video-classification" in kernelspecs
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()

    # In notebooks/, as the lab starts it: the package must come from the environment, not the current folder.
    kernel, client = start_new_kernel(
        kernel_name="video-classification", startup_timeout=STARTUP_TIMEOUT_S, cwd=str(ROOT / "notebooks")
    )
    printed = []
    try:
        reply = client.execute_interactive(
            "import video_processing; print(video_processing.__name__)",
            timeout=STARTUP_TIMEOUT_S,
            output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
        )
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "video_processing" in "".join(printed)
