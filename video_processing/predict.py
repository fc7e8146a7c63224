"""Classify video files with a trained checkpoint: the top-k classes of each whole video.

    python -m video_processing.predict CHECKPOINT VIDEO [VIDEO ...] [--top-k 5] [--json]
    python -m video_processing.predict x3d_xs VIDEO ...     # a backbone's Kinetics-400 weights and names

Each video is cut into back-to-back clips (as validation cuts them), each clip goes through the eval preset,
and the clips' logits are averaged: the per-video prediction that val_video_acc_top1 measures. The clip
duration, frames, crop and normalization come from the checkpoint, so they match training. A file that cannot
be read gets a one-line error naming it; the other files are still classified; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from video_processing.backbones import (
    BACKBONES,
    KINETICS_CLASSES,
    Backbone,
    get_backbone,
    kinetics400_classes,
)
from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule
from video_processing.transforms import eval_preset
from video_processing.video import VideoError, decode_uniform_clips

# Clips per forward pass: bounds memory on long videos.
CLIPS_PER_BATCH = 16


@dataclass(frozen=True)
class ClipSettings:
    """How the checkpoint's data module cut and normalized clips."""

    clip_duration: float
    min_short_side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass
class Classifier:
    """A trained model with the class names and clip settings it was trained with."""

    module: VideoClassificationLightningModule
    class_names: list[str]
    clips: ClipSettings


@dataclass
class Prediction:
    """The top classes of one video, with probabilities, from the mean logits of its `num_clips` clips."""

    path: str
    num_clips: int
    top: list[tuple[str, float]]


def load_classifier(checkpoint: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Load a Lightning checkpoint of `VideoClassificationLightningModule`, in eval mode on `device`.

    The weights come from the checkpoint, so pretrained weights are not downloaded again. A checkpoint is a
    pickle (its hyperparameters may hold paths): load only checkpoints you trust.
    """
    module = VideoClassificationLightningModule.load_from_checkpoint(
        checkpoint, map_location="cpu", weights_only=False, pretrained=False
    )
    module.eval().to(device)
    data_hparams = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False).get(
        KineticsDataModule.CHECKPOINT_HYPER_PARAMS_KEY, {}
    )
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


def _expected_clips(entry: Backbone) -> ClipSettings:
    return ClipSettings(entry.clip_duration_s, entry.short_side, entry.mean, entry.std)


def _class_names(hparams) -> list[str]:
    if hparams.get("class_names"):
        return list(hparams["class_names"])
    if hparams["num_classes"] == KINETICS_CLASSES:
        return kinetics400_classes()
    return [str(i) for i in range(hparams["num_classes"])]


def _clip_settings(hparams, data_hparams: dict) -> ClipSettings:
    """The data module's settings saved in the checkpoint, else those the backbone's registry entry expects."""
    defaults = _expected_clips(get_backbone(hparams.get("backbone", "resnet")))
    return ClipSettings(**{name: data_hparams.get(name, default) for name, default in asdict(defaults).items()})


@torch.inference_mode()
def predict_video(classifier: Classifier, path: str | Path, top_k: int = 5) -> Prediction:
    """Top-k classes of the video at `path`; raises VideoError naming the file when it cannot be read."""
    hparams, settings = classifier.module.hparams, classifier.clips
    clips = decode_uniform_clips(path, settings.clip_duration, hparams.num_frames)
    transform = eval_preset(
        crop_size=hparams.crop_size, short_side=settings.min_short_side, mean=settings.mean, std=settings.std
    )
    batches = [clips[i : i + CLIPS_PER_BATCH] for i in range(0, len(clips), CLIPS_PER_BATCH)]
    device = classifier.module.device
    logits = torch.cat([classifier.module(torch.stack([transform(c) for c in b]).to(device)) for b in batches])
    probabilities = logits.float().mean(0).softmax(0)
    values, indices = probabilities.topk(min(top_k, len(probabilities)))
    top = [(classifier.class_names[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)]
    return Prediction(str(path), len(clips), top)


def format_prediction(prediction: Prediction) -> str:
    """Text block: the file, then one line per class with its probability."""
    lines = [f"{prediction.path} ({prediction.num_clips} clips)"]
    lines += [f"  {probability:7.2%}  {name}" for name, probability in prediction.top]
    return "\n".join(lines)


def prediction_record(prediction: Prediction) -> dict:
    """The prediction as JSON-ready data."""
    top = [{"class": name, "probability": probability} for name, probability in prediction.top]
    return {"path": prediction.path, "num_clips": prediction.num_clips, "top": top}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "checkpoint", help=f"a .ckpt file written by training, or a backbone name ({', '.join(BACKBONES)})"
    )
    parser.add_argument("videos", nargs="+", type=Path, help="video files (anything PyAV decodes)")
    parser.add_argument("--top-k", type=int, default=5, help="classes shown per video")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # torch.hub announces a download on stdout: keep stdout for the results (JSON must parse).
        with contextlib.redirect_stdout(sys.stderr):
            if args.checkpoint in BACKBONES and not Path(args.checkpoint).exists():
                classifier = pretrained_classifier(args.checkpoint, device)
            else:
                classifier = load_classifier(args.checkpoint, device)
    except Exception as e:  # a missing, truncated or foreign file: one line, not a traceback
        print(f"error: cannot load checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    results, failed = [], False
    for path in args.videos:
        try:
            prediction = predict_video(classifier, path, args.top_k)
        except Exception as e:  # VideoError names the file and why; anything else still names the file
            reason = e.reason if isinstance(e, VideoError) else f"{type(e).__name__}: {e}"
            print(f"error: {path}: {reason}", file=sys.stderr)
            results.append({"path": str(path), "error": reason})
            failed = True
            continue
        results.append(prediction_record(prediction))
        if not args.json:
            print(format_prediction(prediction))
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
