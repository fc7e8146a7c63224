from pathlib import Path

import pytest
import torch
import yaml

from video_processing.__main__ import main

CONFIGS = Path(__file__).parents[1] / "configs"


def test_cli_fit_with_config(small_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # without default_root_dir, the config logs under ./lightning_logs
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "synthetic.yaml"),
            f"--data.data_path={small_dataset}",
            "--data.num_workers=0",
            "--data.crop_size=48",
            "--data.min_short_side=56",
            "--data.max_short_side=64",
            "--data.num_frames=4",
            "--model.stem_dim_out=4",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.enable_progress_bar=false",
        ]
    )
    out = capsys.readouterr().out
    assert "val_acc_top1" in out and "val_video_acc_top1" in out
    checkpoint = next((tmp_path / "lightning_logs").rglob("last.ckpt"))
    printed = dict(line.strip().split(": ", 1) for line in out.splitlines() if ": " in line)
    assert (tmp_path / printed["metrics"]).is_file() and (tmp_path / printed["last checkpoint"]) == checkpoint
    # the README shows these lines: the same labels in the same order, absolute checkpoint paths as <clone>/...
    readme = (CONFIGS.parent / "README.md").read_text()
    shown = readme.split("as checkpoint paths print absolute:\n\n```\n")[1].split("```")[0].splitlines()
    tail = out.splitlines()[-len(shown) :]
    assert [line.split(": ")[0] for line in tail] == [line.split(": ")[0] for line in shown]
    for shown_line, printed_line in zip(shown, tail, strict=True):
        value, path = shown_line.split(": ", 1)[1], Path(printed_line.split(": ", 1)[1])
        if "/" in value:
            assert path.is_absolute() == value.startswith("<clone>/"), printed_line
    hparams = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    assert hparams["num_classes"] == 6 and hparams["class_names"][0] == "growing"
    assert (hparams["num_frames"], hparams["crop_size"]) == (4, 48)  # linked from the data module


def test_configs_parse():
    for config in ("synthetic.yaml", "kinetics400.yaml"):
        try:
            main(["fit", "--config", str(CONFIGS / config), "--print_config"])
        except SystemExit as exit:  # --print_config exits after printing
            assert exit.code in (0, None)


def test_the_guides_name_the_network_kinetics400_yaml_trains(capsys):
    """The config sets no backbone, so it trains the module's default: the guides and the GPU figures say which."""
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "kinetics400.yaml"), "--print_config"])
    backbone = yaml.safe_load(capsys.readouterr().out)["model"]["backbone"]
    assert backbone == "resnet"
    docs = CONFIGS.parent / "docs"
    guide = (docs / "training-and-data.md").read_text().splitlines()
    table_row = next(line for line in guide if line.startswith("| `configs/kinetics400.yaml`"))
    figures = (docs / "benchmarks.md").read_text()
    gpu_figures = figures[figures.index("`train_throughput.py` reads the model") :].split("\n\n")[0]
    export_figures = figures[figures.index("**Export with its parity check**") :].split("\n\n")[0]
    for text in (table_row, gpu_figures, export_figures):
        assert f"`{backbone}`" in text and "slow_r50's size" not in text, text


def _thin_run(data, root) -> list[str]:
    args = ["--config", str(CONFIGS / "synthetic.yaml"), f"--data.data_path={data}", "--data.num_workers=0"]
    args += ["--data.crop_size=48", "--data.min_short_side=56", "--data.max_short_side=64", "--data.num_frames=4"]
    args += ["--model.stem_dim_out=4", "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={root}"]
    return args


def test_default_root_dir_holds_logs_and_checkpoints_and_test_prints_multi_view_metrics(
    small_dataset, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    # validation top-1 reported as falling: the best epoch is the first, the last is the second
    falling = "--trainer.callbacks+=conftest.FallingValAccuracy"
    main(["fit", *_thin_run(small_dataset, root), falling, "--trainer.max_epochs=2", "--trainer.limit_train_batches=2"])
    folder = root / "lightning_logs" / "synthetic" / "checkpoints"
    last = folder / "last.ckpt"
    assert (torch.load(last, weights_only=True)["epoch"], torch.load(last, weights_only=True)["global_step"]) == (1, 4)
    printed = dict(line.strip().split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    assert printed["last checkpoint"] == str(last)  # what `make demo` prints, absolute
    assert printed["best checkpoint"] == str(folder / "epoch=0-step=2.ckpt")
    assert list((root / "lightning_logs" / "synthetic").glob("version_0/metrics.csv"))
    assert list((root / "lightning_logs" / "tensorboard" / "synthetic").glob("version_0/events.out.tfevents.*"))
    assert not (tmp_path / "lightning_logs").exists()  # nothing in the working directory

    # 3 batches an epoch now: resumed after the last epoch's 4 steps, the run ends at step 7 (from the best
    # epoch, at step 2: 8; from scratch: 9)
    resume = ["--trainer.max_epochs=3", "--trainer.limit_train_batches=3", "--ckpt_path=last"]
    main(["fit", *_thin_run(small_dataset, root), *resume])
    assert torch.load(last, weights_only=True)["global_step"] == 7

    capsys.readouterr()
    # crops as large as the short side, as the zoo tests: the head pools over whatever crop the data gives
    full_short_side = ["--data.crop_size=56", "--data.min_short_side=56", "--data.test_clips=2"]
    main(["test", *_thin_run(small_dataset, root), f"--ckpt_path={last}", *full_short_side])
    printed = dict(line.strip().split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    for name in ("test_acc_top1", "test_acc_top5", "test_video_acc_top1", "test_video_acc_top5"):
        assert 0 <= float(printed[name]) <= 1, name
    assert Path(printed["metrics"]).is_relative_to(root) and Path(printed["metrics"]).is_file()
