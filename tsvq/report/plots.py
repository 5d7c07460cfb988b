"""The figures of a run directory: reconstructions, codebook usage, latent PCA, loss and probe
curves (stage 1) and generated samples next to real series (prior, VAEs). Each is written atomically."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, **kwargs) -> None:
    plt = _plt()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, **kwargs)
    plt.close(fig)
    os.replace(tmp, path)


def stage1_plots(run_dir: Path, model, ds, x_test: torch.Tensor, features_test: torch.Tensor,
                 codes_test: torch.Tensor | None, session_logs: list[Path]) -> None:
    """``reconstructions.png`` (models that reconstruct), ``codebook_usage.png`` (tokenizers),
    ``latent_pca.png``, and from the sessions' CSV logs ``loss_curves.png`` / ``probe_curves.png``."""
    from sklearn.decomposition import PCA

    plt = _plt()

    def save(fig, name):
        _save(fig, run_dir / name, dpi=110, bbox_inches="tight")

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

    if codes_test is not None:
        K = model.cfg.codebook_size
        counts = np.bincount(codes_test.numpy().ravel() % K, minlength=K)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(np.arange(K), counts)
        ax.set_xlabel("code")
        ax.set_ylabel("uses on the test split")
        save(fig, "codebook_usage.png")

    f = features_test.numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    if f.shape[0] >= 2 and f.shape[1] >= 2:
        p = PCA(2).fit_transform(f)
        sc = ax.scatter(p[:, 0], p[:, 1], c=ds.y_test.numpy(), cmap="tab10", s=10)
        ax.legend(*sc.legend_elements(), title="class", fontsize=7)
    ax.set_title("PCA of the probe features (test)")
    save(fig, "latent_pca.png")

    rows = []
    for log in session_logs:
        with open(log) as fh:
            rows += list(csv.DictReader(fh))
    if not rows:
        return
    keys = [k for k in rows[0].keys() if k.startswith("train/")
            and k.endswith(("loss", "ssl", "vq", "recon_time", "recon_timefreq", "recon", "kl"))]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        pts = [(int(r["epoch"]), float(r[k])) for r in rows if r.get(k)]
        if pts:
            ax.plot(*zip(*pts), label=k[6:])
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    save(fig, "loss_curves.png")
    probe_keys = [k for k in rows[0].keys() if k.startswith("probe/") and k.endswith("accuracy")]
    if probe_keys:
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in probe_keys:
            pts = [(int(r["epoch"]), float(r[k])) for r in rows if r.get(k)]
            ax.plot(*zip(*pts), marker=".", label=k[6:])
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=8)
        save(fig, "probe_curves.png")


def sample_plot(path: Path, fake_uncond: torch.Tensor, ds, fake_cond: torch.Tensor, y_cond: torch.Tensor,
                n_show: int = 8) -> None:
    """Generated series next to real test series: one row for the unconditional samples (if any),
    then one per class that has class-conditional samples (none for an unconditional model)."""
    plt = _plt()
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
    _save(fig, Path(path), dpi=100)
