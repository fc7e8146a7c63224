"""`distributed_run.py` on clips planned in the workers and decoded in each rank's main process (torchcodec on
the CPU standing in for NVDEC): run by test_gpu_decode.py, with the same arguments.

Each rank also writes OUT_DIR/skipped_rank<r>.json: the videos its batches reported skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytorch_lightning import Callback

from tests.conftest import planned_on_cpu
from tests.distributed_run import run


class SkipRecorder(Callback):
    def __init__(self, out: Path):
        self.out = out
        self.skipped: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        assert len(batch["video"]) == len(batch["label"]) == len(batch["video_name"])
        self.skipped += [path for path, _ in batch["skipped"]]

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_fit_end(self, trainer, pl_module):
        (self.out / f"skipped_rank{trainer.global_rank}.json").write_text(json.dumps(self.skipped))


def main(out_dir: str, data_path: str, weights: str, data_args: str, model_args: str) -> None:
    out = Path(out_dir)
    run(out, planned_on_cpu(Path(data_path), **json.loads(data_args)), weights, model_args, [SkipRecorder(out)])


if __name__ == "__main__":
    main(*sys.argv[1:])
