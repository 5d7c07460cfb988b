"""Stage 2 and generation on a stage-1 run directory (``tsvq prior`` / ``tsvq sample`` /
``tsvq evaluate``): the MaskGIT prior, sampling, and FID / IS / CAS.

Files added to the run directory of ``tsvq train``:

    prior/config.yaml                 the resolved prior config
    prior/checkpoints/last.ckpt, best.ckpt (lowest training loss), prior/logs/sessionN/metrics.csv
    fcn/fcn.pt                        tsvq's own FCN evaluator (when no --fcn-weights are given)
    metrics.json, metrics.md          stage-1 metrics plus fid, is_mean, is_std, cas, fcn_test_accuracy
    samples.png                       unconditional samples next to real test series, per class

The tokenizer is frozen and in eval mode; its tokens of the train split are computed once.
Evaluation follows TimeVQVAE (SPEC section 4): FCN features of the real test set passed through
the tokenizer's STFT -> ISTFT and of ``max(n_test, 256)`` unconditional samples for FID, the FCN
softmax of the samples for IS (10 splits), and a fresh FCN trained on >= 1000 class-conditional
samples (train class proportions) and tested on the real test set for CAS. All series reach the
FCN in data units scaled like the published evaluator (:func:`tsvq.models.fcn.fcn_scale`).
"""
from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from .config import apply_sets, check_optimisation
from .data import GlobalScaler
from .eval import cas, fid, inception_score
from .models import TOKENIZERS, MaskGITConfig, create_model
from .models.fcn import FCN, FCNConfig, fcn_predict, fcn_scale, load_supervised_fcn, train_fcn
from .train import (_atomic_write, _checkpoint_path, _next_session, adamw_cosine, check_config, checkpoint_callback,
                    load_run, write_config)

# "quick": GunPoint end to end in minutes on a 2-core CPU (a smaller transformer: the SPEC one costs
# about 40 GFLOP per step of 50 series); "paper": the SPEC / TimeVQVAE stage-2 settings.
PRIOR_PRESETS: dict[str, dict] = {
    "quick": {"epochs": 1000, "max_steps": 500, "batch_size": 256, "fcn_epochs": 200, "cas_epochs": 30,
              "model": {"hidden": 128, "n_layers": 2}},
    "paper": {"epochs": 10000, "max_steps": -1, "batch_size": 256, "fcn_epochs": 1000, "cas_epochs": 1000,
              "model": {}},
}
PRIOR_PRESETS["timevqvae"] = PRIOR_PRESETS["paper"]  # the TimeVQVAE prior is the SPEC one
PRIOR_FIELDS = ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "fcn_epochs", "cas_epochs", "checkpoint", "accelerator",
                "devices", "precision")


@dataclass
class PriorConfig:
    """A prior run on top of a stage-1 run; dumped to ``prior/config.yaml``.

    Attributes:
        preset: "quick" | "paper" | "timevqvae" (= paper). seed: global seed. epochs, max_steps (-1 = no cap),
        batch_size (256), lr (AdamW, 1e-3), weight_decay (1e-2): optimisation with a cosine
        schedule. fcn_epochs: epochs of tsvq's own FCN evaluator (trained on the train split when
        no published weights are given); cas_epochs: epochs of the CAS classifier trained on the
        samples (both 1000 in the published recipe; fewer in "quick").
        checkpoint: which stage-1 checkpoint is the tokenizer ("best" | "last").
        accelerator/devices/precision: passed to Lightning. model_config: :class:`MaskGITConfig` fields.
    """

    preset: str = "quick"
    seed: int = 0
    epochs: int = 1000
    max_steps: int = -1
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    fcn_epochs: int = 1000
    cas_epochs: int = 1000
    checkpoint: str = "best"
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    model_config: dict = field(default_factory=dict)

    def __post_init__(self):
        check_optimisation(self)
        for name in ("fcn_epochs", "cas_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {self.checkpoint!r}")


