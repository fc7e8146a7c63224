"""The training recipe: per-clip RandAugment/TrivialAugmentWide, MixUp/CutMix, label smoothing, EMA weights,
activation checkpointing; each off by default and, when off, leaving training as it was."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import random_batches
from pytorch_lightning.callbacks import Callback, EMAWeightAveraging
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
from torchvision.transforms import v2

from video_processing.classification import MixBatch, VideoClassificationLightningModule
from video_processing.data.gpu_decode import PlannedClipDecoder
from video_processing.data.transforms import (
    CLIP_AUGMENTATIONS,
    AsVideo,
    CropBox,
    RandomShortSideScaleCrop,
    ToCTHW,
    train_preset,
)
from video_processing.data.video import PlannedClip

SIZES = dict(crop_size=32, min_short_side=40, max_short_side=48)


def _still_clip(frames: int = 6) -> torch.Tensor:
    """uint8 (T, C, H, W): the same textured frame `frames` times."""
    frame = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return frame.expand(frames, -1, -1, -1).clone()


def _planned(flip: bool) -> PlannedClip:
    return PlannedClip("v.mp4", (0.0, 1.0), tuple(i / 6 for i in range(6)), 48, 64, CropBox(4, 10, 40), flip)


@pytest.mark.parametrize("augment", sorted(CLIP_AUGMENTATIONS))
def test_one_augmentation_draw_for_every_frame_of_a_clip(augment):
    """Frames that are equal before augmentation stay equal: one operation and magnitude per clip, on the
    worker's path (float and uint8) and the GPU decoder's (here on the CPU)."""
    clip = _still_clip()
    decoder = PlannedClipDecoder("cpu", crop_size=32, short_side=40, augment=augment)
    changed = 0
    for seed in range(8):
        outputs = []
        for uint8 in (False, True):
            torch.manual_seed(seed)
            outputs.append(train_preset(**SIZES, hflip_prob=0.0, uint8=uint8, augment=augment)(clip))
        torch.manual_seed(seed)
        outputs.append(decoder.clip(_planned(flip=seed % 2 == 0), clip))
        for out in outputs:  # (C, T, H, W)
            assert all(torch.equal(out[:, t], out[:, 0]) for t in range(1, out.shape[1])), "frames drew apart"
        torch.manual_seed(seed)
        plain = train_preset(**SIZES, hflip_prob=0.0, uint8=True)(clip)
        changed += not torch.equal(outputs[1], plain)
    assert changed >= 4, "the augmentation hardly ever changed a clip"


def test_without_augmentation_the_uint8_paths_are_what_they_were():
    """augment None: the worker's uint8 preset and the GPU decoder's crop are bit-identical to the steps they
    were made of before the augmentation existed."""
    clip = _still_clip()
    before = v2.Compose(
        [AsVideo(), RandomShortSideScaleCrop(32, 40, 48), v2.RandomHorizontalFlip(0.5), ToCTHW()]
    )  # the uint8 train preset's steps without augmentation
    for seed in range(4):
        torch.manual_seed(seed)
        expected = before(clip)
        torch.manual_seed(seed)
        assert torch.equal(train_preset(**SIZES, uint8=True)(clip), expected)
    decoder = PlannedClipDecoder("cpu", crop_size=32, short_side=40)
    for flip in (False, True):
        box = _planned(flip).box
        expected = v2.functional.resized_crop(
            AsVideo()(clip), box.top, box.left, box.side, box.side, [32, 32], antialias=True
        )
        expected = v2.functional.horizontal_flip(expected) if flip else expected
        assert torch.equal(decoder.clip(_planned(flip), clip), expected.permute(1, 0, 2, 3))


def test_an_unknown_augmentation_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="randaugment.*trivialaugment"):
        train_preset(**SIZES, augment="autoaugment")


def test_mixup_targets_sum_to_one_and_weigh_the_blend():
    torch.manual_seed(0)
    clips, labels = torch.randn(4, 3, 4, 16, 16), torch.tensor([0, 1, 2, 3])
    mixed, targets = MixBatch(5, mixup_alpha=0.8, cutmix_alpha=0.0)(clips, labels)
    assert targets.shape == (4, 5)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    lam = targets[0, 0]  # each clip keeps lam of itself and takes 1 - lam of the clip before it
    assert 0 < lam < 1
    torch.testing.assert_close(mixed, lam * clips + (1 - lam) * clips.roll(1, 0))
    torch.testing.assert_close(targets[0, 3], 1 - lam)


def test_cutmix_targets_sum_to_one_and_weigh_the_pasted_box():
    torch.manual_seed(0)
    clips, labels = torch.zeros(4, 3, 4, 16, 16), torch.tensor([0, 1, 2, 3])
    clips += torch.arange(4.0).view(4, 1, 1, 1, 1)  # each clip one value, so the pasted box shows
    mixed, targets = MixBatch(5, mixup_alpha=0.0, cutmix_alpha=1.0)(clips, labels)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    kept = (mixed[1] == 1).float().mean()  # clip 1 keeps its own pixels outside the box pasted from clip 0
    torch.testing.assert_close(targets[1, 1], kept)
    assert torch.equal(mixed[1, :, 0] == 0, mixed[1, :, -1] == 0), "the box moved between frames"


def _module(**recipe) -> VideoClassificationLightningModule:
    torch.manual_seed(0)
    return VideoClassificationLightningModule(num_classes=3, stem_dim_out=8, num_frames=4, crop_size=32, **recipe)


def test_label_smoothing_is_the_training_loss():
    batch = random_batches(1, 3)[0]
    module = _module(label_smoothing=0.2).eval()  # no dropout: the same logits twice
    loss = module.training_step(batch, 0)
    expected = F.cross_entropy(module(batch["video"]), batch["label"], label_smoothing=0.2)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, F.cross_entropy(module(batch["video"]), batch["label"]))


class _HeadWeights(Callback):
    """The head's weight after every training step and when validation runs."""

    def __init__(self):
        self.trained: list[torch.Tensor] = []
        self.validated: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.trained.append(pl_module.head.weight.detach().clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.validated.append(pl_module.head.weight.detach().clone())


def _fit(module, callbacks, batches: list[dict]) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer.fit(
        module, train_dataloaders=loader, val_dataloaders=torch.utils.data.DataLoader(batches[:1], batch_size=None)
    )
    return trainer


def test_validation_reads_the_ema_weights_when_ema_is_on():
    decay = 0.5
    module, weights = _module(ema_decay=decay, lr=0.05), _HeadWeights()
    trainer = _fit(module, [weights], random_batches(3, 3))
    assert any(isinstance(c, EMAWeightAveraging) for c in trainer.callbacks)
    average = weights.trained[0]  # the first update copies the weights, each next one moves by 1 - decay
    for current in weights.trained[1:]:
        average = decay * average + (1 - decay) * current
    (validated,) = weights.validated
    torch.testing.assert_close(validated, average)
    assert not torch.allclose(validated, weights.trained[-1]), "validation saw the last step's weights"


def test_without_ema_validation_reads_the_trained_weights():
    module, weights = _module(lr=0.05), _HeadWeights()
    trainer = _fit(module, [weights], random_batches(3, 3))
    assert not any(isinstance(c, EMAWeightAveraging) for c in trainer.callbacks)
    assert torch.equal(weights.validated[0], weights.trained[-1])


def test_activation_checkpointing_keeps_the_keys_and_the_gradients():
    torch.manual_seed(0)
    clip, labels = torch.randn(2, 3, 4, 32, 32), torch.tensor([0, 2])
    plain = VideoClassificationLightningModule(num_classes=3, backbone="swin3d_t", num_frames=4, crop_size=32)
    recomputed = VideoClassificationLightningModule(
        num_classes=3, backbone="swin3d_t", num_frames=4, crop_size=32, activation_checkpointing=True
    )
    recomputed.load_state_dict(plain.state_dict())
    recomputed.setup("fit")
    assert sum(isinstance(m, CheckpointWrapper) for m in recomputed.modules()) == 12  # Swin-T's 2+2+6+2 blocks
    assert list(recomputed.state_dict()) == list(plain.state_dict())
    grads = []
    for module in (plain, recomputed):
        module.train()
        torch.manual_seed(1)  # the same stochastic depth draws
        F.cross_entropy(module(clip), labels).backward()
        grads.append(module.backbone.patch_embed.proj.weight.grad)
    torch.testing.assert_close(grads[1], grads[0])


def test_activation_checkpointing_is_refused_for_a_backbone_without_blocks():
    with pytest.raises(ValueError, match="x3d_xs names no blocks.*swin3d_t"):
        VideoClassificationLightningModule(backbone="x3d_xs", num_frames=4, crop_size=32, activation_checkpointing=True)
