"""The command line itself: every command's --help, argparse errors, and bad input of every
command ending in ``tsvq CMD: error: ...`` with exit status 2 (no traceback) before any work."""
import pytest

from tsvq.cli.main import build_parser, main

COMMANDS = ["info", "data", "train", "evaluate", "prior", "sample", "pipeline"]


def test_every_command_has_help(capsys):
    choices = build_parser()._subparsers._group_actions[0].choices
    assert list(choices) == COMMANDS
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert f"usage: tsvq {cmd}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "gan", "--dataset", "GunPoint"], "invalid choice: 'gan'"),
    (["train", "vqvae"], "one of the arguments --dataset --data is required"),
    (["train", "vqvae", "--dataset", "GunPoint", "--data", "x.npz"], "not allowed with argument --dataset"),
    (["train", "vqvae", "--dataset", "GunPoint", "--preset", "slow"], "invalid choice: 'slow'"),
    (["sample", "runs/x", "--n", "many"], "invalid int value"),
])
def test_argparse_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "does/not/exist"], "tsvq evaluate: error: does/not/exist/config.yaml not found: not a tsvq run directory"),
    (["prior", "does/not/exist"], "tsvq prior: error: does/not/exist/config.yaml not found"),
    (["sample", "does/not/exist"], "tsvq sample: error: does/not/exist/config.yaml not found: not a tsvq run directory"),
    (["sample", "RUN"], "tsvq sample: error: RUN/prior/config.yaml not found: train a prior first"),
    (["train", "vqvae", "--dataset", "GunPoint", "--set", "nope=1"], "tsvq train: error: unknown --set key 'nope'"),
    (["prior", "RUN", "--set", "nope=1"], "tsvq prior: error: unknown --set key 'nope'"),
    (["train", "vqvae", "--dataset", "Gunpoint"], "tsvq train: error: dataset 'Gunpoint' not found (did you mean GunPoint?)"),
    (["pipeline", "vqvae", "--dataset", "gunpoint"], "tsvq pipeline: error: dataset 'gunpoint' not found (did you mean GunPoint?)"),
    (["train", "vqvae", "--data", "missing.npz"], "tsvq train: error: --data missing.npz not found"),
    (["train", "vqvae", "--data", "RUN/config.yaml"], "tsvq train: error: --data RUN/config.yaml: unknown data file type"),
    (["data", "missing.csv"], "tsvq data: error: source missing.csv not found"),
    (["data", "Gunpoint"], "tsvq data: error: dataset 'Gunpoint' not found (did you mean GunPoint?)"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    run = tmp_path / "RUN"  # a stage-1 run directory as far as the command line's first check goes
    run.mkdir()
    (run / "config.yaml").write_text("model: vqvae\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TSVQ_DATA_DIR", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["RUN", "config.yaml"]  # nothing written


def test_help_and_early_errors_import_no_torch():
    # --help, an unknown model, a run directory that is not one and a dataset-name typo are
    # answered without importing torch (the heavy imports come after these checks).
    import subprocess
    import sys
    code = ("import sys\n"
            "from tsvq.cli.main import main\n"
            "for argv in (['evaluate', 'no/run'], ['sample', 'no/run'], ['prior', 'no/run'],\n"
            "             ['train', 'vqvae', '--dataset', 'Gunpoint'], ['train', 'vqvae', '--data', 'no.npz'],\n"
            "             ['data', 'no.npz']):\n"
            "    assert main(argv) == 2, argv\n"
            "for argv in (['--help'], ['train', '--help'], ['train', 'gan', '--dataset', 'GunPoint']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_cli_choices_are_the_registry_and_the_presets():
    from tsvq.cli.main import PRESET_NAMES, TRAIN_MODELS
    from tsvq.config import PRESETS, PRIOR_PRESETS
    from tsvq.models import TRAINABLE

    assert TRAIN_MODELS == tuple(TRAINABLE)
    assert PRESET_NAMES == tuple(PRESETS) == tuple(PRIOR_PRESETS)


def test_default_run_directory_depends_on_the_overrides():
    # Runs with other --set items get other default folders (no "holds a run with another config"
    # after changing one setting); the same items give the same folder, so --resume finds it.
    from tsvq.cli.main import _default_out
    parse = build_parser().parse_args
    plain = _default_out(parse(["train", "vqvae", "--dataset", "ArrowHead"]))
    assert plain == "runs/vqvae-ArrowHead-quick-seed0"
    a = _default_out(parse(["train", "vqvae", "--dataset", "ArrowHead", "--set", "max_steps=50"]))
    b = _default_out(parse(["train", "vqvae", "--dataset", "ArrowHead", "--set", "max_steps=60"]))
    assert a.startswith(plain + "-") and len(a) == len(plain) + 9 and a != b
    assert a == _default_out(parse(["train", "vqvae", "--dataset", "ArrowHead", "--set", "max_steps=50"]))
    p = _default_out(parse(["pipeline", "vqvae", "--dataset", "ArrowHead", "--prior-set", "max_steps=50"]))
    assert p not in (plain, a)
