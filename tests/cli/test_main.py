"""The command line itself: every command's --help, argparse errors, and bad input of every
command ending in ``tsvq CMD: error: ...`` with exit status 2 (no traceback) before any work."""
import pytest

from tsvq.cli.main import build_parser, main

COMMANDS = ["info", "train", "evaluate", "prior", "sample", "pipeline"]


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
    (["train", "vqvae"], "the following arguments are required: --dataset"),
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
    (["sample", "does/not/exist"], "tsvq sample: error: does/not/exist/prior/config.yaml not found: train a prior first"),
    (["train", "vqvae", "--dataset", "GunPoint", "--set", "nope=1"], "tsvq train: error: unknown --set key 'nope'"),
    (["prior", "does/not/exist", "--set", "nope=1"], "tsvq prior: error: unknown --set key 'nope'"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
