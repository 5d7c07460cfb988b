"""Stage-1 training and evaluation runs (``tsvq train`` / ``tsvq evaluate``) on PyTorch Lightning.

A run directory is complete and self-describing:

    config.yaml           the resolved run config (model config included), written before training
    checkpoints/last.ckpt, checkpoints/best.ckpt (lowest training loss; no test data is used for selection)
    logs/sessionN/metrics.csv   Lightning CSV log of each training session (loss curves; a resume adds one)
    metrics.json, metrics.md   the stage-1 evaluation (tsvq.eval) on the official test split
    reconstructions.png, codebook_usage.png, latent_pca.png, loss_curves.png

Every file is written atomically (temporary file + rename); checkpoints are written about every
100 optimiser steps and at the end; ``--resume`` continues from ``checkpoints/last.ckpt`` with the
optimiser, scheduler and epoch counter restored.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from . import eval as tsvq_eval
from .config import apply_sets, check_optimisation
from .data import GlobalScaler, load_ucr
from .models import MODELS, TOKENIZERS, TRAINABLE, create_model
from .optim import adamw

# Training presets: "quick" finishes GunPoint in minutes on a 2-core CPU (500 epochs, at most 500
# optimiser steps, so larger datasets stop earlier); "paper" is SPEC section 4 (the NC-VQVAE
# tokenizer); "timevqvae" is the tokenizer behind the TimeVQVAE paper's FID / IS / CAS table
# (SPEC sections 4 and 5: LF/HF two-branch split, EMA decay 0.8, 2000 epochs), tokenizers only.
PRESETS: dict[str, dict] = {
    "quick": {"epochs": 500, "max_steps": 500, "batch_size": 128, "model": {"projector_widths": [1024, 1024, 1024]}},
    "paper": {"epochs": 1000, "batch_size": 128, "model": {}},
    "timevqvae": {"epochs": 2000, "batch_size": 128, "model": {"two_branch": True, "decay": 0.8}},
}
TRAIN_FIELDS = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "scaling", "accelerator", "devices", "precision",
                "probe_every", "holdout")


@dataclass
class RunConfig:
    """Everything that defines a run; dumped to ``config.yaml``.

    Attributes:
        model: registry name ("vqvae", "ncvqvae"). dataset: UCR name. data_dir: archive root
        (None: $TSVQ_DATA_DIR, then aeon). preset: "quick" | "paper" | "timevqvae". seed: global seed.
        epochs, max_steps (-1: no cap; training stops at whichever limit comes first), batch_size,
        lr (AdamW, default 1e-3), weight_decay (1e-3): optimisation, cosine schedule over all steps. scaling: "global" (TimeVQVAE: one mean/std over the train
        matrix) or "znorm" (per series). accelerator/devices/precision: passed to Lightning.
        model_config: the model's config dataclass as a dict (length/in_channels from the data).
    """

    model: str
    dataset: str
    data_dir: str | None = None
    preset: str = "quick"
    seed: int = 0
    epochs: int = 200
    max_steps: int = -1
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-3
    scaling: str = "global"
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    probe_every: int = 0
    holdout: float = 0.0
    model_config: dict = field(default_factory=dict)

    def __post_init__(self):
        check_optimisation(self)
        if self.scaling not in ("global", "znorm"):
            raise ValueError(f"scaling must be 'global' or 'znorm', got {self.scaling!r}")
        if self.probe_every < 0:
            raise ValueError(f"probe_every must be >= 0 (0: no probes during training), got {self.probe_every}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1) (0: the official TEST split), got {self.holdout}")


def _atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def resolve_config(model: str, dataset: str, preset: str = "quick", sets: list[str] | None = None,
                   seed: int = 0, data_dir: str | None = None) -> RunConfig:
    """Preset + ``key=value`` overrides -> :class:`RunConfig`. Keys are run fields (``epochs``,
    ``batch_size``, ``lr``, ...) or model config fields (``ssl_loss``, ``codebook_size``, ...).

    Raises:
        ValueError: unknown model, preset or key, or a malformed ``key=value``.
    """
    if model not in TRAINABLE:
        raise ValueError(f"unknown model {model!r} for tsvq train; available: {list(TRAINABLE)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {sorted(PRESETS)}")
    if preset == "timevqvae" and model not in TOKENIZERS:
        raise ValueError(f"preset 'timevqvae' (the TimeVQVAE two-branch tokenizer) is for {list(TOKENIZERS)}, "
                         f"not {model!r}; use quick or paper")
    p = PRESETS[preset]
    run = {k: v for k, v in p.items() if k != "model"}
    model_fields = {f.name for f in dataclasses.fields(MODELS[model][1])}
    model_cfg = {k: v for k, v in p["model"].items() if k in model_fields}
    apply_sets(sets, run, RunConfig, TRAIN_FIELDS, model_cfg, MODELS[model][1], model)
    return RunConfig(model=model, dataset=dataset, data_dir=data_dir, preset=preset, seed=seed, model_config=model_cfg,
                     **run)


class _Scaler:
    def __init__(self, kind: str):
        self.kind = kind
        self.global_ = GlobalScaler()

    def fit(self, x):
        if self.kind == "global":
            self.global_.fit(x)
        return self

    def transform(self, x):
        if self.kind == "global":
            return self.global_.transform(x)
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-8)

    def state_dict(self):
        return {"kind": self.kind, **(self.global_.state_dict() if self.kind == "global" else {})}


def holdout_split(ds, fraction: float, seed: int = 0):
    """A stratified hold-out split of the TRAIN split (``sklearn.model_selection.train_test_split``,
    fixed ``random_state=seed``), returned as a dataset whose "test" fields are the held-out series.
    For training-only experiments (e.g. the train-only copies of larger UCR datasets): the result
    is a validation split, never the UCR test set."""
    from sklearn.model_selection import train_test_split

    from .data.ucr import UCRDataset

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {fraction}")
    idx = np.arange(len(ds.y_train))
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=ds.y_train.numpy())
    tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    return UCRDataset(ds.name, ds.x_train[tr], ds.y_train[tr], ds.x_train[va], ds.y_train[va], ds.classes)


def load_data(cfg: RunConfig):
    """Load and scale the dataset of a run: (dataset, x_train, x_test, scaler state). With
    ``cfg.holdout > 0`` the "test" split is a stratified hold-out of TRAIN (:func:`holdout_split`).

    Raises:
        FileNotFoundError: the dataset has no official TEST split and ``holdout`` is 0.
    """
    if cfg.holdout > 0:
        ds = holdout_split(load_ucr(cfg.dataset, cfg.data_dir, require_test=False), cfg.holdout)
    else:
        ds = load_ucr(cfg.dataset, cfg.data_dir)
    scaler = _Scaler(cfg.scaling).fit(ds.x_train)
    return ds, scaler.transform(ds.x_train), scaler.transform(ds.x_test), scaler.state_dict()


def build_model(cfg: RunConfig, in_channels: int, length: int, data_range: float | None = None):
    overrides = dict(cfg.model_config)
    overrides.update(in_channels=in_channels, length=length)
    for key in ("projector_widths", "widths"):
        if overrides.get(key) is not None:
            overrides[key] = tuple(overrides[key])
    if cfg.model == "mssim_vae" and overrides.get("data_range") is None and data_range is not None:
        overrides["data_range"] = data_range  # MS-SSIM's C1/C2 from the (scaled) train split
    return create_model(cfg.model, **overrides)


def _lightning_module(model, cfg: RunConfig, steps_per_epoch: int, probe_data=None):
    import lightning.pytorch as pl

    class LitTokenizer(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            self._epoch_start = None

        def training_step(self, batch, batch_idx):
            (x,) = batch
            if hasattr(self.model, "training_progress"):  # BYOL target EMA, VAE KL annealing
                self.model.training_progress(self.global_step, total_steps(cfg, steps_per_epoch))
            g = torch.Generator(device=x.device).manual_seed(cfg.seed * 1_000_003 + self.global_step)
            out = self.model(x, generator=g)
            logs = {f"train/{k}": v.detach() for k, v in out.items()
                    if isinstance(v, torch.Tensor) and v.dim() == 0}
            self.log_dict(logs, on_step=False, on_epoch=True, prog_bar=False, batch_size=x.shape[0])
            self.log("loss", out["loss"].detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
            return out["loss"]

        def on_train_epoch_start(self):
            self._epoch_start = time.perf_counter()

        def on_train_epoch_end(self):
            if self._epoch_start is not None:  # None when a resumed run re-enters the end of its saved epoch
                self.log("epoch_time_s", time.perf_counter() - self._epoch_start, on_epoch=True)
            if cfg.probe_every and probe_data is not None and (self.current_epoch + 1) % cfg.probe_every == 0:
                ds, x_train, x_test = probe_data
                f_tr = encode_split(self.model, x_train)["features"]
                te = encode_split(self.model, x_test)
                self.model.train()
                f_te = te["features"]
                probes = {"probe/svm_accuracy": tsvq_eval.linear_probe(f_tr, ds.y_train, f_te, ds.y_test),
                          **{f"probe/knn{k}_accuracy": v
                             for k, v in tsvq_eval.knn_probe(f_tr, ds.y_train, f_te, ds.y_test).items()}}
                if "mse_time" in te:
                    probes["probe/test_mse_time"] = float(te["mse_time"].mean())
                self.log_dict(probes, on_epoch=True)

        def configure_optimizers(self):
            return adamw_cosine(self.model, cfg, steps_per_epoch)

    return LitTokenizer()


def total_steps(cfg, steps_per_epoch: int) -> int:
    """Optimiser steps of a run: ``min(epochs * steps_per_epoch, max_steps)`` (max_steps <= 0: no cap), >= 1."""
    total = cfg.epochs * steps_per_epoch
    return max(1, min(total, cfg.max_steps) if cfg.max_steps > 0 else total)


def adamw_cosine(model, cfg, steps_per_epoch: int) -> dict:
    """Lightning optimiser config: AdamW (:func:`tsvq.optim.adamw`; ``cfg.lr``, ``cfg.weight_decay``)
    with a per-step cosine schedule over all ``min(epochs * steps_per_epoch, max_steps)`` steps of
    the run."""
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps(cfg, steps_per_epoch))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def encode_split(model, x: torch.Tensor, batch_size: int = 256, data_range: float | None = None) -> dict:
    """Evaluation pass over ``x: Tensor[N, C, L]`` (eval mode, batches, results on the CPU).

    Returns a dict: ``features`` (probe features ``[N, F]``: pooled z_q of a tokenizer, the
    representation of the other models); for models that reconstruct, ``mse_time`` ``[N]`` and,
    with ``data_range``, ``ms_ssim`` ``[N]``; for tokenizers also ``mse_timefreq`` ``[N]`` and
    ``codes`` ``int64[N, tokens]``.
    """
    from .eval.ssim import ms_ssim_1d

    model.eval()
    device = next(model.parameters()).device
    tokenizer = hasattr(model, "decode_indices")
    parts: dict[str, list] = {}

    def add(key, value):
        parts.setdefault(key, []).append(value.cpu())

    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        if tokenizer:
            _, z_q, codes = model.encode(xb)
            add("features", torch.cat([t.mean(dim=(2, 3)) for t in (z_q if isinstance(z_q, tuple) else (z_q,))], 1))
            x_hat = model.decode(z_q)
            u, u_hat = model.to_time_frequency(xb), model.to_time_frequency(x_hat)
            add("mse_timefreq", ((u_hat - u) ** 2).mean(dim=(1, 2, 3)))
            add("codes", torch.cat([c.flatten(1) for c in (codes if isinstance(codes, tuple) else (codes,))], 1))
        else:
            add("features", model.representation(xb))
            x_hat = model.reconstruct(xb) if hasattr(model, "reconstruct") else None
        if x_hat is not None:
            add("mse_time", ((x_hat - xb) ** 2).mean(dim=(1, 2)))
            if data_range is not None and xb.shape[-1] >= 11:  # MS-SSIM's 11-sample window
                add("ms_ssim", ms_ssim_1d(x_hat, xb, data_range))
    return {k: torch.cat(v) for k, v in parts.items()}


def evaluate_model(model, ds, x_train, x_test, batch_size: int = 256) -> dict:
    """Metrics of a trained model on the un-augmented official splits (see :mod:`tsvq.eval`):
    probes (SVM, KNN), silhouette and PCA dimension of its probe features for every model;
    reconstruction MSE (and MS-SSIM) for the models that reconstruct; codebook statistics for tokenizers."""
    data_range = float(x_train.max() - x_train.min())
    tr = encode_split(model, x_train, batch_size)
    te = encode_split(model, x_test, batch_size, data_range)
    f_tr, f_te = tr["features"], te["features"]
    n_classes = int(ds.n_classes)
    metrics = {
        "svm_accuracy": tsvq_eval.linear_probe(f_tr, ds.y_train, f_te, ds.y_test),
        **{f"knn{k}_accuracy": v for k, v in tsvq_eval.knn_probe(f_tr, ds.y_train, f_te, ds.y_test).items()},
        "silhouette": tsvq_eval.silhouette(f_te, n_clusters=n_classes) if 2 <= n_classes < len(f_te) else float("nan"),
        "intrinsic_dim_95": tsvq_eval.intrinsic_dimension(f_te),
    }
    if "mse_time" in te:
        metrics["test_mse_time"] = float(te["mse_time"].mean())
    if "mse_timefreq" in te:
        metrics["test_mse_timefreq"] = float(te["mse_timefreq"].mean())
    if "ms_ssim" in te:
        metrics["test_ms_ssim"] = float(te["ms_ssim"].mean())
    if "codes" in te:
        metrics.update({f"test_{k}": v for k, v in tsvq_eval.codebook_stats(te["codes"], model.cfg.codebook_size).items()})
    return {"metrics": metrics, "features_test": f_te, "indices_test": te.get("codes")}


def _markdown(cfg: RunConfig, metrics: dict) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    return f"# {cfg.model} on {cfg.dataset} (preset {cfg.preset}, seed {cfg.seed})\n\n| metric | value |\n|---|---:|\n{rows}\n"


def _plots(run_dir: Path, model, ds, x_test, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    def save(fig, name):
        tmp = run_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        os.replace(tmp, run_dir / name)

    device = next(model.parameters()).device
    if hasattr(model, "reconstruct"):
        with torch.no_grad():
            xb = x_test[:4].to(device)
            x_hat = model.reconstruct(xb).cpu()
        fig, axes = plt.subplots(len(xb), 1, figsize=(8, 1.8 * len(xb)), sharex=True)
        for ax, a, b in zip(np.atleast_1d(axes), xb.cpu(), x_hat):
            ax.plot(a[0].numpy(), label="test series")
            ax.plot(b[0].numpy(), label="reconstruction", alpha=0.8)
        np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
        fig.suptitle(f"Test reconstructions ({model.name})")
        save(fig, "reconstructions.png")

    if result.get("indices_test") is not None:
        K = model.cfg.codebook_size
        counts = np.bincount(result["indices_test"].numpy().ravel() % K, minlength=K)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(np.arange(K), counts)
        ax.set_xlabel("code")
        ax.set_ylabel("uses on the test split")
        save(fig, "codebook_usage.png")

    f = result["features_test"].numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    if f.shape[0] >= 2 and f.shape[1] >= 2:
        p = PCA(2).fit_transform(f)
        sc = ax.scatter(p[:, 0], p[:, 1], c=ds.y_test.numpy(), cmap="tab10", s=10)
        ax.legend(*sc.legend_elements(), title="class", fontsize=7)
    ax.set_title("PCA of the probe features (test)")
    save(fig, "latent_pca.png")

    logs = sorted((run_dir / "logs").glob("session*/metrics.csv"), key=lambda p: int(p.parent.name[7:]))
    if logs:
        import csv

        rows = []
        for log in logs:
            with open(log) as fh:
                rows += list(csv.DictReader(fh))
        keys = [k for k in (rows[0].keys() if rows else []) if k.startswith("train/") and k.endswith(("loss", "ssl", "vq",
                                                                                                    "recon_time",
                                                                                                    "recon_timefreq",
                                                                                                    "recon", "kl"))]
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in keys:
            pts = [(int(r["epoch"]), float(r[k])) for r in rows if r.get(k)]
            if pts:
                ax.plot(*zip(*pts), label=k[6:])
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        save(fig, "loss_curves.png")
        probe_keys = [k for k in rows[0].keys() if k.startswith("probe/") and k.endswith("accuracy")] if rows else []
        if probe_keys:
            fig, ax = plt.subplots(figsize=(7, 4))
            for k in probe_keys:
                pts = [(int(r["epoch"]), float(r[k])) for r in rows if r.get(k)]
                ax.plot(*zip(*pts), marker=".", label=k[6:])
            ax.set_xlabel("epoch")
            ax.set_ylabel("test accuracy")
            ax.legend(fontsize=8)
            save(fig, "probe_curves.png")


def checkpoint_callback(dirpath: Path, steps_per_epoch: int, epochs: int, max_steps: int = -1,
                        every_steps: int = 100):
    """Lightning callback writing ``best.ckpt`` (lowest training loss) and ``last.ckpt`` about every
    ``every_steps`` optimiser steps (whole epochs) and at the end of training: on small datasets an
    epoch is one step, and saving every epoch would cost more than the training itself."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    total_epochs = min(epochs, math.ceil(max_steps / steps_per_epoch)) if max_steps > 0 else epochs
    every = max(1, min(math.ceil(every_steps / steps_per_epoch), total_epochs))
    return ModelCheckpoint(dirpath=dirpath, filename="best", monitor="loss", mode="min", save_last=True,
                           enable_version_counter=False, every_n_epochs=every)


