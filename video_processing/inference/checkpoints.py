"""Loading checkpoints as data: a file someone shared cannot run code here unless its user says they trust it.

A checkpoint is a pickle, and unpickling can call any function the file names. `torch.load(weights_only=True)`
rebuilds only tensors and plain types (dict, list, tuple, str, numbers, None), and refuses anything else before
calling it. That allow-list, plus `SAFE_GLOBALS`, is exactly what this package's checkpoints hold: the weights,
the optimizer and callback states, and hyperparameters saved as plain types, or as a path where a data module was
given a `pathlib.Path` (tests/test_checkpoints.py loads a plain, a fine-tuned, a shards-trained and a compiled
one). A file that names anything else is refused with `UntrustedCheckpointError`; `trust=True` (the commands'
--trust-checkpoint) loads it as a full pickle.

Loading for inference also turns `compile` off: predict and export run the plain network, so they need no C++
compiler and export traces the module itself, not a compiled call.

torch and Lightning are imported where a file is loaded: the command lines build their parsers from this module
(`TRUST_FLAG`) and answer --help without them.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from video_processing.classification import VideoClassificationLightningModule

# Classes a checkpoint of this package may hold besides plain types: a data path given as a Path. Rebuilding one
# only builds a path from strings.
SAFE_GLOBALS = [pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]
TRUST_FLAG = "--trust-checkpoint"
TRUST_HELP = "load a checkpoint that holds more than tensors and plain types (a full pickle: it can run code)"


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds more than tensors and plain types; nothing in it was run. Names the file and the opt-in."""


def load_checkpoint(path: str | Path, *, trust: bool = False) -> dict:
    """The checkpoint at `path` as a dict, loaded on the CPU with `weights_only=True` unless `trust`.

    Raises UntrustedCheckpointError, naming the file, what it would call and the opt-in, when it holds more.
    """
    import torch

    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", mmap=True, weights_only=not trust)
    except pickle.UnpicklingError:
        raise UntrustedCheckpointError(_refusal(path)) from None


def load_module(path: str | Path, *, trust: bool = False) -> tuple[VideoClassificationLightningModule, dict]:
    """The `VideoClassificationLightningModule` of a checkpoint, in eval mode on the CPU, and the checkpoint's dict.

    The weights come from the file: pretrained weights are not downloaded again, and `compile` is off.
    """
    import torch

    from video_processing.classification import VideoClassificationLightningModule

    checkpoint = load_checkpoint(path, trust=trust)
    # the file passed the check above (or is trusted): Lightning's loader rebuilds the module from it
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        module = VideoClassificationLightningModule.load_from_checkpoint(
            path, map_location="cpu", weights_only=not trust, pretrained=False, compile=False
        )
    return module.eval(), checkpoint


def _refusal(path: str | Path) -> str:
    import torch

    try:  # reads the pickle's opcodes only: nothing is called
        safe = {f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS}
        names = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path) if name not in safe]
    except Exception:  # not a zip checkpoint: the names cannot be listed without unpickling
        names = []
    held = f" ({', '.join(names)})" if names else ""
    return (
        f"refused to load {path}: it holds objects{held} that this package's checkpoints never hold, and loading "
        f"it would run code from the file. Nothing in it was run. If you trust the file and whoever made it, pass "
        f"{TRUST_FLAG} (in Python: trust=True)"
    )
