"""The MaskGIT prior on a stage-1 run (``tsvq prior`` / ``tsvq sample``): training and sampling.

Files added to the run directory of ``tsvq train`` (``prior/`` is a :class:`tsvq.engine.run_dir.RunDir`):

    prior/config.yaml                 the resolved :class:`tsvq.config.PriorConfig`
    prior/checkpoints/last.ckpt, best.ckpt (lowest training loss), prior/logs/sessionN/metrics.csv
    prior/summary.json                the prior's training summary

The tokenizer is frozen and in eval mode; its tokens of the train split are computed once.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from ..config import PriorConfig
from ..data import GlobalScaler
from ..engine.features import tokenize
from ..engine.run_dir import RunDir
from ..models import TOKENIZERS, create_model
from ..report.plots import sample_plot
from .stage1 import load_run

PRIOR_HINT = "remove it or use the same settings"


def prior_dir(run_dir: str | os.PathLike) -> RunDir:
    """The prior's run directory inside stage-1 run ``run_dir``."""
    return RunDir(Path(run_dir) / "prior")


def prior_labels(ds) -> tuple[int, torch.Tensor]:
    """``(n_classes, y_train)`` the prior trains with: the dataset's classes, or for unlabelled data
    one class that is never used (every series is trained as the unconditional entry, index 1)."""
    if ds.labelled:
        return ds.n_classes, ds.y_train
    return 1, torch.ones(len(ds.x_train), dtype=torch.long)


def build_prior(cfg: PriorConfig, tokenizer, token_shapes: list[tuple[int, int]], n_classes: int):
    """The MaskGIT prior for a tokenizer, its embeddings initialised from the tokenizer's codebook(s)."""
    import dataclasses

    codebooks = [b.vq.codebook.detach().cpu() for b in tokenizer.branches]
    return create_model("maskgit", codebooks, token_shapes, n_classes, **dataclasses.asdict(cfg.model_config))


def check_prior_config(cfg: PriorConfig) -> None:
    """What the prior's constructor checks (widths, heads, steps, ...), on a tiny stand-in codebook,
    so that a pipeline can refuse a bad prior setting before stage 1 trains.

    Raises:
        ValueError: the setting the prior rejects.
    """
    import dataclasses

    create_model("maskgit", [torch.zeros(2, 4)], [(1, 2)], 2, **dataclasses.asdict(cfg.model_config))


@torch.no_grad()
def generate(tokenizer, prior, n: int, classes=None, guidance_scale: float | None = None, seed: int = 0,
             batch_size: int = 256, progress: str | None = None) -> torch.Tensor:
    """``n`` series ``Tensor[n, C, L]`` (tokenizer units, CPU): iterative decoding with ``prior``
    (``classes``: None = unconditional, an int, or ``int64[n]``), then the tokenizer's decoder and ISTFT.
    ``progress``: the label of a progress bar over the samples on stderr (None: no bar).

    Raises:
        ValueError: n < 1 or batch_size < 1 (and what :meth:`MaskGIT.sample` raises)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (number of samples) must be an int >= 1, got {n!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer.eval()
    device = next(prior.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    cls = None if classes is None else torch.as_tensor(classes, dtype=torch.long).expand(n)
    out = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=progress, unit="series", dynamic_ncols=True)
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        grids = prior.sample(m, None if cls is None else cls[i:i + m], guidance_scale=guidance_scale, generator=g)
        out.append(tokenizer.decode_indices([t.to(next(tokenizer.parameters()).device) for t in grids]).cpu())
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    return torch.cat(out)


def train_prior(run_dir: str | os.PathLike, cfg: PriorConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train the MaskGIT prior on the tokens of the stage-1 run in ``run_dir`` (written to
    ``run_dir/prior``); returns a summary (epochs, steps, final loss, masked-token accuracy, wall time).

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished stage-1 run; ``resume`` with nothing to resume.
        FileExistsError: ``run_dir/prior`` holds another config, or checkpoints without ``resume``.
        ValueError: ``run_dir`` is not a tokenizer run, or a setting the prior rejects.
    """
    import lightning.pytorch as pl

    from ..engine.module import TrainModule, prior_step
    from ..engine.trainer import fit, make_loader, make_trainer

    pdir = prior_dir(run_dir)
    run_cfg, tokenizer, ds, x_train, _ = load_run(run_dir, cfg.checkpoint)
    if run_cfg.model not in TOKENIZERS:
        raise ValueError(f"{run_dir} holds a {run_cfg.model!r} run; the MaskGIT prior needs a tokenizer {TOKENIZERS}")
    pdir.check_config(cfg, resume, PRIOR_HINT)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    for p in tokenizer.parameters():
        p.requires_grad_(False)
    tokens = tokenize(tokenizer, x_train)
    n_classes, y_train = prior_labels(ds)
    prior = build_prior(cfg, tokenizer, [tuple(t.shape[1:]) for t in tokens], n_classes)
    loader, shuffle = make_loader(torch.utils.data.TensorDataset(*tokens, y_train), cfg.batch_size, cfg.seed)
    module = TrainModule(prior, prior_step, cfg, len(loader), shuffle)
    trainer = make_trainer(cfg, pdir, len(loader), progress)
    with pdir:
        pdir.write_config(cfg, resume, PRIOR_HINT)
        info = fit(trainer, module, loader, pdir, resume)
        accuracy = trainer.callback_metrics.get("train/accuracy_0")
        saved = pdir.read_json("summary.json", {}) if resume else {}
        summary = {"prior_epochs": info["epochs"], "prior_steps": info["steps"],
                   "prior_final_loss": info["final_train_loss"],
                   "prior_masked_accuracy": float(accuracy) if accuracy is not None
                   else saved.get("prior_masked_accuracy", float("nan")),
                   "prior_wall_s_this_session": info["train_wall_s_this_session"]}
        pdir.write_json("summary.json", summary)
        return summary


