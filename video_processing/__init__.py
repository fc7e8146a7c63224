"""Video classification on Kinetics with PyTorch Lightning, PyTorchVideo and torchvision."""

from importlib import import_module

import video_processing.models.quiet  # noqa: F401  (silences known library messages before Lightning is imported)

_EXPORTS = {
    "KineticsDataModule": "video_processing.kinetics_module",
    "VideoClassificationLightningModule": "video_processing.classification",
    "make_kinetics_resnet": "video_processing.classification",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    # Imported on first use, so command-line tools on the data side start without loading the model side.
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'video_processing' has no attribute {name!r}")
