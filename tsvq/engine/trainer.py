"""The Lightning Trainer of every tsvq run: data loader, checkpoints, logs, resume.

Checkpoints: ``last.ckpt`` is written about every ``checkpoint_every`` optimiser steps (whole
epochs, default 100) and always at the end of training, so the final model is on disk when the
metrics are computed from it, and a resumed run continues exactly as the uninterrupted one;
``best.ckpt`` holds the weights of the epoch with the lowest training loss among the periodic
saves (no test data is used for selection); when that is the final model, it is a hard link to
``last.ckpt`` rather than a second copy.
Checkpoint files are written atomically with the umask's mode (:func:`tsvq.engine.run_dir.atomic_write`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .run_dir import RunDir, atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into memory, then :func:`atomic_write` (temporary file, fsync, rename)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write(path, buf.getvalue())


class _LastCheckpoint(Callback):
    """Writes ``last.ckpt`` after the last batch of every ``every``-th epoch and when training ends
    normally (max_epochs or max_steps reached).

    The periodic save happens in ``on_train_batch_end`` of an epoch's last batch, not in
    ``on_train_epoch_end``: Lightning resumes a checkpoint written at epoch end as an unfinished
    epoch and runs the wrong number of batches after it, while from this point it continues with
    the next epoch exactly as the uninterrupted run does.
    """

    def __init__(self, path, every: int):
        self.path, self.every = path, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx + 1 == trainer.num_training_batches and (trainer.current_epoch + 1) % self.every == 0:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_end(self, trainer, pl_module):
        trainer.save_checkpoint(self.path, weights_only=False)


class RunProgress(Callback):
    """One progress bar over the run's optimiser steps (total, rate, ETA, the last epoch's loss), on
    stderr, instead of Lightning's bar per epoch. A resumed run starts at its saved step.

    Args:
        total: the run's optimiser steps (:func:`tsvq.engine.optim.total_steps`).
    """

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def on_train_start(self, trainer, pl_module):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=trainer.global_step, unit="step", desc="training",
                        dynamic_ncols=True, leave=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.bar is not None:
            self.bar.update(trainer.global_step - self.bar.n)

    def on_train_epoch_end(self, trainer, pl_module):
        loss = trainer.callback_metrics.get("loss")
        if self.bar is not None and loss is not None:
            self.bar.set_postfix(epoch=trainer.current_epoch + 1, loss=f"{float(loss):.4f}", refresh=False)

    def on_train_end(self, trainer, pl_module):
        self.close()

    def on_exception(self, trainer, pl_module, exception):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _RunInfo(Callback):
    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["tsvq_run_info"] = run_info(trainer)


def run_info(trainer: pl.Trainer, saved: dict | None = None) -> dict:
    """``epochs``, ``steps``, ``epoch_time_s`` and ``final_train_loss`` of a Trainer; the values of
    ``saved`` (a checkpoint's run info) where this training session logged none (a resumed finished run)."""
    m = trainer.callback_metrics
    info = {"epochs": trainer.current_epoch, "steps": trainer.global_step,
            "epoch_time_s": float(m["epoch_time_mean_s"]) if "epoch_time_mean_s" in m else float("nan"),
            "final_train_loss": float(m["loss"]) if "loss" in m else float("nan")}
    for k, v in (saved or {}).items():
        if k in info and isinstance(info[k], float) and math.isnan(info[k]):
            info[k] = v
    return info


def make_loader(dataset: torch.utils.data.Dataset, batch_size: int, seed: int):
    """``(loader, generator)``: shuffled batches (the last partial one dropped when the data holds
    more than one batch) drawn from ``generator`` (seeded with ``seed``; its state goes into the checkpoint)."""
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         drop_last=len(dataset) > batch_size, generator=g)
    return loader, g


def make_trainer(cfg, run_dir: RunDir, steps_per_epoch: int, progress: bool = True) -> pl.Trainer:
    """A Trainer for a run config (``epochs``, ``max_steps``, ``checkpoint_every``, ``accelerator``,
    ``devices``, ``precision``) logging CSV to ``run_dir/logs/sessionN`` and checkpointing to ``run_dir/checkpoints``
    (see the module docstring). Creates no file until training starts.

    Raises:
        lightning's MisconfigurationException / ValueError: accelerator, devices or precision invalid.
    """
    total_epochs = min(cfg.epochs, math.ceil(cfg.max_steps / steps_per_epoch)) if cfg.max_steps > 0 else cfg.epochs
    every = max(1, min(math.ceil(cfg.checkpoint_every / steps_per_epoch), total_epochs))
    with _quiet_lightning():  # its accelerator lines and advertisement "Tip" lines
        return _trainer(cfg, run_dir, steps_per_epoch, progress, every)


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's info lines and third-party deprecation notices the user can do nothing about
    (warnings about the user's own settings still show)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
            # a resumed run writes into its own checkpoint folder: expected, not a problem
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            yield
    finally:
        log.setLevel(level)


def _trainer(cfg, run_dir: RunDir, steps_per_epoch: int, progress: bool, every: int) -> pl.Trainer:
    # best.ckpt is only ever loaded for its weights, never resumed from, so it can be chosen at
    # epoch end, where the epoch's loss is known.
    best = ModelCheckpoint(dirpath=run_dir.checkpoints, filename="best", monitor="loss", mode="min",
                           enable_version_counter=False, every_n_epochs=every, save_on_train_epoch_end=True)
    callbacks = [_RunInfo(), best, _LastCheckpoint(run_dir.last_checkpoint, every)]
    if progress:
        from .optim import total_steps

        callbacks.append(RunProgress(total_steps(cfg, steps_per_epoch)))
    return pl.Trainer(max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator,
                      devices=cfg.devices, precision=cfg.precision,
                      logger=CSVLogger(run_dir.path, name="logs", version=run_dir.next_session()),
                      callbacks=callbacks, plugins=[AtomicCheckpointIO()], enable_progress_bar=False,
                      enable_model_summary=False, log_every_n_steps=1, deterministic=False)


def fit(trainer: pl.Trainer, module: pl.LightningModule, loader, run_dir: RunDir, resume: bool) -> dict:
    """Train (continuing from ``last.ckpt`` when ``resume``); returns :func:`run_info` plus
    ``train_wall_s_this_session``.

    Raises:
        FileNotFoundError: ``resume`` but the run has no ``last.ckpt`` (checked earlier by
            :meth:`RunDir.check_config`). ValueError: an unreadable ``last.ckpt``.
    """
    last = run_dir.last_checkpoint
    saved = run_dir.load_checkpoint("last").get("tsvq_run_info") if resume else None
    t0 = time.perf_counter()
    with _quiet_lightning():
        trainer.fit(module, loader, ckpt_path=str(last) if resume else None)
    run_dir.link_best_to_last()
    return {**run_info(trainer, saved), "train_wall_s_this_session": time.perf_counter() - t0}