def resolve_prior_config(preset: str = "quick", sets: list[str] | None = None, seed: int = 0) -> PriorConfig:
    """Preset + ``key=value`` overrides (prior run fields or :class:`MaskGITConfig` fields).

    Raises:
        ValueError: unknown preset or key, malformed ``key=value``, checkpoint not best/last.
    """
    if preset not in PRIOR_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {sorted(PRIOR_PRESETS)}")
    run = {k: v for k, v in PRIOR_PRESETS[preset].items() if k != "model"}
    model_cfg = dict(PRIOR_PRESETS[preset]["model"])
    apply_sets(sets, run, PriorConfig, PRIOR_FIELDS, model_cfg, MaskGITConfig, "maskgit")
    return PriorConfig(preset=preset, seed=seed, model_config=model_cfg, **run)


# ----------------------------------------------------------------------------- tokens and models
def _branches(x):
    return list(x) if isinstance(x, tuple) else [x]


@torch.no_grad()
def tokenize(tokenizer, x: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
    """Codes of ``x: Tensor[N, C, L]`` (tokenizer units) under the frozen tokenizer: one
    ``int64[N, F', T']`` per branch, on the CPU."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    out = None
    for i in range(0, len(x), batch_size):
        codes = _branches(tokenizer.encode(x[i:i + batch_size].to(device))[2])
        out = [[c.cpu()] for c in codes] if out is None else [o + [c.cpu()] for o, c in zip(out, codes)]
    return [torch.cat(o) for o in out]


def build_prior(cfg: PriorConfig, tokenizer, token_shapes: list[tuple[int, int]], n_classes: int):
    """The MaskGIT prior for a tokenizer, its embeddings initialised from the tokenizer's codebook(s)."""
    codebooks = [b.vq.codebook.detach().cpu() for b in tokenizer.branches]
    return create_model("maskgit", codebooks, token_shapes, n_classes, **cfg.model_config)


@torch.no_grad()
def generate(tokenizer, prior, n: int, classes=None, guidance_scale: float | None = None, seed: int = 0,
             batch_size: int = 256) -> torch.Tensor:
    """``n`` series ``Tensor[n, C, L]`` (tokenizer units, CPU): iterative decoding with ``prior``
    (``classes``: None = unconditional, an int, or ``int64[n]``), then the tokenizer's decoder and ISTFT.

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
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        grids = prior.sample(m, None if cls is None else cls[i:i + m], guidance_scale=guidance_scale, generator=g)
        idx = tuple(t.to(next(tokenizer.parameters()).device) for t in grids)
        out.append(tokenizer.decode_indices(idx if len(idx) > 1 else idx[0]).cpu())
    return torch.cat(out)


def _prior_dir(run_dir) -> Path:
    return Path(run_dir) / "prior"


def _lightning_prior(prior, cfg: PriorConfig, steps_per_epoch: int):
    import lightning.pytorch as pl

    class LitPrior(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = prior

        def training_step(self, batch, batch_idx):
            *tokens, y = batch
            g = torch.Generator(device=y.device).manual_seed(cfg.seed * 1_000_003 + self.global_step)
            out = self.model.loss(tokens, y, generator=g)
            self.log_dict({f"train/{k}": v.detach() for k, v in out.items()}, on_step=False, on_epoch=True,
                          batch_size=y.shape[0])
            self.log("loss", out["loss"].detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=y.shape[0])
            return out["loss"]

        def configure_optimizers(self):
            return adamw_cosine(self.model, cfg, steps_per_epoch)

    return LitPrior()


def train_prior(run_dir: str | os.PathLike, cfg: PriorConfig, resume: bool = False, progress: bool = True) -> dict:
    """Train the MaskGIT prior on the tokens of the stage-1 run in ``run_dir`` (written to
    ``run_dir/prior``); returns a summary (epochs, steps, final loss, masked-token accuracy, wall time).

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished stage-1 run.
        FileExistsError: ``run_dir/prior`` holds another config, or checkpoints without ``resume``.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    pdir = _prior_dir(run_dir)
    last = pdir / "checkpoints" / "last.ckpt"
    run_cfg, tokenizer, ds, x_train, _ = load_run(run_dir, cfg.checkpoint)
    if run_cfg.model not in TOKENIZERS:
        raise ValueError(f"{run_dir} holds a {run_cfg.model!r} run; the MaskGIT prior needs a tokenizer {TOKENIZERS}")
    check_config(pdir, cfg, resume, "remove it or use the same settings")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    for p in tokenizer.parameters():
        p.requires_grad_(False)
    tokens = tokenize(tokenizer, x_train)
    prior = build_prior(cfg, tokenizer, [tuple(t.shape[1:]) for t in tokens], ds.n_classes)
    g = torch.Generator().manual_seed(cfg.seed)
    data = torch.utils.data.TensorDataset(*tokens, ds.y_train)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True,
                                         drop_last=len(data) > cfg.batch_size, generator=g)
    lit = _lightning_prior(prior, cfg, len(loader))
    ckpt = checkpoint_callback(pdir / "checkpoints", len(loader), cfg.epochs, cfg.max_steps)
    trainer = pl.Trainer(max_epochs=cfg.epochs, max_steps=cfg.max_steps, accelerator=cfg.accelerator,
                         devices=cfg.devices, precision=cfg.precision,
                         logger=CSVLogger(pdir, name="logs", version=_next_session(pdir)), callbacks=[ckpt],
                         enable_progress_bar=progress, enable_model_summary=False, log_every_n_steps=1)
    write_config(pdir, cfg, resume, "remove it or use the same settings")  # after everything a bad setting fails
    t0 = time.perf_counter()
    trainer.fit(lit, loader, ckpt_path=str(last) if resume and last.exists() else None)
    m = trainer.callback_metrics
    summary = {"prior_epochs": trainer.current_epoch, "prior_steps": trainer.global_step,
               "prior_final_loss": float(m.get("loss", float("nan"))),
               "prior_masked_accuracy": float(m.get("train/accuracy_0", float("nan"))),
               "prior_wall_s_this_session": time.perf_counter() - t0}
    _atomic_write(pdir / "summary.json", json.dumps(summary, indent=2))
    return summary


