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


def class_name(label) -> str:
    """A dataset's class label as text: ``1`` for the label 1.0 of a UCR file, the label otherwise."""
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    return str(label)


def _shown(ds, n: int) -> torch.Tensor:
    """Up to ``n`` test indices: spread over the classes when labelled (:func:`_stratified`), else
    a seeded random choice."""
    if ds.y_test is not None:
        return _stratified(ds.y_test, n)
    return torch.randperm(len(ds.x_test), generator=torch.Generator().manual_seed(0))[:n]


def _channels(x: torch.Tensor, most: int = 3) -> list[int]:
    """The channels a panel draws: all up to ``most``, else the first ``most``."""
    return list(range(min(x.shape[-2], most)))


def _class_colours(ax, points: np.ndarray, y: np.ndarray, classes) -> None:
    """Scatter ``points`` coloured by class: a legend of the dataset's labels up to 10 classes, a
    colour bar beyond (a legend of 60 entries is no legend)."""
    plt = _plt()
    n = len(classes)
    if n <= 10:
        for c in range(n):
            m = y == c
            if m.any():
                ax.scatter(points[m, 0], points[m, 1], s=10, color=plt.cm.tab10(c), label=class_name(classes[c]))
        ax.legend(title="class", fontsize=7, title_fontsize=7, markerscale=1.5)
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="viridis", s=10, vmin=0, vmax=n - 1)
        ax.figure.colorbar(sc, ax=ax, label=f"class index (0..{n - 1})")


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
        shown = _shown(ds, 4)  # test series of different classes, even on class-sorted splits
        with torch.no_grad():
            xb = x_test[shown].to(device)
            x_hat = model.reconstruct(xb).cpu()
        channels = _channels(xb)
        fig, axes = plt.subplots(len(xb), 1, figsize=(8, 1.8 * len(xb)), sharex=True)
        for i, ax, a, b in zip(shown.tolist(), np.atleast_1d(axes), xb.cpu(), x_hat):
            for c in channels:
                tag = f", channel {c}" if xb.shape[1] > 1 else ""
                ax.plot(a[c].numpy(), color=plt.cm.tab10(c), label=f"test series{tag}")
                ax.plot(b[c].numpy(), color=plt.cm.tab10(c), ls="--", label=f"reconstruction{tag}", alpha=0.8)
            label = f" (class {class_name(ds.classes[int(ds.y_test[i])])})" if ds.y_test is not None else ""
            ax.set_title(f"test series {i}{label}", fontsize=8)
            ax.set_ylabel("value")
        np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=7)
        np.atleast_1d(axes)[-1].set_xlabel("time step")
        more = f"; channels {len(channels)} of {xb.shape[1]}" if xb.shape[1] > len(channels) else ""
        fig.suptitle(f"{ds.name}: test reconstructions ({model.name}{more})")
        fig.tight_layout()
        save(fig, "reconstructions.png")

    if codes_test is not None:
        K = model.n_codes
        counts = np.bincount(codes_test.numpy().ravel() % K, minlength=K)
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar(np.arange(K), counts)
        ax.set_xlabel("code index")
        ax.set_ylabel("uses on the test split")
        ax.set_title(f"{ds.name}: codebook usage ({int((counts > 0).sum())} of {K} codes used)")
        save(fig, "codebook_usage.png")

    f = features_test.numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    if f.shape[0] >= 2 and f.shape[1] >= 2:
        pca = PCA(2).fit(f)
        points = pca.transform(f)
        if ds.y_test is not None:
            _class_colours(ax, points, ds.y_test.numpy(), ds.classes)
        else:
            ax.scatter(points[:, 0], points[:, 1], s=10)
        ev = pca.explained_variance_ratio_ * 100
        ax.set_xlabel(f"PC1 ({ev[0]:.0f} % of the variance)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0f} % of the variance)")
    ax.set_title(f"{ds.name}: PCA of the probe features (test)", fontsize=9)
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
    ax.set_ylabel("training loss (log scale)")
    ax.set_title(f"{ds.name}: training losses")
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
        ax.set_title(f"{ds.name}: probes during training")
        ax.legend(fontsize=8)
        save(fig, "probe_curves.png")


def _stratified(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` indices drawn round-robin over the classes (random within each), so that a
    class-sorted split still shows every class."""
    g = torch.Generator().manual_seed(seed)
    pools = [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    pools = [p[torch.randperm(len(p), generator=g)] for p in pools]
    picked = [p[i] for i in range(max(map(len, pools), default=0)) for p in pools if i < len(p)]
    return torch.stack(picked[:n]) if picked else torch.zeros(0, dtype=torch.long)


def sample_plot(path: Path, fake_uncond: torch.Tensor, ds, fake_cond: torch.Tensor, y_cond: torch.Tensor,
                n_show: int = 8) -> None:
    """Generated series next to real test series: one row for the unconditional samples (if any,
    next to test series drawn from every class), then one per class that has class-conditional
    samples. The two panels of a row share their y-axis; the first channel is shown."""
    plt = _plt()
    rows = []
    if len(fake_uncond):
        rows.append(("all classes" if ds.y_test is not None else "unconditional", ds.x_test[_shown(ds, n_show)], fake_uncond))
    rows += [(f"class {class_name(ds.classes[c])}", ds.x_test[ds.y_test == c], fake_cond[y_cond == c])
             for c in range(ds.n_classes) if bool((y_cond == c).any())]
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 1.9 * max(len(rows), 1.5)), sharex=True, sharey="row",
                             squeeze=False)
    for ax_row, (title, real, fake) in zip(axes, rows):
        for ax, data, what in ((ax_row[0], real, "real test"), (ax_row[1], fake, "generated")):
            for s in data[:n_show]:
                ax.plot(s[0].numpy(), lw=0.8, alpha=0.7)
            ax.set_title(f"{what}: {title} ({min(len(data), n_show)} series)", fontsize=8)
        ax_row[0].set_ylabel("value")
    for ax in axes[-1]:
        ax.set_xlabel("time step")
    channels = ds.x_test.shape[1]
    first = f" (channel 0 of {channels})" if channels > 1 else ""
    fig.suptitle(f"{ds.name}: generated and real series{first}", fontsize=10)
    fig.tight_layout()
    _save(fig, Path(path), dpi=100)
