"""Show where a trained model looks in a video: a class-activation map over time, drawn over the frames it sees.

    python -m video_processing.explain CHECKPOINT VIDEO --out MAP.mp4 [--class NAME] [--stage N] [--method gradcam]

The video is cut into back-to-back clips as `predict` cuts it; for each clip, a map on one of the network's 3D
stages says which places, at which moments, raised the score of the class: the video's predicted class, or --class.
The stage is --stage (1: the first), else the last one at least 7 x 7 cells: the last stage at Kinetics' 224 px
crops, an earlier one for small crops (2 x 2 cells, the last stage at 64 px, cannot point at anything); the command
prints which. The map is stretched to the clip's frames and crop and drawn over them (red: the most). The map is
HiResCAM, or with --method gradcam Grad-CAM: the same at the ResNets' last stage; at an earlier one HiResCAM keeps each
place's own gradients where Grad-CAM averages them, which can move the map off what raised the score
(`inference/gradcam.py`). MAP.mp4 shows the frames the model sees (resized and center-cropped, `num_frames` per
clip) at the rate it samples them, one colour scale for the whole video (so the map video is held in memory until it
is written: meant for clips and short videos, not hours).
Needs the optional extra `explain` (captum):
pip install "video-classification[explain]".

A checkpoint is loaded as data, as `predict` loads it (see `inference/checkpoints.py`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from video_processing.inference.checkpoints import TRUST_FLAG, TRUST_HELP


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a .ckpt file written by training")
    parser.add_argument("video", help="a video file (anything PyAV decodes)")
    parser.add_argument("--out", required=True, help="the annotated video to write (.mp4)")
    parser.add_argument("--class", dest="class_name", help="the class to explain (default: the predicted one)")
    parser.add_argument("--stage", type=int, help="the 3D stage to read, 1 = the first (default: see above)")
    parser.add_argument(
        "--method", choices=("hirescam", "gradcam"), default="hirescam", help="the map (default: hirescam)"
    )
    parser.add_argument(TRUST_FLAG, action="store_true", help=TRUST_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import numpy as np
    import torch

    from video_processing.data.video import VideoError, write_video
    from video_processing.inference.classifiers import load_classifier
    from video_processing.inference.gradcam import (
        METHODS,
        ExplainError,
        choose_stage,
        class_index,
        explain_video,
        overlay,
    )
    from video_processing.inference.predictions import predict_video

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        classifier = load_classifier(args.checkpoint, device, trust=args.trust_checkpoint)
    except Exception as e:  # a missing, truncated or foreign file: one line, not a traceback
        print(f"error: cannot load checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    try:
        if args.class_name is None:
            name, probability = predict_video(classifier, args.video, top_k=1).top[0]
            print(f"{args.video}: predicted {name} ({probability:.2%}); explaining it")
        else:
            name = args.class_name
        target, stage = class_index(classifier, name), choose_stage(classifier, args.stage)
        print(f"{METHODS[args.method]} on {stage}")
        clips = list(explain_video(classifier, args.video, target, stage, args.method))
    except (VideoError, ExplainError) as e:
        print(f"error: {args.video}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return 1
    peak = max(float(clip.cam.max()) for clip in clips)
    frames = np.concatenate([overlay(clip.frames, clip.cam, peak=peak) for clip in clips])
    fps = classifier.module.hparams.num_frames / classifier.clips.clip_duration
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_video(args.out, frames, fps)
    print(f"{args.out}: {len(clips)} clips, {len(frames)} frames at {fps:.3g} fps, where the model looks for {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
