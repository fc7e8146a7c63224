"""Stand-ins for what the tutorial downloads, so smoke runs and tests drive the real download code offline.

    sha256 = make_ucf101_archive(Path("served/UCF101_subset.tar.gz"))  # laid out like the UCF101 subset
    weights = write_standin_weights("x3d_xs", Path("served"))          # random weights, the real file's format
    with serve_directory(Path("served")) as url:                       # both over HTTP on 127.0.0.1
        ensure_dataset("ucf101-subset", out, url=f"{url}/UCF101_subset.tar.gz", sha256=sha256)

The archive holds self-made motion videos (video_processing.synthetic) under UCF101's names, so the download,
checksum and group-wise split run exactly as they do on the real file; the weights have the real file's keys and
shapes, so loading them runs the real loading code. Neither teaches a network anything.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import av
import numpy as np
import torch

from video_processing.models import backbones
from video_processing.synthetic import CLASSES, render_video

# The real archive: UCF101_subset/{train,val,test}/<Class>/v_<Class>_g<group>_c<clip>.avi, uncompressed despite
# its .gz name. Its own split mixes groups, which is why download.py re-splits by group.
ARCHIVE_ROOT = "UCF101_subset"
ARCHIVE_SPLITS = ("train", "val", "test")


def write_avi(target: Path | IO[bytes], frames: np.ndarray, fps: int) -> None:
    """Frames (T, H, W, 3) uint8 as MPEG-4 Part 2 in AVI, the format UCF101 ships, to a file or a buffer."""
    with av.open(str(target) if isinstance(target, Path) else target, "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
        container.mux(stream.encode())


def ucf101_class_name(motion: str) -> str:
    """UCF101 spells classes in CamelCase without separators: "moving_up" -> "MovingUp"."""
    return "".join(part.capitalize() for part in motion.split("_"))


def make_ucf101_archive(
    path: Path,
    *,
    num_classes: int = 3,
    groups: Sequence[int] = (1, 8, 9),
    clips_per_group: int = 2,
    size: tuple[int, int] = (64, 48),
    seconds: float = 1.2,
    fps: int = 25,
    compression: str = "",
    seed: int = 0,
) -> str:
    """Write a tar laid out like the UCF101 subset at `path`; return its sha256 (what the download checks).

    `num_classes` motion classes of video_processing.synthetic, `clips_per_group` clips for each of `groups`
    (UCF101's official split 1 validates on groups 1-7). `compression` "" (as the real file) or "gz". The bytes
    depend only on the arguments, so a rebuilt archive matches a copy downloaded before.
    """
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be 1..{len(CLASSES)}, got {num_classes}")
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tarfile.open(path, f"w:{compression}") as tar:
        for motion in CLASSES[:num_classes]:
            label = ucf101_class_name(motion)
            for index, (group, clip) in enumerate((g, c) for g in groups for c in range(1, clips_per_group + 1)):
                frames = render_video(motion, rng, width, height, round(seconds * fps), fps)
                # Round-robin over the archive's splits mixes each group across them, as the real file does.
                folder = ARCHIVE_SPLITS[index % len(ARCHIVE_SPLITS)]
                _add_bytes(tar, f"{ARCHIVE_ROOT}/{folder}/{label}/v_{label}_g{group:02d}_c{clip:02d}.avi", frames, fps)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, frames: np.ndarray, fps: int) -> None:
    buffer = io.BytesIO()
    write_avi(buffer, frames, fps)
    info = tarfile.TarInfo(name)
    # The muxer seeks back to finish the header, so the size is the buffer's, not its position.
    info.size, info.mtime, info.mode = buffer.getbuffer().nbytes, 0, 0o644  # fixed mtime: same bytes each time
    buffer.seek(0)
    tar.addfile(info, buffer)


def write_standin_weights(
    name: str, folder: Path, *, num_frames: int | None = None, crop_size: int | None = None, seed: int = 0
) -> Path:
    """Randomly initialised Kinetics-400 weights of backbone `name`, saved in its real file's format; the path.

    PyTorchVideo's zoo files are training checkpoints {"model_state": state_dict}; torchvision's are a plain
    state dict; Hugging Face's a safetensors file. The file is named `<name>_standin.pth` (`.safetensors`),
    never the real file's name, so torch.hub's cache cannot mistake it for the real weights. Frames and crop
    default to the registry entry's.
    """
    entry = backbones.get_backbone(name)
    with torch.random.fork_rng(devices=[]):  # seeded, without disturbing the caller's random state
        torch.manual_seed(seed)
        model = backbones.build_backbone(
            name, num_frames=num_frames or entry.num_frames, crop_size=crop_size or entry.crop_size
        )
    state = model.state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    if entry.weights_url.endswith(".safetensors"):  # Hugging Face's format
        from safetensors.torch import save_file

        path = folder / f"{name}_standin.safetensors"
        save_file({key: tensor.contiguous() for key, tensor in state.items()}, path)
        return path
    path = folder / f"{name}_standin.pth"
    torch.save({"model_state": state} if entry.weights_url.startswith(backbones.ZOO) else state, path)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the caller's output (a notebook's, a test's) its own
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve the files under `root` on 127.0.0.1 from a background thread; yields the base URL.

    The port is a free one the system picks. The server stops when the block exits.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    # A short poll interval: shutdown() waits for one, and tests start and stop many servers.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
