"""VideoMAE (Hugging Face transformers) as a registry network: (B, 3, T, H, W) clips in, logits out.

Needs the optional extra: `pip install 'video-classification[transformers]'`.
"""

from __future__ import annotations

import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification


class VideoMAE(VideoMAEForVideoClassification):
    """`VideoMAEForVideoClassification` taking the package's clip layout and returning the logits tensor.

    Hugging Face's model takes pixel_values (B, T, 3, H, W); the clip is permuted here, inside the model, so
    batches, predict and export stay (B, 3, T, H, W). The state-dict keys are Hugging Face's, so the published
    safetensors file loads; its attention biases are named as in the original release (q_bias, v_bias), which
    are renamed on loading as transformers renames them (its conversion_mapping.py).
    """

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        self._register_load_state_dict_pre_hook(_rename_attention_biases)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return super().forward(pixel_values=video.transpose(1, 2)).logits


def videomae_base(num_frames: int, crop_size: int, num_classes: int = 400, num_hidden_layers: int = 12) -> VideoMAE:
    """VideoMAE ViT-B/16 (tubelets of 2 frames) for clips of (num_frames, crop_size, crop_size).

    The fixed sinusoidal position table is computed for that input; it holds no weights, so the Kinetics weights
    load for any input whose frames and crop are multiples of the tubelet and patch. `num_hidden_layers` below 12
    gives a shallower model (quick experiments and tests); the published weights fit 12.
    """
    config = VideoMAEConfig(
        image_size=crop_size,
        num_frames=num_frames,
        num_hidden_layers=num_hidden_layers,
        num_labels=num_classes,
        use_mean_pooling=True,
    )
    return VideoMAE(config)


def _rename_attention_biases(state_dict, prefix, *args) -> None:
    for key in [k for k in state_dict if k.endswith(("attention.attention.q_bias", "attention.attention.v_bias"))]:
        projection = "query" if key.endswith("q_bias") else "value"
        state_dict[key.rsplit(".", 1)[0] + f".{projection}.bias"] = state_dict.pop(key)
