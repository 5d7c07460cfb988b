"""End to end on real data: stage 1 -> MaskGIT prior -> samples -> FID / IS / CAS (tiny settings:
the pipeline and its files, not the quality)."""
import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from tsvq.cli.main import main
from tsvq.config import resolve_config, resolve_prior_config
from tsvq.recipes.generation import class_counts, evaluate_generation
from tsvq.recipes.prior import train_prior
from tsvq.recipes.stage1 import train

from helpers import FCN_DIR, UCR_DIR, requires_ucr

pytestmark = requires_ucr("GunPoint")
STAGE1 = ["epochs=3", "d=16", "n_resnet_blocks=1"]
PRIOR = ["epochs=3", "hidden=32", "n_layers=1", "fcn_epochs=2", "cas_epochs=1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    train(resolve_config("vqvae", "GunPoint", "quick", STAGE1, data_dir=str(UCR_DIR)), out, progress=False)
    return out


def test_prior_sample_and_evaluate_with_published_fcn(run_dir, tmp_path, capsys):
    summary = train_prior(run_dir, resolve_prior_config("quick", PRIOR), progress=False)
    assert summary["prior_steps"] == 3 and np.isfinite(summary["prior_final_loss"])
    from tsvq.report.tables import METRIC_DOCS
    assert not [k for k in summary if k not in METRIC_DOCS]
    for name in ("prior/config.yaml", "prior/checkpoints/last.ckpt", "prior/checkpoints/best.ckpt",
                 "prior/logs/session1/metrics.csv", "prior/summary.json"):
        assert (run_dir / name).exists(), name
    with pytest.raises(FileExistsError, match="--resume"):
        train_prior(run_dir, resolve_prior_config("quick", PRIOR), progress=False)

    out = tmp_path / "s.npz"
    assert main(["sample", str(run_dir), "--n", "5", "--class", "1", "--guidance", "2", "--out", str(out)]) == 0
    data = np.load(out)
    assert data["x"].shape == (5, 1, 150) and (data["y"] == 1).all() and str(data["units"]) == "data"
    assert np.isfinite(data["x"]).all() and out.with_suffix(".png").exists()
    main(["sample", str(run_dir), "--n", "5", "--class", "1", "--guidance", "2"])  # default: under the run
    default = run_dir / "prior" / "samples-class1-n5-seed0.npz"
    np.testing.assert_array_equal(np.load(default)["x"], data["x"])  # seeded
    assert default.with_suffix(".png").exists()
    capsys.readouterr()
    for bad, message in ((["--class", "7"], "--class must be in [0, 1] for GunPoint"),
                         (["--n", "0"], "n (number of samples) must be an int >= 1"),
                         (["--class", "1", "--guidance", "nan"], "guidance_scale must be a finite float"),
                         (["--out", str(tmp_path)], "--out must be a file name")):
        assert main(["sample", str(run_dir), "--out", str(tmp_path / "u.npz"), *bad]) == 2
        assert f"tsvq sample: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "u.npz").exists()

    if not (FCN_DIR / "GunPoint.ckpt").exists():
        pytest.skip("shared FCN weights not found")
    assert main(["evaluate", str(run_dir), "--fcn-weights", str(FCN_DIR)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["fcn_test_accuracy"] == 1.0 and "published" in metrics["fcn_source"]
    assert metrics["fid"] >= 0 and 1.0 <= metrics["is_mean"] <= 2.0 and 0.0 <= metrics["cas"] <= 1.0
    assert metrics["n_generated"] == 256 and metrics["n_cas"] == 1000 and "svm_accuracy" in metrics
    # references: the STFT -> ISTFT round trip keeps the real test set's IS (1.93 with these weights)
    assert 1.85 < metrics["is_real_test"] < 2.0 and metrics["fid_test_reconstruction"] >= 0
    assert (run_dir / "samples.png").exists() and "fid" in (run_dir / "metrics.md").read_text()


def test_own_fcn_is_trained_once_and_cached(run_dir, capsys):
    from tsvq.data import load_ucr
    from tsvq.engine.run_dir import RunDir
    from tsvq.recipes.fcn import fcn_evaluator

    if not (run_dir / "prior" / "config.yaml").exists():
        train_prior(run_dir, resolve_prior_config("quick", PRIOR), progress=False)
    capsys.readouterr()
    first = evaluate_generation(run_dir, None)
    assert (run_dir / "fcn" / "fcn.pt").exists() and "cached" not in first["fcn_source"]
    err = capsys.readouterr().err.replace("\r", "\n")  # every long phase announces itself, with a bar for loops
    for phase in ("FCN evaluator on GunPoint train", "sampling for FID / IS", "/256", "sampling for CAS", "/1000",
                  "CAS classifier on the samples"):
        assert phase in err, phase
    assert 0.0 <= first["fcn_test_accuracy"] <= 1.0 and np.isfinite(first["fid"])
    from tsvq.report.tables import METRIC_DOCS
    assert not [k for k in first if k not in METRIC_DOCS]  # every metric is explained in metrics.md
    ds = load_ucr("GunPoint", UCR_DIR)
    model, source = fcn_evaluator(RunDir(run_dir), ds, None, epochs=2, seed=0)
    assert "cached" in source
    _, other = fcn_evaluator(RunDir(run_dir), ds, None, epochs=3, seed=0)  # other settings: trained again
    assert "cached" not in other


def test_class_counts_follow_the_train_proportions():
    y = torch.tensor([0] * 30 + [1] * 20 + [2] * 1)
    c = class_counts(y, 3, 1000)
    assert int(c.sum()) == 1000 and c.tolist() == [588, 392, 20]


def test_prior_config_errors_and_overrides():
    cfg = resolve_prior_config("paper", ["hidden=128", "lr=0.0005"])
    assert cfg.epochs == 10000 and cfg.lr == 0.0005 and cfg.model_config.hidden == 128
    assert (resolve_prior_config("quick").model_config.hidden, resolve_prior_config("quick").model_config.n_layers) == (128, 2)
    with pytest.raises(ValueError, match="unknown --set key"):
        resolve_prior_config("quick", ["nope=1"])
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_prior_config("fast")
    with pytest.raises(ValueError, match="checkpoint"):
        resolve_prior_config("quick", ["checkpoint=first"])
    assert yaml.safe_load(yaml.safe_dump(dataclasses.asdict(cfg)))["model_config"]["hidden"] == 128


def test_evaluate_without_prior_needs_no_fcn(tmp_path, capsys):
    out = tmp_path / "plain"
    train(resolve_config("vqvae", "GunPoint", "quick", STAGE1, data_dir=str(UCR_DIR)), out, progress=False)
    assert main(["evaluate", str(out)]) == 0
    assert "fid" not in json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["sample", str(out), "--out", str(tmp_path / "x.npz")]) == 2
    assert "tsvq sample: error: " in (err := capsys.readouterr().err) and f"train a prior first (tsvq prior {out})" in err

    # a prior setting the model rejects leaves no prior/ behind, and the corrected call trains
    with pytest.raises(ValueError, match="divisible"):
        train_prior(out, resolve_prior_config("quick", PRIOR + ["n_heads=3"]), progress=False)
    assert not (out / "prior" / "config.yaml").exists()
    assert train_prior(out, resolve_prior_config("quick", PRIOR), progress=False)["prior_steps"] == 3


def test_two_branch_tokenizer_prior_samples_lf_then_hf(tmp_path):
    from tsvq.recipes.prior import generate, load_prior

    out = tmp_path / "two"
    train(resolve_config("vqvae", "GunPoint", "quick", STAGE1 + ["two_branch=true"], data_dir=str(UCR_DIR)), out,
          progress=False)
    train_prior(out, resolve_prior_config("quick", PRIOR), progress=False)
    _, tokenizer, prior, _, _, _, _ = load_prior(out)
    assert len(prior.stages) == 2 and prior.stages[1].n_context == prior.stages[0].n_tokens
    x = generate(tokenizer, prior, 4, classes=torch.tensor([0, 1, 0, 1]), guidance_scale=1.5, seed=3)
    assert x.shape == (4, 1, 150) and torch.isfinite(x).all()
    torch.testing.assert_close(x, generate(tokenizer, prior, 4, classes=torch.tensor([0, 1, 0, 1]),
                                           guidance_scale=1.5, seed=3))


def test_prior_resumes_from_a_checkpoint_saved_before_the_end(tmp_path):
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    train(resolve_config("vqvae", "GunPoint", "quick", STAGE1, data_dir=str(UCR_DIR)), a, progress=False)
    shutil.copytree(a, b, ignore=shutil.ignore_patterns("prior"))
    short = [s for s in PRIOR if not s.startswith("epochs=")]
    train_prior(a, resolve_prior_config("quick", short + ["epochs=2"]), progress=False)
    (b / "prior" / "checkpoints").mkdir(parents=True)
    shutil.copy(a / "prior" / "checkpoints" / "last.ckpt", b / "prior" / "checkpoints" / "last.ckpt")
    summary = train_prior(b, resolve_prior_config("quick", short + ["epochs=4"]), resume=True, progress=False)
    assert summary["prior_epochs"] == 4 and summary["prior_steps"] == 4  # an interrupted 4-epoch prior
    assert (b / "prior" / "logs" / "session1" / "metrics.csv").read_text().count("\n") == 3  # epochs 3 and 4 only
