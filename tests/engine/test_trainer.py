"""The trainer's feedback: one progress bar over the run's optimiser steps, no Lightning noise."""
from tsvq.cli.main import main

from helpers import UCR_DIR, requires_ucr


@requires_ucr("GunPoint")
def test_one_progress_bar_over_the_run_and_no_lightning_noise(tmp_path, capsys):
    args = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(tmp_path / "run"),
            "--set", "batch_size=16", "--set", "max_steps=7", "--set", "d=8", "--set", "n_resnet_blocks=1"]
    assert main(args) == 0
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "training: 100%" in err and "7/7" in err and "loss=" in err  # steps, not epochs: 3 per epoch here
    for noise in ("v_num", "Epoch 0", "Tip:", "LeafSpec", "GPU available"):
        assert noise not in err, noise
