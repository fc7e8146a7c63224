"""Test helpers: the MPEG-TS bytes a live encoder pipes (`ffmpeg ... -f mpegts -`), written with PyAV, and a
live source that stalls."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from collections.abc import Iterator

import av
import numpy as np


def mpegts_bytes(frames: np.ndarray, fps: int, start_s: float = 0.0) -> bytes:
    """Frames (T, H, W, 3) uint8 as H.264 in MPEG-TS, what `ffmpeg ... -f mpegts -` writes to a pipe.

    `start_s` is the first frame's timestamp (ffmpeg's own MPEG-TS files start near 1.4 s).
    """
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"g": str(fps)}  # a keyframe a second, as a live encoder sends them
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            frame.pts = round(start_s * fps) + index  # in the encoder's time base, 1 / fps
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


@contextlib.contextmanager
def stalling_server(data: bytes, stall_s: float = 20.0) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that sends `data`, then nothing for `stall_s` (a camera that hung), then closes.

    Yields the stream's URL. Bounded in time: the stall ends after `stall_s`, and when the block exits.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(stall_s)
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError), listener:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data)
                done.wait(stall_s)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/live.ts"
    finally:
        done.set()
        thread.join(5)
