"""The run directory: atomic files with the umask's mode, one writer, clear errors on damaged files."""
import os
import stat

import pytest
import torch

from tsvq.config import RunConfig, resolve_config
from tsvq.engine.run_dir import RunDir, RunLockedError, atomic_write

from helpers import LockHolder


def test_atomic_write_keeps_the_umask_mode_and_leaves_no_temporary_file(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # not mkstemp's 0o600
        os.umask(0o077)
        atomic_write(tmp_path / "b.bin", b"x")
        assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    atomic_write(tmp_path / "m.json", "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        atomic_write(tmp_path / "m.json", Boom())  # not str or bytes: the write fails
    assert (tmp_path / "m.json").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_one_writer_per_run_directory(tmp_path):
    with LockHolder(tmp_path / "run") as pid:
        with pytest.raises(RunLockedError, match=rf"in use by another tsvq process \(PID {pid}\)"):
            RunDir(tmp_path / "run").lock()
    with RunDir(tmp_path / "run"):  # free again once the holder has ended
        with RunDir(tmp_path / "run"):  # re-entrant within one process
            pass
    assert not RunDir._held


def test_damaged_files_give_clear_errors(tmp_path):
    run = RunDir(tmp_path)
    cfg = resolve_config("vqvae", "GunPoint", "quick", ["epochs=2"])
    run.write_config(cfg, resume=False, hint="x")
    assert run.read_config(RunConfig) == cfg
    text = run.config_file.read_text()
    run.config_file.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n  - [")
    with pytest.raises(ValueError, match="config.yaml"):
        run.read_config(RunConfig)
    with pytest.raises(ValueError, match="config.yaml is not valid YAML"):  # not "another config"
        run.check_config(cfg, resume=False, hint="x")
    run.config_file.write_text("just text")
    with pytest.raises(ValueError, match="does not hold a RunConfig"):
        run.read_config(RunConfig)
    run.checkpoints.mkdir()
    torch.save({"state_dict": {}}, run.last_checkpoint)
    data = run.last_checkpoint.read_bytes()
    run.last_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="last.ckpt is not a readable checkpoint"):
        run.load_checkpoint("last")
    (tmp_path / "metrics.json").write_text('{"svm_accuracy": 0.')
    with pytest.raises(ValueError, match="metrics.json is not valid JSON"):
        run.read_json("metrics.json")


def test_resume_needs_a_checkpoint_and_a_finished_run_needs_resume(tmp_path):
    run = RunDir(tmp_path)
    cfg = resolve_config("vqvae", "GunPoint", "quick", ["epochs=2"])
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run.check_config(cfg, resume=True, hint="x")
    run.write_config(cfg, resume=False, hint="x")
    run.checkpoints.mkdir()
    run.last_checkpoint.write_bytes(b"")
    with pytest.raises(FileExistsError, match="pass --resume"):
        run.check_config(cfg, resume=False, hint="x")
    with pytest.raises(FileExistsError, match="another config.yaml; x"):
        run.check_config(resolve_config("vqvae", "GunPoint", "quick", ["epochs=3"]), resume=True, hint="x")


def test_best_checkpoint_is_a_link_to_last_only_when_it_is_the_final_model(tmp_path):
    run = RunDir(tmp_path / "run")
    best, last = run.checkpoints / "best.ckpt", run.last_checkpoint
    run.checkpoints.mkdir(parents=True)
    torch.save({"global_step": 40, "state_dict": {"model.w": torch.ones(3)}}, best)
    torch.save({"global_step": 50, "state_dict": {"model.w": torch.zeros(3)}}, last)
    assert not run.link_best_to_last()  # an earlier model is the best: two files
    assert torch.load(best)["global_step"] == 40 and not os.path.samefile(best, last)
    torch.save({"global_step": 50, "state_dict": {"model.w": torch.zeros(3)}}, best)
    assert run.link_best_to_last() and os.path.samefile(best, last)
    assert not run.link_best_to_last()  # already one file
    # a later atomic save of last.ckpt (a resumed run) leaves the best model's content alone
    atomic_write(last, b"new")
    assert not os.path.samefile(best, last) and torch.load(best)["global_step"] == 50
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
