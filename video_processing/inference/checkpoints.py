"""Loading checkpoints as data: a file someone shared cannot run code here unless its user says they trust it.

A checkpoint is a pickle, and unpickling can call any function the file names. `torch.load(weights_only=True)`
rebuilds only tensors and plain types (dict, list, tuple, str, numbers, None), and refuses anything else before
calling it. That allow-list, plus `SAFE_GLOBALS`, is exactly what this package's checkpoints hold: the weights,
the optimizer and callback states, and hyperparameters saved as plain types, or as a path where a data module was
given a `pathlib.Path` (tests/test_checkpoints.py loads a plain, a fine-tuned, a shards-trained and a compiled
one). A file that names anything else is refused with `UntrustedCheckpointError`; `trust=True` (the commands'
--trust-checkpoint) loads it as a full pickle.

A file is data in its size too: the part of the pickle besides the tensors may hold at most MAX_PICKLE_BYTES
(a zip member can inflate a small file into gigabytes), and the network its hyperparameters describe is built
on the meta device (no memory) and compared with the file's weights before it is allocated, so a 2 KB file
cannot make a tool allocate a 21-billion-parameter network. A path saved on another system loads as a pure path
(a Windows path on Linux). A TorchScript file and a legacy (non-zip) one get errors saying what they are.

Loading for inference also turns `compile` off: predict and export run the plain network, so they need no C++
compiler and export traces the module itself, not a compiled call.

torch and Lightning are imported where a file is loaded: the command lines build their parsers from this module
(`TRUST_FLAG`) and answer --help without them.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import pickle
import types
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from video_processing.classification import VideoClassificationLightningModule

# Classes a checkpoint of this package may hold besides plain types: a data path given as a Path. Rebuilding one
# only builds a path from strings. A concrete path of the other system (WindowsPath on Linux) cannot be made
# here: it is rebuilt as the pure path of its flavour.
_FOREIGN_PATH = ("pathlib.WindowsPath", pathlib.PureWindowsPath)
if os.name == "nt":
    _FOREIGN_PATH = ("pathlib.PosixPath", pathlib.PurePosixPath)
SAFE_GLOBALS = [
    *(c for c in (pathlib.PosixPath, pathlib.WindowsPath) if f"pathlib.{c.__name__}" != _FOREIGN_PATH[0]),
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    (_FOREIGN_PATH[1], _FOREIGN_PATH[0]),
]
TRUST_FLAG = "--trust-checkpoint"
TRUST_HELP = "load a checkpoint that holds more than tensors and plain types (a full pickle: it can run code)"
# The pickle of a checkpoint besides its tensors: hyperparameters, optimizer and callback states (this package's
# hold well under 1 MB). A larger one is refused before it is read.
MAX_PICKLE_BYTES = 64 << 20


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds more than tensors and plain types; nothing in it was run. Names the file and the opt-in."""


class CheckpointError(ValueError):
    """A file that is not a checkpoint this package can load, or one that asks for more than it carries."""


