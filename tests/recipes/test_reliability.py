"""Run-layer guarantees on real and deliberately bad data: the checkpoint on disk is the model the
metrics describe, bad input is refused before anything is written, finished runs resume safely."""

import pytest
import torch

from tsvq.cli.main import main
from tsvq.config import resolve_config
from tsvq.recipes.stage1 import evaluate_run, train

from helpers import FCN_DIR, UCR_DIR, requires_ucr

FAST = ["d=16", "n_resnet_blocks=1"]


def _ucr(root, name, train_rows, test_rows):
    (root / name).mkdir(parents=True)
    for split, rows in (("TRAIN", train_rows), ("TEST", test_rows)):
        text = "\n".join("\t".join(str(v) for v in row) for row in rows)
        (root / name / f"{name}_{split}.tsv").write_text(text + ("\n" if rows else ""))
    return root


@requires_ucr("GunPoint")
def test_last_checkpoint_is_the_model_the_metrics_describe(tmp_path):
    # 3 steps per epoch, 7 steps: training stops mid-epoch, between the periodic saves
    cfg = resolve_config("vqvae", "GunPoint", "quick", FAST + ["batch_size=16", "max_steps=7"], data_dir=str(UCR_DIR))
    trained = train(cfg, tmp_path / "run", progress=False)
    assert trained["checkpoint"] == "last" and trained["checkpoint_step"] == trained["steps"] == 7
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 7
    again = evaluate_run(tmp_path / "run", "last")
    for k in ("svm_accuracy", "knn1_accuracy", "test_mse_time", "test_perplexity"):
        assert again[k] == trained[k], k
    assert again["checkpoint_step"] == 7 and again["epochs"] == trained["epochs"]


@requires_ucr("GunPoint")
def test_resuming_a_finished_run_keeps_its_run_info(tmp_path):
    cfg = resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=3"], data_dir=str(UCR_DIR))
    first = train(cfg, tmp_path / "run", progress=False)
    again = train(cfg, tmp_path / "run", resume=True, progress=False)
    for k in ("epochs", "steps", "final_train_loss", "epoch_time_s", "svm_accuracy"):
        assert again[k] == first[k], k


@pytest.mark.parametrize("rows, message", [
    ([[1, 0.1, 0.5, 0.3, 0.2] * 1], "train split holds 1 series"),
    ([[1, 0.1, 0.5, 0.3, 0.2], [1, 0.3, 0.1, 0.0, 0.4], [1, 0.2, 0.2, 0.6, 0.1]], "holds one class"),
    ([[1, 0.5, 0.5, 0.5, 0.5], [2, 0.5, 0.5, 0.5, 0.5], [1, 0.5, 0.5, 0.5, 0.5]], "every train series is constant"),
    ([], "Bad_TRAIN.tsv is empty"),
    ([[1, 0.1, 0.5, 0.3, 0.2], [2, "nan", "nan", "nan", "nan"]], "row 1 holds no values"),
])
def test_bad_datasets_are_refused_before_anything_is_written(tmp_path, capsys, rows, message):
    good = [[1, 0.1, 0.5, 0.3, 0.2], [2, 0.3, 0.1, 0.0, 0.4]]
    root = _ucr(tmp_path / "data", "Bad", rows, good)
    out = tmp_path / "run"
    args = ["train", "vqvae", "--dataset", "Bad", "--data-dir", str(root), "--out", str(out), "--no-progress",
            "--set", "epochs=2", "--set", "d=8", "--set", "n_resnet_blocks=1"]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_named_data_dir_must_exist(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert f"data_dir {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("sets, message", [
    (["accelerator=tpu"], "accelerator must be one of"),
    (["devices=abc"], "devices must be an int"),
    (["projector_widths=[-5]"], "projector widths must be ints >= 1"),
    (["projector_widths=[0]"], "projector widths must be ints >= 1"),
    (["ssl_weight=-1"], "ssl_weight must be a finite number >= 0"),
    (["threshold_ema_dead_code=.nan"], "expected a finite number"),
    (["checkpoint_every=0"], "checkpoint_every must be >= 1"),
])
def test_bad_settings_exit_2_with_a_named_error_and_write_nothing(tmp_path, capsys, sets, message):
    out = tmp_path / "run"
    args = ["train", "ncvqvae", "--dataset", "GunPoint", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "tsvq train: error: " in err and message in err and not out.exists()


def test_an_unwritable_out_and_resume_without_a_run_exit_2(tmp_path, capsys):
    # a file where the run's parent folder should be: mkdir fails as on a read-only parent (and as root)
    (tmp_path / "file").write_text("")
    assert main(["train", "vqvae", "--dataset", "GunPoint", "--out", str(tmp_path / "file" / "run"),
                 "--set", "max_steps=1"]) == 2
    assert "tsvq train: error: " in capsys.readouterr().err
    assert main(["train", "vqvae", "--dataset", "GunPoint", "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err and not (tmp_path / "new").exists()


@requires_ucr("GunPoint")
def test_damaged_run_files_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    train(resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=2"], data_dir=str(UCR_DIR)), out, progress=False)
    ck = out / "checkpoints" / "best.ckpt"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 3])
    assert main(["evaluate", str(out)]) == 2
    assert "best.ckpt is not a readable checkpoint" in capsys.readouterr().err
    ck.write_bytes(data)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"\x80\x02")
    args = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(out), "--resume"]
    for s in FAST + ["epochs=2"]:
        args += ["--set", s]
    assert main(args) == 2
    assert "last.ckpt is not a readable checkpoint" in capsys.readouterr().err
    (out / "config.yaml").write_text("model: vqvae\ndataset: [")
    assert main(["evaluate", str(out)]) == 2
    assert "config.yaml is not valid YAML" in capsys.readouterr().err


@requires_ucr("GunPoint")
def test_pipeline_checks_every_input_before_the_first_stage(tmp_path, capsys):
    out = tmp_path / "pl"
    base = ["pipeline", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(out),
            "--no-progress", "--set", "max_steps=2", "--set", "d=16", "--set", "n_resnet_blocks=1",
            "--prior-set", "max_steps=2", "--prior-set", "hidden=32", "--prior-set", "n_layers=1",
            "--prior-set", "cas_epochs=1"]
    assert main(base + ["--fcn-weights", str(tmp_path / "no_such_dir")]) == 2
    assert "--fcn-weights" in capsys.readouterr().err and not out.exists()
    assert main(base + ["--prior-set", "n_heads=3"]) == 2
    assert "divisible by n_heads" in capsys.readouterr().err and not out.exists()
    if not (FCN_DIR / "GunPoint.ckpt").exists():
        pytest.skip("shared FCN weights not found")
    assert main(base + ["--fcn-weights", str(FCN_DIR)]) == 0
    capsys.readouterr()
    # a finished pipeline is not reused with another config
    assert main(base + ["--fcn-weights", str(FCN_DIR), "--set", "lr=0.01"]) == 2
    assert "holds a run with another config.yaml" in capsys.readouterr().err
    assert main(base + ["--fcn-weights", str(FCN_DIR), "--prior-set", "lr=0.01"]) == 2
    assert "another config.yaml; use another --out or the same --prior-set" in capsys.readouterr().err


@requires_ucr("GunPoint")
def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    from helpers import LockHolder

    out = tmp_path / "run"
    args = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(out),
            "--set", "epochs=1", "--set", "d=8", "--set", "n_resnet_blocks=1", "--no-progress"]
    with LockHolder(out) as pid:  # as another `tsvq train --out run` still running would
        assert main(args) == 2
        assert f"in use by another tsvq process (PID {pid})" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    assert main(args) == 0
