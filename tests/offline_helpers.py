"""Test helpers: a static HTTP server on 127.0.0.1 (no test reaches the internet), AVI and MPEG-TS writers."""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest's output to the test's own
        pass


@contextmanager
def serve_directory(root: Path):
    """Serve the files under `root`; yields the base URL. The server stops when the block exits."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_avi(path: Path, frames: np.ndarray, fps: int) -> None:
    """Frames (T, H, W, 3) uint8 as MPEG-4 Part 2 in AVI, the format UCF101 ships."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
        container.mux(stream.encode())


def mpegts_bytes(frames: np.ndarray, fps: int) -> bytes:
    """Frames (T, H, W, 3) uint8 as H.264 in MPEG-TS, what `ffmpeg ... -f mpegts -` writes to a pipe."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"g": str(fps)}  # a keyframe a second, as a live encoder sends them
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()
