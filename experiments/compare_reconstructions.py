"""Test reconstructions of several runs side by side (e.g. the Gaussian VAE against the MS-SSIM-VAE).

Every run must be of a model with a decoder (``vqvae``, ``ncvqvae``, ``vae``, ``mssim_vae``) on
the same dataset. Rows are test series (the first ``--per-class`` of each class), columns are
runs; each panel shows the test series and the run's reconstruction, with the run's test MSE and
MS-SSIM over the whole test split (from its ``metrics.json``) in the column title:

    python experiments/compare_reconstructions.py runs/stage1/GunPoint-vae-quick-seed0 \
        runs/stage1/GunPoint-mssim_vae-quick-seed0 --out docs/figures/vae-vs-mssim-vae-GunPoint.png
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from tsvq.recipes.stage1 import load_run  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (same dataset)")
    ap.add_argument("--per-class", type=int, default=2, help="test series shown per class (default 2)")
    ap.add_argument("--checkpoint", default="best", choices=["best", "last"])
    ap.add_argument("--out", required=True, help="PNG file")
    args = ap.parse_args(argv)

    loaded = [load_run(r, args.checkpoint) for r in args.runs]
    datasets = {cfg.dataset for cfg, *_ in loaded}
    if len(datasets) != 1:
        raise SystemExit(f"runs must share one dataset, got {sorted(datasets)}")
    for (cfg, model, *_), run in zip(loaded, args.runs):
        if not hasattr(model, "reconstruct"):
            raise SystemExit(f"{run}: a {cfg.model!r} run has no decoder to reconstruct with")
    _, _, ds, _, x_test = loaded[0]
    y = ds.y_test
    rows = torch.cat([torch.nonzero(y == c).flatten()[:args.per_class] for c in torch.unique(y)])

    fig, axes = plt.subplots(len(rows), len(loaded), figsize=(4.2 * len(loaded), 1.6 * len(rows)),
                             sharex=True, squeeze=False)
    for col, ((cfg, model, *_), run) in enumerate(zip(loaded, args.runs)):
        model.eval()
        with torch.no_grad():
            x_hat = model.reconstruct(x_test)
        m = json.loads((Path(run) / "metrics.json").read_text())
        axes[0, col].set_title(f"{Path(run).name}\ntest MSE {m['test_mse_time']:.4f}, "
                               f"MS-SSIM {m.get('test_ms_ssim', float('nan')):.3f}", fontsize=9)
        for row, i in enumerate(rows.tolist()):
            ax = axes[row, col]
            ax.plot(x_test[i, 0].numpy(), color="0.3", lw=1, label="test series")
            ax.plot(x_hat[i, 0].numpy(), color="C1", lw=1, label="reconstruction")
            if col == 0:
                ax.set_ylabel(f"class {ds.classes[int(y[i])]}", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{datasets.pop()}: test reconstructions (scaled units)", fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
