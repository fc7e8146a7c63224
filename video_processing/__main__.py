"""Training command line: `python -m video_processing {fit,validate,test} --config configs/<name>.yaml`.

`test` runs the multi-view test (`KineticsDataModule`'s test_clips x test_crops views of each validation video).

LightningCLI turns the typed __init__ arguments of the model and the data module into flags and YAML keys. The
data decides the model's class count and names, its frame count and crop, so those are linked, not repeated.
Relative log and checkpoint folders of a config are placed under `--trainer.default_root_dir` when it is given.
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from video_processing.classification import VideoClassificationLightningModule
from video_processing.kinetics_module import KineticsDataModule


class VideoClassificationCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.class_names", apply_on="instantiate")
        parser.link_arguments("data.num_frames", "model.num_frames")
        parser.link_arguments("data.crop_size", "model.crop_size")

    def before_instantiate_classes(self) -> None:
        place_under_root_dir(self.config[self.subcommand] if self.subcommand else self.config)

    def after_fit(self) -> None:
        print_run_summary(self.trainer)

    def after_validate(self) -> None:
        print_run_summary(self.trainer)

    def after_test(self) -> None:
        print_run_summary(self.trainer)


# The folder arguments of the loggers and checkpoint callbacks a config may name.
FOLDER_ARGS = ("save_dir", "dirpath")


def place_under_root_dir(config: Namespace) -> None:
    """Prefix the relative `save_dir` of loggers and `dirpath` of callbacks with trainer.default_root_dir, if set.

    The configs write relative folders (lightning_logs/<name>/...), which Lightning resolves against the working
    directory; resolved here, `--trainer.default_root_dir DIR` moves logs and checkpoints under DIR, and
    `--ckpt_path last` looks for the last checkpoint there too.
    """
    root = config.trainer.get("default_root_dir")
    if not root:
        return
    loggers = config.trainer.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    for entry in [*loggers, *(config.trainer.get("callbacks") or [])]:
        init_args = entry.get("init_args") if isinstance(entry, Namespace) else None
        for key in FOLDER_ARGS:
            folder = init_args.get(key) if init_args is not None else None
            if folder and not Path(folder).is_absolute():
                init_args[key] = str(Path(root) / folder)


SUMMARY_METRICS = ("acc_top1", "acc_top5", "acc_mean_class", "video_acc_top1", "video_acc_top5", "loss")


def print_run_summary(trainer) -> None:
    """Print the final validation (or test) metrics and where the checkpoints and the metrics file went."""
    if not trainer.is_global_zero:
        return
    metrics = trainer.callback_metrics
    for stage in ("val", "test"):
        for metric in SUMMARY_METRICS:
            name = f"{stage}_{metric}"
            if name in metrics:
                print(f"{name:>20}: {float(metrics[name]):.4f}")
    saved = {}  # a monitored ModelCheckpoint keeps the best epoch; one with no monitor the newest (last.ckpt)
    for callback in trainer.checkpoint_callbacks:
        if callback.best_model_path:
            saved["best checkpoint" if callback.monitor else "last checkpoint"] = callback.best_model_path
    for label in sorted(saved):
        print(f"{label:>20}: {saved[label]}")
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