def load_prior(run_dir: str | os.PathLike, which: str = "best"):
    """``(prior config, tokenizer, prior, run config, dataset, x_train, x_test)`` of a run with a trained prior.

    Raises:
        FileNotFoundError: no prior in ``run_dir`` (run ``tsvq prior`` first).
    """
    pdir = _prior_dir(run_dir)
    if not (pdir / "config.yaml").exists():
        raise FileNotFoundError(f"{pdir / 'config.yaml'} not found: train a prior first (tsvq prior {run_dir})")
    pcfg = PriorConfig(**yaml.safe_load((pdir / "config.yaml").read_text()))
    cfg, tokenizer, ds, x_train, x_test = load_run(run_dir, pcfg.checkpoint)
    shapes = [tuple(t.shape[1:]) for t in tokenize(tokenizer, x_train[:1])]
    prior = build_prior(pcfg, tokenizer, shapes, ds.n_classes)
    state = torch.load(_checkpoint_path(pdir, which), map_location="cpu", weights_only=False)["state_dict"]
    prior.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    return pcfg, tokenizer, prior.eval(), cfg, ds, x_train, x_test


def _scaler(run_dir, cfg) -> GlobalScaler:
    if cfg.scaling != "global":
        raise ValueError(f"FID/IS/CAS need the TimeVQVAE global scaling (the run used scaling={cfg.scaling!r}): "
                         "per-series z-normalised samples cannot be mapped back to data units")
    scaler = GlobalScaler()
    scaler.load_state_dict(json.loads((Path(run_dir) / "scaler.json").read_text()))
    return scaler