def load_checkpoint(path: str | Path, *, trust: bool = False) -> dict:
    """The checkpoint at `path` as a dict, loaded on the CPU with `weights_only=True` unless `trust`.

    Raises UntrustedCheckpointError, naming the file, what it would call and the opt-in, when it holds more;
    CheckpointError, saying why, for a TorchScript file, an oversized pickle or a file that is not a checkpoint.
    """
    import torch

    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        _check_zip(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            # mmap: the tensors stay in the file until used (zip checkpoints only)
            checkpoint = torch.load(path, map_location="cpu", mmap=is_zip, **_unpickling(trust))
    except pickle.UnpicklingError:
        raise UntrustedCheckpointError(_refusal(path)) from None
    except (RuntimeError, EOFError, ValueError) as e:  # torch's advice to drop weights_only is not ours to give
        reason = str(e).split(". ")[0] or type(e).__name__
        raise CheckpointError(f"cannot load {path}: not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint's dict")
    return checkpoint


def load_module(path: str | Path, *, trust: bool = False) -> tuple[VideoClassificationLightningModule, dict]:
    """The `VideoClassificationLightningModule` of a checkpoint, in eval mode on the CPU, and the checkpoint's dict.

    The weights come from the file: pretrained weights are not downloaded again, and `compile` is off. The
    network is built only after its shapes, built on the meta device, match the file's weights.
    """
    import torch

    from video_processing.classification import VideoClassificationLightningModule

    checkpoint = load_checkpoint(path, trust=trust)
    cls = VideoClassificationLightningModule
    accepted = inspect.signature(cls.__init__).parameters
    hparams = checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY, {})
    kwargs = {k: v for k, v in hparams.items() if k in accepted} | {"pretrained": False, "compile": False}
    with torch.device("meta"):  # the network the hyperparameters describe, without memory
        skeleton = cls(**kwargs)
    weights = checkpoint.get("state_dict", {})
    _check_weights(path, skeleton.state_dict(), weights)
    module = cls(**kwargs)
    module.load_state_dict(weights)
    module.on_load_checkpoint(checkpoint)
    return module.eval(), checkpoint


def _check_zip(path: str | Path) -> None:
    """Refuse a TorchScript archive and a pickle larger than MAX_PICKLE_BYTES, before either is read."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    names = {info.filename.partition("/")[2] for info in infos}
    if "constants.pkl" in names or any(name.startswith("code/") for name in names):
        raise CheckpointError(
            f"{path} is a TorchScript file (torch.jit.save), a compiled network, not a training checkpoint: "
            "use the .ckpt that training wrote, or an .onnx file written by video_processing.export"
        )
    for info in infos:
        if info.filename.endswith("/data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"refused to load {path}: its pickle (the part besides the tensors) inflates to "
                f"{info.file_size:,} bytes, more than the {MAX_PICKLE_BYTES:,} a checkpoint's hyperparameters "
                "and states need. Nothing was loaded."
            )


def _check_weights(path: str | Path, expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    """Refuse, naming the first key, when the file's weights are not the network's: a file may not make a tool
    allocate more than the weights it carries."""
    for key in sorted(expected.keys() | saved.keys()):
        want = tuple(expected[key].shape) if key in expected else None
        have = tuple(saved[key].shape) if key in saved else None
        if want != have:
            raise CheckpointError(
                f"refused to load {path}: its hyperparameters describe a network whose weights do not match the "
                f"file's: {key} is {want or 'absent'} in the network, {have or 'absent'} in the file. Nothing was "
                "built."
            )


class _PurePathUnpickler(pickle.Unpickler):
    """A full (trusted) pickle, with the other system's concrete paths rebuilt as pure paths."""

    def find_class(self, module: str, name: str):
        if f"{module}.{name}" == _FOREIGN_PATH[0]:
            return _FOREIGN_PATH[1]
        return super().find_class(module, name)


def _unpickling(trust: bool) -> dict:
    """torch.load's arguments: its allow-list, or (trusted) a full pickle that rebuilds foreign paths as pure."""
    if not trust:
        return {"weights_only": True}
    return {
        "weights_only": False,
        "pickle_module": types.SimpleNamespace(**{**vars(pickle), "Unpickler": _PurePathUnpickler}),
    }


def _refusal(path: str | Path) -> str:
    import torch

    try:  # reads the pickle's opcodes only: nothing is called
        safe = {f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS if not isinstance(c, tuple)}
        names = [
            name
            for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)
            if name not in safe and name != _FOREIGN_PATH[0]
        ]
    except Exception:  # not a zip checkpoint: the names cannot be listed without unpickling
        names = []
    held = f" ({', '.join(names)})" if names else ""
    return (
        f"refused to load {path}: it holds objects{held} that this package's checkpoints never hold, and loading "
        f"it would run code from the file. Nothing in it was run. If you trust the file and whoever made it, pass "
        f"{TRUST_FLAG} (in Python: trust=True)"
    )
