"""Exported models: the sidecar JSON that travels with an exported file, and running an ONNX file.

An exported network takes float (batch, 3, num_frames, crop_size, crop_size) clips already through the eval
preset and returns (batch, classes) logits. The sidecar `MODEL.onnx.json` (or `MODEL.pt.json`) holds what the
preset and the class names need (the checkpoint's `ClipSettings`, under "clips"), so no checkpoint is needed to use
the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from video_processing.data.transforms import ClipSettings

INSTALL_EXPORT = "pip install 'video-classification[export]'"


@dataclass(frozen=True)
class Sidecar:
    """What inference with an exported model needs besides the network."""

    format: str  # "onnx" or "torchscript"
    classes: list[str]
    clips: ClipSettings  # the checkpoint's: the eval preset reads clip_duration, crop_size, min_short_side, mean, std
    input: str = "video: float32 (batch, 3, num_frames, crop_size, crop_size), after the eval preset"
    output: str = "logits: float32 (batch, classes)"


def sidecar_path(model_path: str | Path) -> Path:
    """The sidecar beside the exported file: `model.onnx` -> `model.onnx.json`."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def write_sidecar(model_path: str | Path, sidecar: Sidecar) -> Path:
    path = sidecar_path(model_path)
    path.write_text(json.dumps(asdict(sidecar), indent=2) + "\n")
    return path


def read_sidecar(model_path: str | Path) -> Sidecar:
    """The sidecar of `model_path`; FileNotFoundError naming it when it is missing."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it is written beside the model by video_processing.export")
    fields = json.loads(path.read_text())
    return Sidecar(**{**fields, "clips": ClipSettings.from_dict(fields["clips"])})


def import_onnxruntime():
    """onnxruntime, or an error saying which extra installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise ModuleNotFoundError(f"running an ONNX model needs onnxruntime: {INSTALL_EXPORT}") from None
    return onnxruntime


class OnnxModel:
    """An exported ONNX classifier called like the PyTorch module: (batch, 3, T, H, W) clips -> logits.

    Runs on onnxruntime's CPU provider (CUDA's when onnxruntime-gpu is installed and a GPU is there); `hparams`
    and `device` mirror the LightningModule's, so code written for a checkpoint's module runs it unchanged.
    """

    def __init__(self, path: str | Path, sidecar: Sidecar):
        onnxruntime = import_onnxruntime()
        available = onnxruntime.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.hparams = SimpleNamespace(num_frames=sidecar.clips.num_frames, crop_size=sidecar.clips.crop_size)
        self.device = torch.device("cpu")  # inputs are handed over as numpy arrays

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self.input_name: video.float().cpu().numpy()})
        return torch.from_numpy(logits)
