"""Test helper: the MPEG-TS bytes a live encoder pipes (`ffmpeg ... -f mpegts -`), written with PyAV."""

from __future__ import annotations

import io

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
