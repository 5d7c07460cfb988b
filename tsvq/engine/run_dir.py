"""A run directory: atomic files, ``config.yaml``, checkpoints, training sessions and one writer.

Layout (stage 1 at the root, the prior in ``prior/``, each a :class:`RunDir`)::

    config.yaml                 the resolved run config, written before training
    checkpoints/last.ckpt       the model at the end of training (and at each periodic save)
    checkpoints/best.ckpt       the model with the lowest training loss among the saves
    logs/sessionN/metrics.csv   one CSV log per training session (a resume adds one)
    .lock                       held (``fcntl.flock``) by the one process writing the run

Every file is written to a temporary name in the same folder, flushed to disk and renamed over
the target, so a reader never sees a half-written file; files get the mode a plain ``open`` would
give them (``0o666`` less the umask).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import tempfile
from pathlib import Path

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename), mode 0o666 & ~umask.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunLockedError(FileExistsError):
    """Another process holds the run directory's lock."""


class RunDir:
    """One run directory (see the module docstring for its files).

    Args:
        path: the folder; created only by the writing methods.
    """

    _held: dict[Path, list] = {}  # run directories this process has locked: [fd, depth]

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._locked = False

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def write_text(self, name: str, text: str) -> Path:
        atomic_write(self.path / name, text)
        return self.path / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write(self.path / name, data)
        return self.path / name

    def write_json(self, name: str, value) -> Path:
        return self.write_text(name, json.dumps(value, indent=2))

    def read_json(self, name: str, default=None):
        """The JSON file ``name``, or ``default`` when it does not exist.

        Raises:
            ValueError: the file is not valid JSON (named in the message).
        """
        path = self.path / name
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); remove it to recompute it") from e

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoints/<which>.ckpt``, falling back to ``last.ckpt``.

        Raises:
            FileNotFoundError: no checkpoint at all.
        """
        ck = self.checkpoints / f"{which}.ckpt"
        if not ck.exists():
            ck = self.last_checkpoint
        if not ck.exists():
            raise FileNotFoundError(f"no checkpoint in {self.checkpoints}")
        return ck

    def load_checkpoint(self, which: str = "best") -> dict:
        """The checkpoint :meth:`checkpoint` names, loaded on the CPU.

        Raises:
            FileNotFoundError: no checkpoint. ValueError: the file is not a readable checkpoint.
        """
        import torch

        path = self.checkpoint(which)
        try:
            ck = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # truncated or foreign files fail in several ways inside torch.load
            raise ValueError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
        if not isinstance(ck, dict) or "state_dict" not in ck:
            raise ValueError(f"{path} is not a tsvq checkpoint (no state_dict)")
        return ck

    def link_best_to_last(self) -> bool:
        """Make ``best.ckpt`` a hard link to ``last.ckpt`` when both hold the same optimiser step (the
        best model is the final one), instead of a second copy; returns whether it did. Safe with the
        atomic writes: a later save of either file replaces its name, never the shared content.
        """
        import torch

        best, last = self.checkpoints / "best.ckpt", self.last_checkpoint
        if not (best.exists() and last.exists()) or os.path.samefile(best, last):
            return False
        steps = [torch.load(p, map_location="cpu", weights_only=False, mmap=True).get("global_step")
                 for p in (best, last)]
        if steps[0] is None or steps[0] != steps[1]:
            return False
        tmp = best.with_name(f".{best.name}.link")
        tmp.unlink(missing_ok=True)
        os.link(last, tmp)
        os.replace(tmp, best)
        return True

    def load_model_state(self, model, which: str = "best") -> dict:
        """Load the ``model.``-prefixed weights of checkpoint ``which`` into ``model``; returns the checkpoint.

        Raises:
            as :meth:`load_checkpoint`.
        """
        ck = self.load_checkpoint(which)
        model.load_state_dict({k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")})
        return ck

    def next_session(self) -> str:
        """Name of the next training session's log folder (``session1``, ``session2``, ...)."""
        logs = self.path / "logs"
        n = len(list(logs.glob("session*"))) if logs.exists() else 0
        return f"session{n + 1}"

    def session_logs(self) -> list[Path]:
        """The sessions' ``metrics.csv`` files, oldest first."""
        return sorted((self.path / "logs").glob("session*/metrics.csv"), key=lambda p: int(p.parent.name[7:]))

    # ------------------------------------------------------------------ config
    def read_config(self, cls):
        """The config dataclass ``cls`` stored in ``config.yaml``.

        Raises:
            FileNotFoundError: no ``config.yaml`` (not a run directory).
            ValueError: the file is not a readable config of ``cls`` (truncated, edited, another kind).
        """
        from ..config import config_from_dict

        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.config_file} not found: not a tsvq run directory")
        try:
            stored = yaml.safe_load(self.config_file.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{self.config_file} is not valid YAML ({e})") from e
        if not isinstance(stored, dict):
            raise ValueError(f"{self.config_file} does not hold a {cls.__name__} mapping")
        try:
            return config_from_dict(cls, stored)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.config_file}: {e}") from e

    def check_config(self, cfg, resume: bool, hint: str) -> str:
        """Check ``cfg`` (a config dataclass) against ``config.yaml``, if there is one, and return
        its YAML text; writes nothing. The stored config is read back through the dataclass, so a
        run written before a field existed compares equal when the field has its default.

        Raises:
            FileExistsError: the stored config differs (the message ends with ``hint``), or the run
                has checkpoints and ``resume`` is False.
            FileNotFoundError: ``resume`` but there is no ``last.ckpt`` to resume from.
            ValueError: ``config.yaml`` is not a readable config of this kind (named in the message).
        """
        if resume and not self.last_checkpoint.exists():
            raise FileNotFoundError(f"nothing to resume in {self.path}: no checkpoints/last.ckpt; "
                                    "run without --resume to start it")
        cfg_text = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
        if self.config_file.exists():
            previous = dataclasses.asdict(self.read_config(type(cfg)))  # ValueError names a damaged file
            if yaml.safe_load(yaml.safe_dump(previous, sort_keys=False)) != yaml.safe_load(cfg_text):
                raise FileExistsError(f"{self.path} holds a run with another config.yaml; {hint}")
            if self.last_checkpoint.exists() and not resume:
                raise FileExistsError(f"{self.path} already has checkpoints; pass --resume to continue it")
        return cfg_text

    def write_config(self, cfg, resume: bool, hint: str) -> None:
        """:meth:`check_config`, then write ``config.yaml`` atomically. Raises as check_config."""
        self.write_text("config.yaml", self.check_config(cfg, resume, hint))

    # ------------------------------------------------------------------ one writer
    def lock(self) -> "RunDir":
        """Take the run's exclusive lock (``.lock``, ``fcntl.flock``; released by :meth:`unlock`
        or when the process ends, however it ends). The holder's PID is written into the file.
        Re-entrant within a process (a recipe that calls another on the same directory).

        Raises:
            RunLockedError: another process holds it (its PID in the message).
        """
        import fcntl

        if self._locked:
            return self
        key = self.path.resolve()
        if key in RunDir._held:
            RunDir._held[key][1] += 1
            self._locked = True
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunLockedError(f"{self.path} is in use by another tsvq process (PID {holder}); "
                                     "wait for it to finish or use another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        RunDir._held[key] = [fd, 1]
        self._locked = True
        return self

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (no-op when not held)."""
        if not self._locked:
            return
        self._locked = False
        key = self.path.resolve()
        entry = RunDir._held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del RunDir._held[key]
            os.close(entry[0])

    def __enter__(self) -> "RunDir":
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()
