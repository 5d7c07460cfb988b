"""Any data through the command line: multivariate and variable-length UEA datasets through every
trainable model, a user's .npz (labelled: the same run as the archive name; unlabelled: train ->
prior -> sample -> evaluate), ``tsvq data``, and bad user data refused before anything is written."""
import json

import numpy as np
import pytest
import torch
import yaml

from tsvq.cli.main import TRAIN_MODELS, main

aeon = pytest.importorskip("aeon.datasets")
FEW = ["--set", "max_steps=1", "--set", "epochs=1", "--no-progress"]


@pytest.fixture(autouse=True)
def _no_archive(monkeypatch):
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)  # the names below come from aeon's wheel


def _basic_motions(tmp_path, labelled=True):
    x, y = aeon.load_classification("BasicMotions", split="train")
    xt, yt = aeon.load_classification("BasicMotions", split="test")
    path = tmp_path / ("motions.npz" if labelled else "recordings.npz")
    np.savez(path, **({"x_train": x, "y_train": y, "x_test": xt, "y_test": yt} if labelled else {"x_train": x, "x_test": xt}))
    return path


@pytest.mark.parametrize("dataset, shape", [("BasicMotions", (6, 100)), ("JapaneseVowels", (12, 29))])
@pytest.mark.parametrize("model", TRAIN_MODELS)
def test_every_model_trains_on_multivariate_archives(tmp_path, model, dataset, shape):
    out = tmp_path / "run"
    assert main(["train", model, "--dataset", dataset, "--out", str(out), *FEW]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["svm_accuracy"] <= 1.0 and metrics["steps"] == 1
    from tsvq.recipes.stage1 import load_run
    cfg, net, ds, x_train, x_test = load_run(out, "last")
    assert tuple(x_train.shape[1:]) == shape and tuple(x_test.shape[1:]) == shape
    if hasattr(net, "reconstruct"):
        assert net.reconstruct(x_test[:2]).shape == (2, *shape)
    if dataset == "BasicMotions":
        scaler = yaml.safe_load((out / "scaler.json").read_text())
        assert len(scaler.get("mean", [0] * 6)) == 6  # one mean per channel (global scaling)


def test_user_npz_is_the_same_run_as_the_archive_name(tmp_path):
    path = _basic_motions(tmp_path)
    a, b = tmp_path / "by-name", tmp_path / "by-file"
    assert main(["train", "ncvqvae", "--dataset", "BasicMotions", "--out", str(a), "--set", "max_steps=3", *FEW[2:]]) == 0
    assert main(["train", "ncvqvae", "--data", str(path), "--out", str(b), "--set", "max_steps=3", *FEW[2:]]) == 0
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("svm_accuracy", "knn1_accuracy", "test_mse_time", "test_perplexity", "final_train_loss"):
        assert ma[key] == mb[key], key
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    assert cfg["dataset"] == "motions" and cfg["data"] == str(path.resolve()) and cfg["length"] is None


def test_unlabelled_npz_train_prior_sample_evaluate(tmp_path, capsys):
    path = _basic_motions(tmp_path, labelled=False)
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--data", str(path), "--out", str(out), "--set", "probe_every=1", *FEW]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "svm_accuracy" not in metrics and "silhouette" not in metrics
    assert metrics["label_metrics"].startswith("skipped: the data has no labels")
    assert metrics["test_mse_time"] > 0 and metrics["test_perplexity"] >= 1
    assert main(["prior", str(out), "--set", "max_steps=1", "--set", "epochs=1", "--no-progress"]) == 0
    assert main(["sample", str(out), "--n", "3"]) == 0
    with np.load(out / "prior" / "samples-all-n3-seed0.npz") as f:
        assert f["x"].shape == (3, 6, 100) and f["y"].tolist() == [-1, -1, -1]
    assert main(["sample", str(out), "--n", "3", "--class", "0"]) == 2
    assert "has no labels, so the prior is unconditional" in capsys.readouterr().err
    assert main(["evaluate", str(out)]) == 0
    assert "FID / IS / CAS skipped: the data has no labels" in capsys.readouterr().err
    assert "fid" not in json.loads((out / "metrics.json").read_text())


def test_pipeline_on_multivariate_data_with_its_own_fcn(tmp_path):
    out = tmp_path / "run"
    argv = ["pipeline", "vqvae", "--dataset", "BasicMotions", "--out", str(out), *FEW,
            "--prior-set", "max_steps=1", "--prior-set", "epochs=1", "--prior-set", "fcn_epochs=1",
            "--prior-set", "cas_epochs=1"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["fid"]) and 1.0 <= metrics["is_mean"] <= 4.0 and 0.0 <= metrics["cas"] <= 1.0
    assert metrics["fcn_source"].startswith("tsvq FCN")


def test_published_fcn_weights_are_refused_for_multichannel_data(tmp_path, capsys):
    weights = tmp_path / "fcn"
    weights.mkdir()
    (weights / "BasicMotions.ckpt").write_bytes(b"not read")
    out = tmp_path / "run"
    assert main(["pipeline", "vqvae", "--dataset", "BasicMotions", "--out", str(out), "--fcn-weights", str(weights),
                 *FEW]) == 2
    assert "published TimeVQVAE FCN evaluators are univariate, the data has 6 channels" in capsys.readouterr().err
    assert not out.exists()


def test_tsvq_data_prints_what_was_loaded(tmp_path, capsys):
    assert main(["data", "JapaneseVowels"]) == 0
    out = capsys.readouterr().out
    assert "channels      12" in out and "length        29 (resampled from 7..29)" in out
    assert "train classes 9: 1 (30)" in out
    path = _basic_motions(tmp_path, labelled=False)
    assert main(["data", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_train"] == 40 and info["channels"] == 6 and info["labelled"] is False


@pytest.mark.parametrize("arrays, sets, message", [
    ({"X_train": np.zeros((4, 16))}, [], "must hold x_train"),
    ({"x_train": np.zeros((4, 16)), "y_train": [0, 1, 0, 1], "x_test": np.zeros((2, 16))}, [],
     "labels are present in one split only"),
    ({"x_train": np.random.default_rng(0).normal(size=(4, 16)), "y_train": [1, 1, 1, 1],
      "x_test": np.zeros((2, 16)), "y_test": [1, 1]}, [], "the train split holds one class"),
    ({"x_train": np.random.default_rng(0).normal(size=(4, 4)), "x_test": np.zeros((2, 4))}, [],
     "the series are 4 steps long, too short for the STFT with n_fft=8"),
    ({"x_train": np.zeros((4, 2, 16)), "x_test": np.zeros((2, 3, 16))}, [], "x_test has [3] channel(s), x_train 2"),
    ({"x_train": np.random.default_rng(0).normal(size=(4, 16))}, [], "has no test split"),
    ({"x_train": np.where((np.arange(4)[:, None] == 1) & (np.arange(16) == 3), np.nan, np.arange(64.0).reshape(4, 16)),
      "x_test": np.ones((2, 16))}, [], "series 1 holds NaN inside the series (at time step 3)"),
    ({"x_train": np.zeros((4, 16)), "x_test": np.zeros((2, 16))}, ["--set", "length=1"], "length must be an int >= 2"),
])
def test_bad_user_data_is_refused_before_anything_is_written(tmp_path, capsys, arrays, sets, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--data", str(path), "--out", str(out), *sets, *FEW]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_slice_and_shuffle_keeps_channels_aligned():
    # time-axis augmentations move every channel of a series the same way (simultaneous recordings)
    from tsvq.data.augment import slice_and_shuffle, window_warp
    x = torch.randn(4, 1, 64)
    x2 = torch.cat([x, 2 * x, -x], 1)
    for fn in (slice_and_shuffle, window_warp):
        v = fn(x2, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(v[:, 1], 2 * v[:, 0])
        torch.testing.assert_close(v[:, 2], -v[:, 0])
        assert not torch.equal(v[:, 0], x[:, 0])


@pytest.mark.parametrize("model, overrides", [
    *[("ncvqvae", {"augmentation": a}) for a in ("warp", "slice", "gauss", "bt")],
    ("vqvae", {"two_branch": True}),
    ("ncvqvae", {"two_branch": True, "augmentation": "warp"}),
])
def test_multichannel_training_steps_for_every_augmentation_set_and_branch_mode(model, overrides):
    from tsvq.engine.module import stage1_step
    from tsvq.models import create_model
    torch.manual_seed(0)
    kw = dict(in_channels=3, length=64, d=16, n_resnet_blocks=1, **overrides)
    if model == "ncvqvae":
        kw["projector_widths"] = (32, 32)
    m = create_model(model, **kw)
    x = torch.randn(6, 3, 64)
    out = stage1_step(m, (x,), torch.Generator().manual_seed(0), 0, 10)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["x_hat"].shape == (6, 3, 64)
    if model == "ncvqvae":
        from tsvq.data import make_views
        v0, v1 = make_views(x, m.view_spec, torch.Generator().manual_seed(0))
        assert v1.shape == x.shape and not torch.equal(v1, x)


def test_unlabelled_data_without_a_test_split_trains_on_a_holdout(tmp_path):
    path = tmp_path / "solo.npy"
    np.save(path, np.random.default_rng(0).normal(size=(20, 2, 32)))
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--data", str(path), "--out", str(out), "--set", "holdout=0.25", *FEW]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_split"] == "holdout 0.25 of TRAIN" and "label_metrics" in metrics
    from tsvq.recipes.stage1 import load_run
    _, _, ds, x_train, x_test = load_run(out, "last")
    assert len(x_train) == 15 and len(x_test) == 5 and not ds.labelled