def _next_session(run_dir: Path) -> str:
    n = len(list((run_dir / "logs").glob("session*"))) if (run_dir / "logs").exists() else 0
    return f"session{n + 1}"


def _checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    ck = run_dir / "checkpoints" / f"{which}.ckpt"
    if not ck.exists():
        ck = run_dir / "checkpoints" / "last.ckpt"
    if not ck.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir / 'checkpoints'}")
    return ck


def finish_run(run_dir: Path, cfg: RunConfig, model, ds, x_train, x_test, extra: dict) -> dict:
    result = evaluate_model(model, ds, x_train, x_test)
    split = f"holdout {cfg.holdout:g} of TRAIN" if cfg.holdout > 0 else "official TEST"
    metrics = {**result["metrics"], **extra, "eval_split": split}
    _atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    _atomic_write(run_dir / "metrics.md", _markdown(cfg, metrics))
    _plots(run_dir, model, ds, x_test, result)
    return metrics


def check_config(run_dir: Path, cfg, resume: bool, hint: str) -> str:
    """Check ``cfg`` (a config dataclass) against ``run_dir/config.yaml``, if there is one, and
    return its YAML text; writes nothing. The stored config is read back through the dataclass, so
    a run written before a field existed compares equal when the field has its default.

    Raises:
        FileExistsError: the stored config differs (the message ends with ``hint``), or the run has
            checkpoints and ``resume`` is False.
    """
    path = run_dir / "config.yaml"
    cfg_text = yaml.safe_dump(asdict(cfg), sort_keys=False)
    if path.exists():
        stored = yaml.safe_load(path.read_text()) or {}
        try:  # compared as YAML values on both sides (tuples and lists alike)
            previous = yaml.safe_load(yaml.safe_dump(asdict(type(cfg)(**stored))))
        except TypeError:  # a field this version does not know
            previous = stored
        if previous != yaml.safe_load(cfg_text):
            raise FileExistsError(f"{run_dir} holds a run with another config.yaml; {hint}")
        if (run_dir / "checkpoints" / "last.ckpt").exists() and not resume:
            raise FileExistsError(f"{run_dir} already has checkpoints; pass --resume to continue it")
    return cfg_text


