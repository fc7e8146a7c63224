"""make_kinetics_resnet() and VideoClassificationLightningModule: clips in, class logits out."""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import partial

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import EMAWeightAveraging
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointImpl,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchvision import tv_tensors
from torchvision.transforms import v2

from video_processing.models.backbones import BACKBONES, KINETICS_CLASSES, build_backbone, get_backbone, split_head


def make_kinetics_resnet(
    num_classes: int = KINETICS_CLASSES,
    model_depth: int = 50,
    stem_dim_out: int = 64,
    num_frames: int = 8,
    crop_size: int = 224,
    pretrained: bool = False,
) -> nn.Module:
    """PyTorchVideo's 3D ResNet ("slow" pathway) with a head pooled over exactly (num_frames, crop, crop).

    The registry's "resnet" entry. `model_depth` is 50, 101 or 152. Every width scales with `stem_dim_out`: 64
    is the Kinetics model; 8 gives a thin variant that trains on a CPU. Input: float
    (B, 3, num_frames, crop_size, crop_size). `pretrained` gives the registry's "slow_r50" instead, with the
    Kinetics-400 weights of PyTorchVideo's zoo (depth 50, width 64, whose stem has a temporal kernel of 1 where
    the from-scratch model's has 3), with a new final projection unless num_classes is 400.
    """
    if pretrained:
        if (model_depth, stem_dim_out) != (50, 64):
            raise ValueError(
                f"pretrained weights exist for model_depth=50, stem_dim_out=64 only; got {model_depth}, {stem_dim_out}"
            )
        return build_backbone("slow_r50", num_classes, num_frames=num_frames, crop_size=crop_size, pretrained=True)
    sizes = dict(model_depth=model_depth, stem_dim_out=stem_dim_out)
    return build_backbone("resnet", num_classes, num_frames=num_frames, crop_size=crop_size, **sizes)


