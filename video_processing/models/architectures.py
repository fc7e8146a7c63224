"""Two networks of the registry adapted to its one rule: one clip tensor (B, 3, T, H, W) in, logits out.

`SlowFast` takes the fast clip and samples its slow pathway inside, as PyTorchVideo's `PackPathway` transform
does outside the model, so batches, predict and export handle one tensor. `S3D` is torchvision's S3D with its
final projection as an nn.Linear after the spatio-temporal mean, the form fine-tuning replaces and splits.
Both keep their reference's state-dict keys, so the published weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.video.s3d import S3D as TorchvisionS3D

from video_processing.models.quiet import importing_pytorchvideo

with importing_pytorchvideo():
    from pytorchvideo.models.net import Net

SLOWFAST_ALPHA = 4  # frames of the fast pathway per frame of the slow one (the zoo's 8x8 model)


class SlowFast(Net):
    """PyTorchVideo's SlowFast `Net` fed from one clip: (B, 3, T, H, W) fast frames -> logits.

    The slow pathway is T // alpha frames picked with `torch.linspace` over the clip, as `PackPathway` picks them.
    """

    def __init__(self, net: Net, alpha: int = SLOWFAST_ALPHA):
        super().__init__(blocks=net.blocks)
        self.alpha = alpha

    def forward(self, fast: torch.Tensor) -> torch.Tensor:
        frames = fast.shape[2]
        index = torch.linspace(0, frames - 1, frames // self.alpha, device=fast.device).long()
        return super().forward([fast.index_select(2, index), fast])


class S3D(TorchvisionS3D):
    """torchvision's S3D whose classifier is Dropout and an nn.Linear applied after averaging over space-time.

    torchvision applies a 1x1x1 convolution before averaging; both are linear, so the logits are the same in
    eval mode. Its weight (classes, 1024, 1, 1, 1) loads as the Linear's (classes, 1024).
    """

    def __init__(self, num_classes: int = 400, dropout: float = 0.2):
        super().__init__(num_classes=num_classes, dropout=dropout)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(1024, num_classes))
        self._register_load_state_dict_pre_hook(_flatten_conv_classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(x.mean(dim=(2, 3, 4)))


def _flatten_conv_classifier(state_dict, prefix, *args) -> None:
    weight = state_dict.get(f"{prefix}classifier.1.weight")
    if weight is not None and weight.dim() == 5:
        state_dict[f"{prefix}classifier.1.weight"] = weight.flatten(1)
