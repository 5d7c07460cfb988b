"""Runs interrupted at seeded steps (SIGKILL: the process dies at once; SIGINT: Lightning's graceful
shutdown) and resumed end bit-identical to the uninterrupted run: weights, optimiser state and
metrics. Each run is a subprocess (``kill_driver.py``) on one thread."""
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from helpers import UCR_DIR, requires_ucr

pytestmark = requires_ucr("GunPoint")
DRIVER = Path(__file__).with_name("kill_driver.py")
# 50 train series in batches of 16: 3 optimiser steps per epoch; max_steps stops mid-epoch 5
STAGE1 = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--set", "d=16",
          "--set", "n_resnet_blocks=1", "--set", "batch_size=16", "--set", "epochs=6", "--set", "max_steps=14",
          "--set", "checkpoint_every=3", "--set", "threshold_ema_dead_code=1"]
PRIOR = ["--set", "epochs=7", "--set", "hidden=32", "--set", "n_layers=1", "--set", "checkpoint_every=2"]
NOT_COMPARED = ("train_wall_s_this_session", "epoch_time_s", "prior_wall_s_this_session")


def _run(args, kill_at=None, sig="SIGKILL"):
    cmd = [sys.executable, str(DRIVER)] + ([] if kill_at is None else ["--kill-at", str(kill_at), "--signal", sig])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd + args, capture_output=True, text=True, timeout=300, env=env)
    return done.returncode, done.stderr


def _interrupted(args, last: Path, schedule):
    """Run ``args`` killed at each (step, signal) of ``schedule``, resuming in between, then to the end."""
    for step, sig in schedule:
        rc, err = _run(args + (["--resume"] if last.exists() else []), step, sig)
        assert rc != 0, f"the run was not interrupted at step {step}:\n{err[-2000:]}"
    rc, err = _run(args + ["--resume"])
    assert rc == 0, err[-3000:]


def _same_state(a: Path, b: Path):
    ca, cb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    assert ca["global_step"] == cb["global_step"] and ca["epoch"] == cb["epoch"]
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for k in ca["state_dict"]:
        assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), k
    sa, sb = ca["optimizer_states"][0]["state"], cb["optimizer_states"][0]["state"]
    for k in sa:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[k][name], sb[k][name]), (k, name)


def _metrics(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in NOT_COMPARED}


def test_killed_and_resumed_runs_end_bit_identical(tmp_path):
    rng = random.Random(0)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    rc, err = _run(STAGE1 + ["--out", str(ref)])
    assert rc == 0, err[-3000:]
    # stage 1: two kills at seeded steps (mid-epoch; one before the first checkpoint is possible)
    steps = sorted(rng.sample(range(1, 14), 2))
    schedule = list(zip(steps, ["SIGKILL", "SIGINT"]))
    _interrupted(STAGE1 + ["--out", str(cut)], cut / "checkpoints" / "last.ckpt", schedule)
    _same_state(ref / "checkpoints" / "last.ckpt", cut / "checkpoints" / "last.ckpt")
    assert _metrics(ref / "metrics.json") == _metrics(cut / "metrics.json")
    assert json.loads((cut / "metrics.json").read_text())["steps"] == 14

    # the prior on the same tokenizer: 1 step per epoch, killed twice
    shutil.rmtree(cut / "prior", ignore_errors=True)
    rc, err = _run(["prior", str(ref)] + PRIOR)
    assert rc == 0, err[-3000:]
    steps = sorted(rng.sample(range(1, 7), 2))
    _interrupted(["prior", str(cut)] + PRIOR, cut / "prior" / "checkpoints" / "last.ckpt",
                 list(zip(steps, ["SIGINT", "SIGKILL"])))
    _same_state(ref / "prior" / "checkpoints" / "last.ckpt", cut / "prior" / "checkpoints" / "last.ckpt")
    assert _metrics(ref / "prior" / "summary.json") == _metrics(cut / "prior" / "summary.json")
    print(f"stage-1 kills {schedule}, prior kills {steps}: identical")  # shown with -s