def load_prior(run_dir: str | os.PathLike, which: str = "best"):
    """``(prior config, tokenizer, prior, run config, dataset, x_train, x_test)`` of a run with a trained prior.

    Raises:
        FileNotFoundError: no prior in ``run_dir`` (run ``tsvq prior`` first).
    """
    pdir = prior_dir(run_dir)
    if not pdir.config_file.exists():
        raise FileNotFoundError(f"{pdir.config_file} not found: train a prior first (tsvq prior {run_dir})")
    pcfg = pdir.read_config(PriorConfig)
    cfg, tokenizer, ds, x_train, x_test = load_run(run_dir, pcfg.checkpoint)
    shapes = [tuple(t.shape[1:]) for t in tokenize(tokenizer, x_train[:1])]
    prior = build_prior(pcfg, tokenizer, shapes, prior_labels(ds)[0])
    pdir.load_model_state(prior, which)
    return pcfg, tokenizer, prior.eval(), cfg, ds, x_train, x_test


def data_scaler(run_dir: str | os.PathLike, cfg) -> GlobalScaler:
    """The global scaler of a stage-1 run (tokenizer units <-> data units).

    Raises:
        ValueError: the run used per-series scaling (no way back to data units).
    """
    if cfg.scaling != "global":
        raise ValueError(f"FID/IS/CAS need the TimeVQVAE global scaling (the run used scaling={cfg.scaling!r}): "
                         "per-series z-normalised samples cannot be mapped back to data units")
    scaler = GlobalScaler()
    scaler.load_state_dict(RunDir(run_dir).read_json("scaler.json"))
    return scaler


def sample_to_file(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, n: int = 64,
                   class_index: int | None = None, guidance_scale: float | None = None, seed: int = 0) -> dict:
    """Sample ``n`` series from the prior of ``run_dir`` and write ``out`` (``.npz``: ``x`` float32
    ``[n, C, L]`` in data units (tokenizer units for z-normalised runs, ``units`` says which),
    ``y`` the requested class index or -1) plus a plot ``<out>.png`` of samples next to real test series.
    ``out`` defaults to ``run_dir/prior/samples-<classK | all>-n<n>-seed<seed>.npz``.

    Raises:
        ValueError: class index out of range, n < 1, ``out`` an existing directory.
        FileNotFoundError: no prior in ``run_dir``.
    """
    from ..engine.run_dir import atomic_write

    if out is None:
        out = Path(run_dir) / "prior" / f"samples-{'all' if class_index is None else f'class{class_index}'}-n{n}-seed{seed}.npz"
    if Path(out).is_dir():
        raise ValueError(f"--out must be a file name (e.g. samples.npz), got the directory {out}")
    _, tokenizer, prior, cfg, ds, _, _ = load_prior(run_dir)
    if class_index is not None and not ds.labelled:
        raise ValueError(f"--class: {ds.name} has no labels, so the prior is unconditional; sample without --class")
    if class_index is not None and not 0 <= class_index < ds.n_classes:
        raise ValueError(f"--class must be in [0, {ds.n_classes - 1}] for {ds.name}, got {class_index}")
    x = generate(tokenizer, prior, n, class_index, guidance_scale=guidance_scale, seed=seed)
    units = "tokenizer (z-normalised)"
    if cfg.scaling == "global":
        x, units = data_scaler(run_dir, cfg).inverse_transform(x), "data"
    out = Path(out)
    buf = io.BytesIO()
    y = np.full(n, -1 if class_index is None else class_index)
    np.savez(buf, x=x.numpy().astype(np.float32), y=y, units=units,
             classes=np.asarray(ds.classes if ds.labelled else [], dtype=str if not ds.labelled else None))
    atomic_write(out, buf.getvalue())
    sample_plot(out.with_suffix(".png"), x if class_index is None else x[:0], ds, x, torch.as_tensor(y))
    return {"path": str(out), "n": n, "units": units}