def write_config(run_dir: Path, cfg, resume: bool, hint: str) -> None:
    """:func:`check_config`, then write ``run_dir/config.yaml`` (atomically). Raises as check_config."""
    _atomic_write(run_dir / "config.yaml", check_config(run_dir, cfg, resume, hint))


def train(cfg: RunConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` into ``out_dir`` and evaluate it; returns the metrics.

    Raises:
        FileExistsError: ``out_dir`` holds a different run's config (use another --out or --resume).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    run_dir = Path(out_dir)
    check_config(run_dir, cfg, resume, "use a new --out directory")
    last = run_dir / "checkpoints" / "last.ckpt"

    # Everything a bad setting can fail (data, model, Lightning's own checks) comes before the
    # first file is written, so a corrected command can reuse the directory.
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    ds, x_train, x_test, scaler_state = load_data(cfg)
    model = build_model(cfg, x_train.shape[1], x_train.shape[2], float(x_train.max() - x_train.min()))
    g = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train), batch_size=cfg.batch_size,
                                         shuffle=True, drop_last=len(x_train) > cfg.batch_size, generator=g)
    lit = _lightning_module(model, cfg, len(loader), (ds, x_train, x_test))
    ckpt = checkpoint_callback(run_dir / "checkpoints", len(loader), cfg.epochs, cfg.max_steps)
    trainer = pl.Trainer(max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator, devices=cfg.devices,
                         precision=cfg.precision, logger=CSVLogger(run_dir, name="logs", version=_next_session(run_dir)),
                         callbacks=[ckpt], enable_progress_bar=progress, enable_model_summary=False,
                         log_every_n_steps=1, deterministic=False)
    write_config(run_dir, cfg, resume, "use a new --out directory")
    _atomic_write(run_dir / "scaler.json", json.dumps(scaler_state))
    t0 = time.perf_counter()
    trainer.fit(lit, loader, ckpt_path=str(last) if resume and last.exists() else None)
    wall = time.perf_counter() - t0
    epoch_times = trainer.callback_metrics.get("epoch_time_s")
    model.cpu()
    extra = {"epochs": trainer.current_epoch, "steps": trainer.global_step, "train_wall_s_this_session": wall,
             "epoch_time_s": float(epoch_times) if epoch_times is not None else float("nan"),
             "final_train_loss": float(trainer.callback_metrics.get("loss", float("nan")))}
    return finish_run(run_dir, cfg, model, ds, x_train, x_test, extra)


def load_run(run_dir: str | os.PathLike, which: str = "best"):
    """Rebuild (cfg, model, dataset, x_train, x_test) of a run directory from its checkpoint."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{cfg_file} not found: not a tsvq run directory")
    cfg = RunConfig(**yaml.safe_load(cfg_file.read_text()))
    ds, x_train, x_test, _ = load_data(cfg)
    model = build_model(cfg, x_train.shape[1], x_train.shape[2], float(x_train.max() - x_train.min()))
    state = torch.load(_checkpoint_path(run_dir, which), map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    return cfg, model, ds, x_train, x_test


def evaluate_run(run_dir: str | os.PathLike, which: str = "best") -> dict:
    """Recompute metrics.json / metrics.md / plots of a run from its checkpoint."""
    cfg, model, ds, x_train, x_test = load_run(run_dir, which)
    previous = {}
    if (Path(run_dir) / "metrics.json").exists():
        previous = json.loads((Path(run_dir) / "metrics.json").read_text())
    keep = {k: v for k, v in previous.items() if k in ("epochs", "steps", "train_wall_s_this_session", "epoch_time_s",
                                                       "final_train_loss")}
    return finish_run(Path(run_dir), cfg, model, ds, x_train, x_test, {**keep, "checkpoint": which})


def format_table(metrics: dict) -> str:
    width = max(len(k) for k in metrics)
    lines = []
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f"{v:.4f}" if math.isfinite(v) else str(v)
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)
