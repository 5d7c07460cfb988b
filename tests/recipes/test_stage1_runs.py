"""End-to-end stage-1 runs on real UCR data (a few epochs: the pipeline, not the quality)."""
import json

import pytest
import yaml

from tsvq.cli.main import main
from tsvq.config import resolve_config
from tsvq.recipes.stage1 import evaluate_run, train

from helpers import UCR_DIR, requires_ucr

pytestmark = requires_ucr("GunPoint")
FAST = ["epochs=3", "d=16", "n_resnet_blocks=1"]


def test_train_writes_a_complete_run_and_resumes(tmp_path):
    cfg = resolve_config("ncvqvae", "GunPoint", "quick", FAST + ["projector_widths=[64, 64]"], seed=1,
                         data_dir=str(UCR_DIR))
    out = tmp_path / "run"
    metrics = train(cfg, out, progress=False)
    for name in ("config.yaml", "metrics.json", "metrics.md", "scaler.json", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt", "logs/session1/metrics.csv", "reconstructions.png", "codebook_usage.png",
                 "latent_pca.png", "loss_curves.png"):
        assert (out / name).exists(), name
    for k in ("svm_accuracy", "knn1_accuracy", "knn5_accuracy", "knn10_accuracy", "silhouette", "intrinsic_dim_95",
              "test_mse_time", "test_mse_timefreq", "test_perplexity", "test_fraction_used"):
        assert k in metrics
    assert 0.0 <= metrics["svm_accuracy"] <= 1.0
    from tsvq.report.tables import METRIC_DOCS
    assert not [k for k in json.loads((out / "metrics.json").read_text()) if k not in METRIC_DOCS]  # all explained
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model_config"]["projector_widths"] == [64, 64] and saved["epochs"] == 3
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, out, progress=False)
    # resume to more epochs: a different config is refused, the same one continues from last.ckpt
    more = resolve_config("ncvqvae", "GunPoint", "quick", FAST + ["projector_widths=[64, 64]"], seed=2,
                          data_dir=str(UCR_DIR))
    with pytest.raises(FileExistsError, match="another config"):
        train(more, out, progress=False)
    train(cfg, out, resume=True, progress=False)
    assert (out / "logs" / "session1" / "metrics.csv").exists() and (out / "logs" / "session2").exists()
    again = evaluate_run(out, "last")
    assert again["checkpoint"] == "last" and json.loads((out / "metrics.json").read_text())["checkpoint"] == "last"


def test_cli_train_and_evaluate(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(out), "--no-progress"]
    for s in FAST:
        args += ["--set", s]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "svm_accuracy" in text and "test_perplexity" in text
    assert main(["evaluate", str(out)]) == 0


def test_probe_every_logs_probe_accuracies_and_max_steps_caps_training(tmp_path):
    import csv

    cfg = resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=6", "max_steps=4", "probe_every=2"],
                         data_dir=str(UCR_DIR))
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["steps"] == 4 and metrics["epochs"] == 4  # GunPoint: one step per epoch
    rows = list(csv.DictReader(open(tmp_path / "run" / "logs" / "session1" / "metrics.csv")))
    probes = [float(r["probe/svm_accuracy"]) for r in rows if r.get("probe/svm_accuracy")]
    assert len(probes) == 2 and all(0.0 <= p <= 1.0 for p in probes)
    assert (tmp_path / "run" / "probe_curves.png").exists()


@pytest.mark.parametrize("ssl_loss", ["barlow_twins", "vicreg"])
def test_ncvqvae_trains_in_bf16_mixed_precision(tmp_path, ssl_loss):
    # Autocast once broke the Barlow Twins op at the first step (its GEMMs came back in bf16).
    cfg = resolve_config("ncvqvae", "GunPoint", "quick", FAST + ["epochs=2", "precision=bf16-mixed",
                         "projector_widths=[32, 32]", f"ssl_loss={ssl_loss}"], data_dir=str(UCR_DIR))
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert metrics["steps"] == 2 and metrics["final_train_loss"] == metrics["final_train_loss"]  # not NaN


def test_resume_from_a_checkpoint_saved_before_the_end(tmp_path):
    import shutil

    early = resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=2"], data_dir=str(UCR_DIR))
    train(early, tmp_path / "a", progress=False)
    full = resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=4"], data_dir=str(UCR_DIR))
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "last.ckpt", tmp_path / "b" / "checkpoints" / "last.ckpt")
    metrics = train(full, tmp_path / "b", resume=True, progress=False)  # an interrupted 4-epoch run
    assert metrics["epochs"] == 4 and metrics["steps"] == 4


@pytest.mark.parametrize("model,sets", [
    ("mssim_vae", ["widths=[8, 16]", "latent_dim=4", "kl_anneal_steps=2"]),
    ("byol", ["widths=[8, 16]", "projector_widths=[32, 16]", "predictor_hidden=16"]),
])
def test_zoo_families_train_and_evaluate_on_real_data(tmp_path, model, sets):
    from helpers import FCN_DIR

    from tsvq.recipes.generation import evaluate_all

    cfg = resolve_config(model, "GunPoint", "quick", ["epochs=3"] + sets, data_dir=str(UCR_DIR))
    metrics = train(cfg, tmp_path / model, progress=False)
    assert 0.0 <= metrics["svm_accuracy"] <= 1.0 and "test_perplexity" not in metrics
    assert ("test_mse_time" in metrics) == (model == "mssim_vae")
    assert (tmp_path / model / "latent_pca.png").exists()
    if model == "mssim_vae":
        assert 0.0 < metrics["test_ms_ssim"] <= 1.0 and (tmp_path / model / "reconstructions.png").exists()
        if FCN_DIR.exists():
            full = evaluate_all(tmp_path / model, fcn_weights=FCN_DIR)
            assert full["fid"] >= 0 and 1.0 <= full["is_mean"] <= 2.0 and "cas" not in full
            assert (tmp_path / model / "samples.png").exists()
        saved = yaml.safe_load((tmp_path / model / "config.yaml").read_text())
        assert saved["model"] == "mssim_vae"


def test_holdout_evaluates_on_a_stratified_part_of_train(tmp_path):
    from helpers import SHARED

    from tsvq.recipes.stage1 import load_data

    cfg = resolve_config("vqvae", "GunPoint", "quick", FAST + ["epochs=1", "holdout=0.3"], data_dir=str(UCR_DIR))
    ds, x_train, x_test, _ = load_data(cfg)
    assert len(x_train) == 35 and len(x_test) == 15 and set(ds.y_test.tolist()) == {0, 1}
    metrics = train(cfg, tmp_path / "h", progress=False)
    assert metrics["eval_split"] == "holdout 0.3 of TRAIN"
    train_only = SHARED / "data" / "UCRArchive_2018_train_only"
    if (train_only / "TwoPatterns").exists():
        with pytest.raises(FileNotFoundError, match="train-only"):
            load_data(resolve_config("vqvae", "TwoPatterns", data_dir=str(train_only)))
        ds, _, x_val, _ = load_data(resolve_config("vqvae", "TwoPatterns", sets=["holdout=0.3"],
                                                   data_dir=str(train_only)))
        assert len(x_val) == 300 and ds.n_classes == 4
