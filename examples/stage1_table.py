"""Stage-1 comparison: vqvae vs ncvqvae (Barlow Twins + slice, VIbCReg + gauss) on UCR datasets.

Trains every (variant, dataset, seed) with ``tsvq.train`` (skipping runs whose metrics.json
exists, so an interrupted sweep resumes) and writes a Markdown table of mean ± std over seeds:

    python examples/stage1_table.py --datasets GunPoint ECG200 --seeds 0 1 2 \
        --data-dir ../shared/data/UCRArchive_2018 --runs runs/stage1 --out docs/results-stage1-table.md
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from tsvq.train import resolve_config, train

VARIANTS = {
    "vqvae": ("vqvae", []),
    "ncvqvae BT slice": ("ncvqvae", ["ssl_loss=barlow_twins", "augmentation=slice"]),
    "ncvqvae VIbCReg gauss": ("ncvqvae", ["ssl_loss=vibcreg", "augmentation=gauss"]),
}
COLUMNS = [("svm_accuracy", "SVM acc", 100), ("peak_probe_svm", "peak SVM during training", 100), ("knn1_accuracy", "1-NN acc", 100), ("knn5_accuracy", "5-NN acc", 100),
           ("test_mse_time", "test MSE", 1), ("test_perplexity", "perplexity", 1), ("epoch_time_s", "s / epoch", 1)]


def _peak_probe(run: Path) -> float:
    """Highest ``probe/svm_accuracy`` logged during training (``--set probe_every=N``), else NaN."""
    values = []
    for log in (run / "logs").glob("session*/metrics.csv"):
        with open(log) as fh:
            values += [float(r["probe/svm_accuracy"]) for r in csv.DictReader(fh) if r.get("probe/svm_accuracy")]
    return max(values) if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--preset", default="quick", choices=["quick", "paper"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/stage1")
    ap.add_argument("--out", default=None, help="Markdown file for the table (printed either way)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra overrides for every run")
    args = ap.parse_args(argv)
    rows = []
    means = {label: [] for label in VARIANTS}
    for ds in args.datasets:
        for label, (model, sets) in VARIANTS.items():
            results = []
            for seed in args.seeds:
                run = Path(args.runs) / f"{ds}-{label.replace(' ', '_')}-{args.preset}-seed{seed}"
                if (run / "metrics.json").exists():
                    result = json.loads((run / "metrics.json").read_text())
                else:
                    cfg = resolve_config(model, ds, args.preset, sets + args.set, seed, args.data_dir)
                    result = train(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists(), progress=False)
                results.append({**result, "peak_probe_svm": _peak_probe(run)})
            means[label].append(float(np.mean([r["svm_accuracy"] for r in results])))
            cells = []
            for key, _, scale in COLUMNS:
                v = np.array([r[key] for r in results], dtype=float) * scale
                cells.append(f"{v.mean():.2f} ± {v.std():.2f}" if scale == 100 else f"{v.mean():.4g} ± {v.std():.2g}")
            rows.append(f"| {ds} | {label} | {len(results)} | " + " | ".join(cells) + " |")
    header = ("| dataset | model | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |\n|---|---|---:|"
              + "---:|" * len(COLUMNS))
    table = header + "\n" + "\n".join(rows) + "\n\nMean SVM accuracy over datasets (%): " + ", ".join(
        f"{label} {100 * np.mean(v):.2f}" for label, v in means.items()) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