# ----------------------------------------------------------------------------- evaluation
def _fcn_evaluator(run_dir: Path, ds, fcn_weights, epochs: int, seed: int):
    if fcn_weights is not None:
        path = Path(fcn_weights)
        path = path / f"{ds.name}.ckpt" if path.is_dir() else path
        model = load_supervised_fcn(path, in_channels=ds.x_train.shape[1])
        if model.cfg.n_classes != ds.n_classes:
            raise ValueError(f"{path}: {model.cfg.n_classes} classes, but {ds.name} has {ds.n_classes}")
        return model, f"published weights {path.name}"
    cache = run_dir / "fcn" / "fcn.pt"
    if cache.exists():
        saved = torch.load(cache, map_location="cpu", weights_only=False)
        if saved["epochs"] == epochs and saved["seed"] == seed:
            model = FCN(FCNConfig(**saved["config"]))
            model.load_state_dict(saved["state_dict"])
            return model.eval(), f"tsvq FCN ({epochs} epochs, cached)"
    model = train_fcn(fcn_scale(ds.x_train, ds.x_train), ds.y_train, ds.n_classes, epochs=epochs, seed=seed)
    buf = io.BytesIO()
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "epochs": epochs, "seed": seed}, buf)
    _atomic_write(cache, buf.getvalue())
    return model, f"tsvq FCN ({epochs} epochs)"


def _fcn_on_test(fcn, ds):
    """The real test split scaled for the FCN, the FCN's accuracy on it (the sanity line) and its features."""
    x = fcn_scale(ds.x_test, ds.x_train)
    feats, probs = fcn_predict(fcn, x)
    return x, float((probs.argmax(1) == ds.y_test).double().mean()), feats


def class_counts(y_train: torch.Tensor, n_classes: int, total: int) -> torch.Tensor:
    """Samples per class for ``total`` samples with the train class proportions (largest remainders)."""
    p = torch.bincount(y_train, minlength=n_classes).double() / len(y_train)
    counts = torch.floor(p * total).long()
    rest = total - int(counts.sum())
    order = torch.argsort(p * total - counts, descending=True)
    counts[order[:rest]] += 1
    return counts


