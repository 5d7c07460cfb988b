"""``--set key=value``: values converted to the config field's type, ranges checked, and nothing
written to a run directory before every setting has been accepted."""
import dataclasses

import pytest
import yaml

from tsvq.config import RunConfig, resolve_config, resolve_prior_config
from tsvq.engine.run_dir import RunDir
from tsvq.recipes.stage1 import train

from helpers import UCR_DIR, requires_ucr


@pytest.mark.parametrize("item, field, expected", [
    ("lr=1e-4", "lr", 1e-4),                  # YAML 1.1 alone reads 1e-4 as a string
    ("lr=3", "lr", 3.0),
    ("epochs=1e3", "epochs", 1000),
    ("max_steps=-1", "max_steps", -1),
    ("devices=auto", "devices", "auto"),
    ("devices=2", "devices", 2),
    ("precision=16-mixed", "precision", "16-mixed"),
    ("precision=32", "precision", "32"),      # str field: the text as given
    ("holdout=0.3", "holdout", 0.3),
])
def test_run_fields_are_converted_to_their_type(item, field, expected):
    value = getattr(resolve_config("ncvqvae", "GunPoint", "quick", [item]), field)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("item, field, expected", [
    ("two_branch=true", "two_branch", True),
    ("kmeans_init=no", "kmeans_init", False),
    ("projector_widths=[256, 128]", "projector_widths", (256, 128)),
    ("ssl_weight=none", "ssl_weight", None),
    ("ssl_weight=0.5", "ssl_weight", 0.5),
    ("ssl_loss=vibcreg", "ssl_loss", "vibcreg"),
    ("decay=0.8", "decay", 0.8),
])
def test_model_fields_are_converted_to_their_type(item, field, expected):
    assert getattr(resolve_config("ncvqvae", "GunPoint", "quick", [item]).model_config, field) == expected


@pytest.mark.parametrize("item, match", [
    ("epochs=abc", "--set epochs: expected an int, got 'abc'"),
    ("epochs=1.5", "--set epochs: expected an int"),
    ("epochs=true", "--set epochs: expected an int"),
    ("lr=abc", "--set lr: expected a number"),
    ("lr=.nan", "--set lr: expected a finite number"),
    ("d=1.5", "--set d: expected an int"),
    ("two_branch=maybe", "--set two_branch: expected true or false"),
    ("projector_widths=256", "--set projector_widths: expected a non-empty list"),
    ("projector_widths=[256, x]", "--set projector_widths: expected an int"),
    ("ssl_weight=high", "--set ssl_weight: expected a number or none, got 'high'"),
    ("batch_size=-4", "batch_size must be >= 1"),
    ("epochs=0", "epochs must be >= 1"),
    ("max_steps=0", r"max_steps must be -1 \(no cap\) or >= 1"),
    ("lr=-1", "lr must be a finite number > 0"),
    ("weight_decay=-0.1", "weight_decay must be"),
    ("holdout=1.5", r"holdout must be in \[0, 1\)"),
    ("probe_every=-1", "probe_every must be >= 0"),
    ("scaling=foo", "scaling must be 'global' or 'znorm'"),
    ("data_dir=/tmp", "unknown --set key 'data_dir'"),
])
def test_bad_values_name_the_field(item, match):
    with pytest.raises(ValueError, match=match):
        resolve_config("ncvqvae", "GunPoint", "quick", [item])


@pytest.mark.parametrize("item, match", [
    ("hidden=abc", "--set hidden: expected an int"),
    ("guidance_scale=2", None),
    ("epochs=-1", "epochs must be >= 1"),
    ("fcn_epochs=0", "fcn_epochs must be >= 1"),
    ("cas_epochs=0", "cas_epochs must be >= 1"),
    ("checkpoint=first", "checkpoint must be 'best' or 'last'"),
])
def test_prior_sets(item, match):
    if match is None:
        assert resolve_prior_config("paper", [item]).model_config.guidance_scale == 2.0
        return
    with pytest.raises(ValueError, match=match):
        resolve_prior_config("quick", [item])


def test_stored_configs_are_checked_when_read():
    with pytest.raises(ValueError, match="batch_size"):
        RunConfig(model="vqvae", dataset="GunPoint", batch_size=0)


