"""A trained classifier ready for inference: its network, its class names and the clip settings it was trained with.

The network is a checkpoint of `VideoClassificationLightningModule`, a registry backbone with its Kinetics-400
weights, or an ONNX file written by `video_processing.export`; `predict` and `export` both load it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from video_processing.classification import VideoClassificationLightningModule
from video_processing.data.transforms import ClipSettings
from video_processing.inference.checkpoints import load_module
from video_processing.kinetics_module import KineticsDataModule
from video_processing.models.backbones import KINETICS_CLASSES, Backbone, get_backbone, kinetics400_classes
from video_processing.models.exported import OnnxModel, read_sidecar


@dataclass
class Classifier:
    """A trained model with the class names and clip settings it was trained with (its frames and crop size are
    the network's)."""

    module: VideoClassificationLightningModule | OnnxModel
    class_names: list[str]
    clips: ClipSettings


def load_classifier(checkpoint: str | Path, device: str | torch.device = "cpu", *, trust: bool = False) -> Classifier:
    """Load a Lightning checkpoint of `VideoClassificationLightningModule`, in eval mode on `device`, uncompiled.

    The weights come from the checkpoint, so pretrained weights are not downloaded again. The file is loaded as
    data (`checkpoints.load_module`): one that holds more than this package's checkpoints do is refused unless
    `trust`.
    """
    module, saved = load_module(checkpoint, trust=trust)
    module.to(device)
    data_hparams = saved.get(KineticsDataModule.CHECKPOINT_HYPER_PARAMS_KEY, {})
    return Classifier(module, _class_names(module.hparams), _clip_settings(module.hparams, data_hparams))


def pretrained_classifier(
    backbone: str, device: str | torch.device = "cpu", *, weights_url: str | None = None
) -> Classifier:
    """`backbone` with its Kinetics-400 weights (downloaded once; `weights_url`: a mirror): its predictions name
    Kinetics classes."""
    entry = get_backbone(backbone)
    module = VideoClassificationLightningModule(
        num_classes=KINETICS_CLASSES,
        class_names=kinetics400_classes(),
        num_frames=entry.num_frames,
        crop_size=entry.crop_size,
        backbone=backbone,
        pretrained=True,
        weights_url=weights_url,
    )
    return Classifier(module.eval().to(device), kinetics400_classes(), _expected_clips(entry))


def load_exported(path: str | Path) -> Classifier:
    """An ONNX file written by `video_processing.export`, with the settings of its sidecar JSON."""
    sidecar = read_sidecar(path)
    return Classifier(OnnxModel(path, sidecar), sidecar.classes, sidecar.clips)


def _expected_clips(entry: Backbone) -> ClipSettings:
    """The clips the entry's pretrained weights expect: evaluation's (short side `short_side`, no range, no flip)."""
    short, mean, std = entry.short_side, entry.mean, entry.std  # min and max short side alike, hflip_prob 0
    return ClipSettings(entry.clip_duration_s, entry.num_frames, entry.crop_size, short, short, 0.0, mean, std)


def _class_names(hparams) -> list[str]:
    if hparams.get("class_names"):
        return list(hparams["class_names"])
    if hparams["num_classes"] == KINETICS_CLASSES:
        return kinetics400_classes()
    return [str(i) for i in range(hparams["num_classes"])]


def _clip_settings(hparams, data_hparams: dict) -> ClipSettings:
    """The data module's settings saved in the checkpoint, else those the backbone's registry entry expects; the
    frames and crop size are the network's."""
    defaults = _expected_clips(get_backbone(hparams.get("backbone", "resnet")))
    network = {"num_frames": hparams["num_frames"], "crop_size": hparams["crop_size"]}
    return ClipSettings.from_dict({**vars(defaults), **data_hparams, **network})


def classifier_preset(classifier: Classifier) -> torch.nn.Module:
    """The eval preset with the classifier's crop, short side and normalization."""
    return classifier.clips.eval_transform()