def evaluate_generation(run_dir: str | os.PathLike, fcn_weights: str | os.PathLike | None = None, seed: int = 0,
                        n_cas: int = 1000) -> dict:
    """FID / IS / CAS of the prior in ``run_dir`` (SPEC section 4 "Evaluation"; TimeVQVAE protocol).

    Args:
        fcn_weights: a folder of published per-dataset FCN weights (``<Name>.ckpt``, e.g.
            ``../shared/fcn/supervised_fcn_v1``) or one file; None trains tsvq's own FCN on the
            train split (``fcn_epochs`` of the prior config, cached in ``run_dir/fcn``).
        seed: sampling seed. n_cas: class-conditional samples for CAS (>= 1000).

    Returns:
        dict: ``fid``, ``is_mean``, ``is_std``, ``cas``, ``fcn_test_accuracy`` (the evaluator's own
        accuracy on the real test set, a sanity line), ``fcn_source``, ``n_generated``, ``n_cas``,
        and two references: ``fid_test_reconstruction`` (FID of the tokenizer's reconstructions of
        the test set: the floor the prior cannot beat) and ``is_real_test`` (IS of the real test set).

    Raises:
        FileNotFoundError: no prior. ValueError: run not on global scaling, class-count mismatch.
    """
    run_dir = Path(run_dir)
    pcfg, tokenizer, prior, cfg, ds, _, x_test = load_prior(run_dir)
    scaler = _scaler(run_dir, cfg)
    fcn, source = _fcn_evaluator(run_dir, ds, fcn_weights, pcfg.fcn_epochs, pcfg.seed)
    to_fcn = lambda x: fcn_scale(scaler.inverse_transform(x), ds.x_train)  # noqa: E731 - tokenizer units -> FCN input
    x_test_fcn, fcn_acc, _ = _fcn_on_test(fcn, ds)
    with torch.no_grad():
        real = torch.cat([tokenizer.to_time(tokenizer.to_time_frequency(x_test[i:i + 256]))
                          for i in range(0, len(x_test), 256)])
        recon = torch.cat([tokenizer.reconstruct(x_test[i:i + 256]) for i in range(0, len(x_test), 256)])
    f_real, p_real = fcn_predict(fcn, to_fcn(real))
    f_recon, _ = fcn_predict(fcn, to_fcn(recon))
    n_gen = max(len(x_test), 256)
    fake = generate(tokenizer, prior, n_gen, None, seed=seed)
    f_fake, p_fake = fcn_predict(fcn, to_fcn(fake))
    is_mean, is_std = inception_score(p_fake, n_splits=10)
    counts = class_counts(ds.y_train, ds.n_classes, max(n_cas, 1000))
    y_cas = torch.repeat_interleave(torch.arange(ds.n_classes), counts)
    x_cas = generate(tokenizer, prior, len(y_cas), y_cas, seed=seed + 1)
    cas_acc = cas(to_fcn(x_cas), y_cas, x_test_fcn, ds.y_test, ds.n_classes,
                  epochs=pcfg.cas_epochs, seed=pcfg.seed)
    _sample_plot(run_dir, scaler.inverse_transform(fake), ds, scaler.inverse_transform(x_cas), y_cas)
    return {"fid": fid(f_real, f_fake), "is_mean": is_mean, "is_std": is_std, "cas": cas_acc,
            "fcn_test_accuracy": fcn_acc, "fcn_source": source, "n_generated": n_gen, "n_cas": len(y_cas),
            "fid_test_reconstruction": fid(f_real, f_recon),
            "is_real_test": inception_score(p_real, n_splits=min(10, len(p_real)))[0]}


def _sample_plot(run_dir: Path, fake_uncond, ds, fake_cond, y_cond, path: Path | None = None, n_show: int = 8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One row per kind of sample drawn: unconditional, then each class that has class-conditional
    # samples (none for an unconditional model such as the VAE), each next to real test series.
    rows = [("all classes", ds.x_test, fake_uncond)] if len(fake_uncond) else []
    rows += [(f"class {ds.classes[c]}", ds.x_test[ds.y_test == c], fake_cond[y_cond == c])
             for c in range(ds.n_classes) if bool((y_cond == c).any())]
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 1.9 * max(len(rows), 1.5)), sharex=True, squeeze=False)
    for ax_row, (title, real, fake) in zip(axes, rows):
        for ax, data, what in ((ax_row[0], real, "real test"), (ax_row[1], fake, "generated")):
            for s in data[:n_show]:
                ax.plot(s[0].numpy(), lw=0.8, alpha=0.7)
            ax.set_title(f"{what}: {title}", fontsize=8)
    fig.tight_layout()
    out = path or (run_dir / "samples.png")
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)


