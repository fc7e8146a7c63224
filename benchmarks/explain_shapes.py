"""Where a trained model looks on the self-made motion set: the share of its map inside the moving shape.

    python benchmarks/explain_shapes.py CHECKPOINT [--clips-per-class 10] [--size 112] [--seed 1] [--stage N]
        [--method hirescam|gradcam]

CHECKPOINT must be trained on the self-made classes (`make demo`). For fresh clips of each class, rendered with
the shape's box in every frame, the map for the clip's own class (`inference/gradcam.py`) is compared with the
box: the share of the map's mass inside the box, and the box's share of the clip, which is what a map spread
evenly would score (chance). The map (HiResCAM, or Grad-CAM) reads --stage (default: `explain`'s choice); the
script prints which. Then one row per class and the mean.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from video_processing.inference.classifiers import load_classifier
from video_processing.inference.gradcam import METHODS, choose_stage
from video_processing.lessons.gradcam_plots import measure_on_shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--clips-per-class", type=int, default=10)
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels (the demo set's is 112)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stage", type=int, help="the 3D stage to read, 1 = the first (default: explain's choice)")
    parser.add_argument("--method", choices=list(METHODS), default="hirescam")
    args = parser.parse_args()
    classifier = load_classifier(args.checkpoint)
    stage = choose_stage(classifier, args.stage)
    print(f"{METHODS[args.method]} on {stage}")
    measures = measure_on_shapes(
        classifier, args.size, clips_per_class=args.clips_per_class, seed=args.seed, stage=stage, method=args.method
    )
    rows = defaultdict(list)
    for m in measures:
        rows[m.label].append((m.share, m.chance))
    rows["mean"] = [(m.share, m.chance) for m in measures]
    print(f"{'class':<16} {'clips':>5} {'in box':>7} {'chance':>7} {'ratio':>6}")
    for label, values in rows.items():
        share = sum(v[0] for v in values) / len(values)
        chance = sum(v[1] for v in values) / len(values)
        print(f"{label:<16} {len(values):>5} {share:>7.1%} {chance:>7.1%} {share / chance:>6.2f}")


if __name__ == "__main__":
    main()
