"""Test helper: the MPEG-TS bytes a live encoder pipes (`ffmpeg ... -f mpegts -`), written with PyAV."""

from __future__ import annotations

import io

import av
import numpy as np


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