def sample_to_file(run_dir: str | os.PathLike, out: str | os.PathLike, n: int = 64, class_index: int | None = None,
                   guidance_scale: float | None = None, seed: int = 0) -> dict:
    """Sample ``n`` series from the prior of ``run_dir`` and write ``out`` (``.npz``: ``x`` float32
    ``[n, C, L]`` in data units (tokenizer units for z-normalised runs, ``units`` says which),
    ``y`` the requested class index or -1) plus a plot ``<out>.png`` of samples next to real test series.

    Raises:
        ValueError: class index out of range, n < 1, ``out`` an existing directory.
        FileNotFoundError: no prior in ``run_dir``.
    """
    if Path(out).is_dir():
        raise ValueError(f"--out must be a file name (e.g. samples.npz), got the directory {out}")
    _, tokenizer, prior, cfg, ds, _, _ = load_prior(run_dir)
    if class_index is not None and not 0 <= class_index < ds.n_classes:
        raise ValueError(f"--class must be in [0, {ds.n_classes - 1}] for {ds.name}, got {class_index}")
    x = generate(tokenizer, prior, n, class_index, guidance_scale=guidance_scale, seed=seed)
    units = "tokenizer (z-normalised)"
    if cfg.scaling == "global":
        x, units = _scaler(run_dir, cfg).inverse_transform(x), "data"
    out = Path(out)
    buf = io.BytesIO()
    y = np.full(n, -1 if class_index is None else class_index)
    np.savez(buf, x=x.numpy().astype(np.float32), y=y, units=units, classes=np.asarray(ds.classes))
    _atomic_write(out, buf.getvalue())
    y_t = torch.as_tensor(y)
    _sample_plot(Path(run_dir), x if class_index is None else x[:0], ds, x, y_t, path=out.with_suffix(".png"))
    return {"path": str(out), "n": n, "units": units}


def evaluate_vae_samples(run_dir: str | os.PathLike, which: str = "best", fcn_weights=None, seed: int = 0,
                         fcn_epochs: int = 200) -> dict:
    """FID and IS of a VAE run's samples (``z ~ N(0, I)`` decoded; ``max(n_test, 256)`` of them)
    against the real test set, with the same FCN evaluator as the MaskGIT pipeline (published
    weights, or tsvq's own FCN trained for ``fcn_epochs``). No CAS: the VAEs are unconditional.
    Also writes ``samples.png``."""
    from .train import load_run

    run_dir = Path(run_dir)
    cfg, model, ds, _, x_test = load_run(run_dir, which)
    scaler = _scaler(run_dir, cfg)
    fcn, source = _fcn_evaluator(run_dir, ds, fcn_weights, fcn_epochs, cfg.seed)
    _, fcn_acc, f_real = _fcn_on_test(fcn, ds)
    n_gen = max(len(x_test), 256)
    fake = model.eval().sample(n_gen, generator=torch.Generator().manual_seed(seed)).cpu()
    fake = scaler.inverse_transform(fake)
    f_fake, p_fake = fcn_predict(fcn, fcn_scale(fake, ds.x_train))
    is_mean, is_std = inception_score(p_fake, n_splits=10)
    _sample_plot(run_dir, fake, ds, fake[:0], torch.zeros(0, dtype=torch.long))
    return {"fid": fid(f_real, f_fake), "is_mean": is_mean, "is_std": is_std,
            "fcn_test_accuracy": fcn_acc, "fcn_source": source,
            "n_generated": n_gen}


def evaluate_all(run_dir: str | os.PathLike, which: str = "best", fcn_weights: str | os.PathLike | None = None,
                 seed: int = 0) -> dict:
    """Metrics of the run (:func:`tsvq.train.evaluate_run`) plus FID / IS / CAS when it has a prior
    (:func:`evaluate_generation`) or FID / IS of its samples for a VAE (:func:`evaluate_vae_samples`);
    all written to ``metrics.json`` / ``metrics.md``."""
    from .train import RunConfig, _markdown, evaluate_run

    metrics = evaluate_run(run_dir, which)
    cfg = RunConfig(**yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))
    extra = {}
    if (_prior_dir(run_dir) / "config.yaml").exists():
        summary = _prior_dir(run_dir) / "summary.json"
        extra.update(json.loads(summary.read_text()) if summary.exists() else {})
        extra.update(evaluate_generation(run_dir, fcn_weights, seed=seed))
    elif cfg.model in ("vae", "mssim_vae") and cfg.scaling == "global":
        extra.update(evaluate_vae_samples(run_dir, which, fcn_weights, seed))
    if extra:
        metrics.update(extra)
        _atomic_write(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2))
        _atomic_write(Path(run_dir) / "metrics.md", _markdown(cfg, metrics))
    return metrics
