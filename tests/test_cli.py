from pathlib import Path

import torch

from video_processing.__main__ import main

CONFIGS = Path(__file__).parents[1] / "configs"


def test_cli_fit_with_config(small_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the config logs under ./lightning_logs
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
    hparams = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    assert hparams["num_classes"] == 6 and hparams["class_names"][0] == "growing"
    assert (hparams["num_frames"], hparams["crop_size"]) == (4, 48)  # linked from the data module


def test_configs_parse():
    for config in ("synthetic.yaml", "kinetics400.yaml"):
        try:
            main(["fit", "--config", str(CONFIGS / config), "--print_config"])
        except SystemExit as exit:  # --print_config exits after printing
            assert exit.code in (0, None)
