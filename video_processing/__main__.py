"""Training command line: `python -m video_processing {fit,validate,test} --config configs/<name>.yaml`.

LightningCLI turns the typed __init__ arguments of the model and the data module into flags and YAML keys. The
data decides the model's class count and names, its frame count and crop, so those are linked, not repeated.
"""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule


class VideoClassificationCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.class_names", apply_on="instantiate")
        parser.link_arguments("data.num_frames", "model.num_frames")
        parser.link_arguments("data.crop_size", "model.crop_size")

    def after_fit(self) -> None:
        print_run_summary(self.trainer)

    def after_validate(self) -> None:
        print_run_summary(self.trainer)


def print_run_summary(trainer) -> None:
    """Print the final validation metrics and where the checkpoint and the metrics file went."""
    if not trainer.is_global_zero:
        return
    metrics = trainer.callback_metrics
    for name in ("val_acc_top1", "val_acc_top5", "val_video_acc_top1", "val_loss"):
        if name in metrics:
            print(f"{name:>20}: {float(metrics[name]):.4f}")
    if trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path:
        print(f"{'best checkpoint':>20}: {trainer.checkpoint_callback.best_model_path}")
        print(f"{'last checkpoint':>20}: {trainer.checkpoint_callback.last_model_path}")
    if trainer.logger is not None and trainer.logger.log_dir:
        print(f"{'metrics':>20}: {Path(trainer.logger.log_dir) / 'metrics.csv'}")


def main(args: list[str] | None = None) -> None:
    VideoClassificationCLI(
        VideoClassificationLightningModule,
        KineticsDataModule,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()