def int_conv_strides(model: nn.Module) -> nn.Module:
    """Make every convolution's stride a tuple of Python ints, in place; returns `model`.

    PyTorchVideo's ResNet computes its shortcut convolutions' (`branch1_conv`) strides with numpy, so they are
    numpy integers. `torch.compile` traces a numpy integer as a tensor, which makes the stride a data-dependent
    value: the compiler fails on it (`aten._local_scalar_dense`) and breaks the graph at every shortcut, one per
    stage. As Python ints the strides are constants and the model compiles as one graph; it computes the same.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            module.stride = tuple(int(s) for s in module.stride)
    return model


class VideoClassificationLightningModule(pl.LightningModule):
    """A video classifier trained with cross-entropy and Adam (cosine learning-rate decay over the run).

    `backbone` is a name of `backbones.BACKBONES`: "resnet" (`make_kinetics_resnet`, sized by model_depth and
    stem_dim_out, from scratch) or a Kinetics-400 network; `pretrained` starts it from the weights its registry
    entry names, or from `weights_url` (a mirror of the same file). The network is split into
    `self.backbone` and `self.head` (its final projection, for num_classes), so Lightning's
    `BackboneFinetuning` callback can train the head alone for the first epochs: only trainable parameters
    reach the optimizer.

    Logs the training loss per step and per epoch (train_loss_step, train_loss_epoch), and per epoch val_loss,
    val_acc_top1, val_acc_top5 (per clip), val_acc_mean_class (per-clip accuracy of each class, averaged over the
    classes) and val_video_acc_top1/top5 (clip logits averaged per video). `test` logs the same names with the
    prefix test_, per view, and test_video_acc_top1/top5 from the softmax scores averaged over each video's views,
    the multi-view protocol of PyTorchVideo's model zoo (averaging or summing the scores gives the same ranking).
    `class_names` is kept in the checkpoint so predictions can print names.

    GPU speed options (the results do not change beyond floating-point rounding):
        channels_last: keep the model and its input in `torch.channels_last_3d`, the memory layout cuDNN's
            fastest 3D convolutions take under bf16/fp16 mixed precision.
        compile: compile the model with `torch.compile` (a first step of a minute or more, then faster steps;
            the checkpoint's keys are unchanged).

    The training recipe of today's video models (each off by default; the data module's `augment` is its
    per-clip part):
        label_smoothing: cross-entropy against targets of 1 - label_smoothing on the label, the rest spread
            evenly over the classes.
        mixup_alpha, cutmix_alpha: mix each training batch with itself rolled by one, torchvision's v2.MixUp
            (a blend of two clips) or v2.CutMix (a box of one clip's frames pasted into the other's), its
            mixing ratio drawn from Beta(alpha, alpha); the loss is cross-entropy against the mixed (soft)
            targets. With both above 0, each batch gets one of the two at random.
        ema_decay: keep an exponential moving average of the weights (Lightning's `EMAWeightAveraging`, this
            decay per optimizer step); validation runs on the average. 0: off.
        activation_checkpointing: recompute each transformer block's activations in the backward pass instead
            of keeping them (torch.utils.checkpoint), for the entries that name their blocks (mvit_v2_s,
            swin3d_t, videomae_base): far less memory for about a third more compute. Applied when fitting.
    """

    def __init__(
        self,
        num_classes: int = 400,
        class_names: list[str] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        model_depth: int = 50,
        stem_dim_out: int = 64,
        num_frames: int = 8,
        crop_size: int = 224,
        backbone: str = "resnet",
        pretrained: bool = False,
        weights_url: str | None = None,
        channels_last: bool = False,
        compile: bool = False,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        ema_decay: float = 0.0,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for num_classes={num_classes}")
        self.save_hyperparameters()
        entry = get_backbone(backbone)
        if activation_checkpointing and not entry.blocks:
            with_blocks = sorted(name for name, b in BACKBONES.items() if b.blocks)
            raise ValueError(f"activation_checkpointing: {backbone} names no blocks to recompute; {with_blocks} do")
        self.mix = MixBatch(num_classes, mixup_alpha, cutmix_alpha) if mixup_alpha or cutmix_alpha else None
        sizes = {"model_depth": model_depth, "stem_dim_out": stem_dim_out}
        network = build_backbone(
            backbone,
            num_classes,
            num_frames=num_frames,
            crop_size=crop_size,
            pretrained=pretrained,
            weights_url=weights_url,
            **{name: sizes[name] for name in entry.options if name in sizes},
        )
        # self.model stays the whole network; the backbone and head properties name its two parts.
        backbone_net, head_net = split_head(network, entry.head)
        self.model = int_conv_strides(nn.Sequential(OrderedDict(backbone=backbone_net, head=head_net)))
        if channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        if compile:
            self.model.compile()  # in place, so state_dict keys stay those of the plain model
        self.example_input_array = torch.zeros(1, 3, num_frames, crop_size, crop_size)
        top5 = min(5, num_classes)
        self.val_acc_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_acc_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.val_acc_mean_class = MulticlassAccuracy(num_classes, top_k=1, average="macro")
        self.val_video_acc_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_video_acc_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        # a metric, not a logged mean: under DDP ranks hold different numbers of clips and batches, and only
        # summing (loss x clips) and clips over ranks gives the single-process value
        self.val_loss = MeanMetric()

    @property
    def backbone(self) -> nn.Module:
        """Every layer but the final projection."""
        return self.model.backbone

    @property
    def head(self) -> nn.Linear:
        """The final projection to num_classes logits."""
        return self.model.head

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dtype == torch.uint8:
            raise TypeError(
                "uint8 clips reached the model: a data module with transforms_on_device (or GPU decoding) sends "
                "uint8 batches that its on_after_batch_transfer normalizes. Give the Trainer the data module "
                "(datamodule=data), not one of its loaders, or call data.device_transform(video) first"
            )
        if self.hparams.channels_last:
            video = video.contiguous(memory_format=torch.channels_last_3d)
        return self.model(video)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.activation_checkpointing:
            checkpoint_blocks(self.model, get_backbone(self.hparams.backbone).blocks)

    def configure_callbacks(self) -> list[pl.Callback]:
        if not self.hparams.ema_decay:
            return []
        return [EMAWeightAveraging(decay=self.hparams.ema_decay)]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self._log_skipped("train", batch)
        video, target = batch["video"], batch["label"]
        if self.mix is not None and len(video) > 1:
            video, target = self.mix(video, target)
        logits = self(video)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch, average_softmax=True)

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """`trainer.predict`'s rows: clip logits (float, CPU) with each clip's label and video index."""
        logits = self(batch["video"]).float().cpu()
        return {"logits": logits, "label": batch["label"].cpu(), "video_index": batch["video_index"].cpu()}

    def _evaluate(self, stage: str, batch: dict, average_softmax: bool = False) -> None:
        """Clip (or view) metrics, and video metrics from each video's mean clip logits (or softmax scores)."""
        self._log_skipped(stage, batch)
        if len(batch["video"]) == 0:  # every video of this batch was unreadable
            return
        logits = self(batch["video"]).float()
        labels = batch["label"]
        n = len(logits)
        self.val_acc_top1(logits, labels)
        self.val_acc_top5(logits, labels)
        self.val_acc_mean_class(logits, labels)
        scores = logits.softmax(dim=1) if average_softmax else logits
        video_scores, video_labels = average_per_video(scores, labels, batch["video_index"])
        self.val_video_acc_top1(video_scores, video_labels)
        self.val_video_acc_top5(video_scores, video_labels)
        self.val_loss(F.cross_entropy(logits, labels), weight=n)
        self.log(f"{stage}_loss", self.val_loss, batch_size=n, prog_bar=True)
        self.log(f"{stage}_acc_top1", self.val_acc_top1, batch_size=n, prog_bar=True)
        self.log(f"{stage}_acc_top5", self.val_acc_top5, batch_size=n)
        self.log(f"{stage}_acc_mean_class", self.val_acc_mean_class, batch_size=n)
        self.log(f"{stage}_video_acc_top1", self.val_video_acc_top1, batch_size=len(video_scores))
        self.log(f"{stage}_video_acc_top5", self.val_video_acc_top5, batch_size=len(video_scores))

    def _log_skipped(self, stage: str, batch: dict) -> None:
        self.log(
            f"{stage}_skipped_videos",
            float(len(batch["skipped"])),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            sync_dist=True,
            batch_size=1,
        )

    def configure_optimizers(self):
        # A frozen backbone stays out: BackboneFinetuning adds it as a parameter group when it unfreezes it.
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):  # no max_epochs nor max_steps: keep the rate constant
            return optimizer
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class MixBatch(nn.Module):
    """(clips, labels) -> (mixed clips, soft targets summing to 1): torchvision's v2.MixUp, v2.CutMix, or one
    of the two at random per batch, for the alphas above 0.

    The clips are (B, C, T, H, W), marked as a video for v2: MixUp blends whole clips, CutMix pastes the same
    box (the last two axes) into every frame.
    """

    def __init__(self, num_classes: int, mixup_alpha: float, cutmix_alpha: float):
        super().__init__()
        mixes = [
            mix(alpha=alpha, num_classes=num_classes)
            for mix, alpha in ((v2.MixUp, mixup_alpha), (v2.CutMix, cutmix_alpha))
            if alpha > 0
        ]
        if not mixes:
            raise ValueError("MixBatch needs mixup_alpha or cutmix_alpha above 0")
        self.mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)

    def forward(self, video: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, targets = self.mix(tv_tensors.Video(video), labels)
        return mixed.as_subclass(torch.Tensor), targets


def checkpoint_blocks(model: nn.Module, blocks: tuple[str, ...]) -> None:
    """Recompute the activations of every layer whose class is named in `blocks` during the backward pass.

    PyTorch's checkpoint wrapper (non-reentrant torch.utils.checkpoint) keeps the state-dict keys unchanged.
    """
    wrapper = partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
    apply_activation_checkpointing(model, wrapper, check_fn=lambda module: type(module).__name__ in blocks)


def average_per_video(
    logits: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean clip scores (logits or probabilities) of each video in the batch, and each video's label.

    Validation and test batches hold every clip of whole videos, so a video's clips are all in one batch.
    """
    videos, inverse = torch.unique(video_index, return_inverse=True)
    sums = torch.zeros(len(videos), logits.shape[1], dtype=logits.dtype, device=logits.device)
    sums.index_add_(0, inverse, logits)
    counts = torch.bincount(inverse, minlength=len(videos)).unsqueeze(1).to(logits.dtype)
    video_labels = torch.zeros(len(videos), dtype=labels.dtype, device=labels.device)
    video_labels[inverse] = labels
    return sums / counts, video_labels