@requires_ucr("GunPoint")
@pytest.mark.parametrize("item, match", [("decay=2", "decay must be in"), ("precision=17", "Precision '17' is invalid")])
def test_a_bad_setting_writes_nothing_and_the_corrected_run_reuses_the_directory(tmp_path, item, match):
    out = tmp_path / "run"
    base = ["max_steps=1", "d=16", "n_resnet_blocks=1"]
    with pytest.raises(ValueError, match=match):  # the model / Lightning rejects it
        train(resolve_config("vqvae", "GunPoint", "quick", [*base, item], data_dir=str(UCR_DIR)), out, progress=False)
    assert not out.exists() or not any(out.iterdir())
    metrics = train(resolve_config("vqvae", "GunPoint", "quick", base, data_dir=str(UCR_DIR)), out, progress=False)
    assert metrics["steps"] == 1 and (out / "config.yaml").exists()


@requires_ucr("GunPoint")
def test_cli_reports_bad_settings_without_a_traceback(tmp_path, capsys):
    import torch

    from tsvq.cli.main import main

    out = tmp_path / "run"
    common = ["train", "vqvae", "--dataset", "GunPoint", "--data-dir", str(UCR_DIR), "--out", str(out)]
    assert main([*common, "--set", "lr=abc"]) == 2
    assert "tsvq train: error: --set lr: expected a number, got 'abc'" in capsys.readouterr().err
    if not torch.cuda.is_available():  # Lightning's own check (MisconfigurationException)
        assert main([*common, "--set", "accelerator=gpu", "--set", "max_steps=1"]) == 2
        assert "tsvq train: error: " in capsys.readouterr().err
    assert not out.exists()


def test_presets_are_the_cli_choices_and_timevqvae_is_the_two_branch_tokenizer():
    from tsvq.cli.main import PRESET_NAMES
    from tsvq.config import PRESETS, PRIOR_PRESETS

    assert PRESET_NAMES == tuple(PRESETS) == tuple(PRIOR_PRESETS)
    for model in ("vqvae", "ncvqvae"):
        cfg = resolve_config(model, "GunPoint", "timevqvae")
        assert (cfg.epochs, cfg.max_steps, cfg.model_config.two_branch, cfg.model_config.decay) == (2000, -1, True, 0.8)
    assert resolve_prior_config("timevqvae") == resolve_prior_config("paper").__class__(
        **{**resolve_prior_config("paper").__dict__, "preset": "timevqvae"})
    with pytest.raises(ValueError, match="preset 'timevqvae'.*not 'vae'"):
        resolve_config("vae", "GunPoint", "timevqvae")


def test_paper_preset_has_the_timevqvae_decoder_and_an_older_paper_run_keeps_its_mirror(tmp_path):
    for model in ("vqvae", "ncvqvae"):
        assert resolve_config(model, "GunPoint", "paper").model_config.decoder == "timevqvae"
        assert resolve_config(model, "GunPoint", "paper", ["decoder=mirror"]).model_config.decoder == "mirror"
        assert resolve_config(model, "GunPoint", "quick").model_config.decoder == "mirror"
    assert not hasattr(resolve_config("vae", "GunPoint", "paper").model_config, "decoder")
    cfg = resolve_config("ncvqvae", "GunPoint", "paper", ["decoder=mirror"])
    stored = dataclasses.asdict(cfg)
    del stored["model_config"]["decoder"]  # a paper run stored before the field existed: built with the mirror
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    assert RunDir(tmp_path).read_config(type(cfg)).model_config.decoder == "mirror"


def test_resolve_config_errors():
    with pytest.raises(ValueError, match="unknown model"):
        resolve_config("gan", "GunPoint")
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("vqvae", "GunPoint", "slow")
    with pytest.raises(ValueError, match="unknown --set key"):
        resolve_config("vqvae", "GunPoint", sets=["nope=1"])
    with pytest.raises(ValueError, match="key=value"):
        resolve_config("vqvae", "GunPoint", sets=["epochs"])
    cfg = resolve_config("ncvqvae", "GunPoint", "paper", ["ssl_loss=vibcreg", "lr=0.0005"])
    assert cfg.epochs == 1000 and cfg.lr == 0.0005 and cfg.model_config.ssl_loss == "vibcreg"


def test_write_config_accepts_a_run_written_before_a_field_existed(tmp_path):
    cfg = resolve_config("vqvae", "GunPoint", "quick", ["epochs=3"], seed=0, data_dir="/data/ucr")
    stored = dataclasses.asdict(cfg)
    del stored["holdout"]  # a config.yaml from a version without this field (default 0.0)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    RunDir(tmp_path).write_config(cfg, resume=False, hint="x")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["holdout"] == 0.0
    other = dataclasses.replace(cfg, holdout=0.2)
    with pytest.raises(FileExistsError, match="another config.yaml; x"):
        RunDir(tmp_path).write_config(other, resume=False, hint="x")
