"""Stage-1 comparison: vqvae vs ncvqvae (Barlow Twins + slice, VIbCReg + gauss) on UCR datasets,
or (``--variants ssl``) vqvae vs ncvqvae with Barlow Twins + slice alone, or (``--variants zoo``) every model of the zoo, or (``--variants gradient``) vqvae with the
straight-through estimator vs the rotation trick (without and with dead-code restarts), or
(``--variants gradient-ssl``) the same two gradients for ncvqvae (Barlow Twins + slice).

Trains every (variant, dataset, seed) with ``tsvq.recipes.stage1`` (skipping runs whose metrics.json
exists, so an interrupted sweep resumes) and writes a Markdown table of mean ± std over seeds:

    python experiments/stage1_table.py --datasets GunPoint ECG200 --seeds 0 1 2 \
        --data-dir ../shared/data/UCRArchive_2018 --runs runs/stage1 --out docs/results-stage1-table.md

With ``--fcn-weights DIR`` the VAEs are also evaluated with FID / IS of their samples
(``tsvq evaluate``). A cell is "–" where the metric does not apply (no codebook, no decoder).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

import dataclasses

from tsvq.recipes.generation import evaluate_all
from tsvq.models import MODELS
from tsvq.config import TRAIN_FIELDS, resolve_config
from tsvq.recipes.stage1 import train

VARIANTS = {
    "vqvae": ("vqvae", []),
    "ncvqvae BT slice": ("ncvqvae", ["ssl_loss=barlow_twins", "augmentation=slice"]),
    "ncvqvae VIbCReg gauss": ("ncvqvae", ["ssl_loss=vibcreg", "augmentation=gauss"]),
}
SSL = {  # the NC-VQVAE table's pair: `reg` (the plain tokenizer) vs `BT-s` (Barlow Twins with slice)
    "vqvae": VARIANTS["vqvae"],
    "ncvqvae BT slice": VARIANTS["ncvqvae BT slice"],
}
GRADIENT = {  # the quantiser's gradient: straight-through estimator vs the rotation trick (Fifty et al. 2024)
    "vqvae": ("vqvae", []),
    "vqvae rotation trick": ("vqvae", ["rotation_trick=true"]),
    "vqvae rotation trick + restarts": ("vqvae", ["rotation_trick=true", "threshold_ema_dead_code=2"]),
}
GRADIENT_SSL = {  # the same comparison for the SSL tokenizer
    "ncvqvae BT slice": VARIANTS["ncvqvae BT slice"],
    "ncvqvae BT slice rotation trick": ("ncvqvae", VARIANTS["ncvqvae BT slice"][1] + ["rotation_trick=true"]),
}
ZOO = {**VARIANTS, **{name: (name, []) for name in ("vae", "mssim_vae", "simclr", "byol", "barlow_twins", "vicreg",
                                                     "vibcreg")}}
COLUMNS = [("svm_accuracy", "SVM acc", 100), ("peak_probe_svm", "peak SVM during training", 100),
           ("knn1_accuracy", "1-NN acc", 100), ("knn5_accuracy", "5-NN acc", 100),
           ("test_mse_time", "test MSE", 1), ("test_perplexity", "perplexity", 1), ("epoch_time_s", "s / epoch", 1)]
ZOO_COLUMNS = [("svm_accuracy", "SVM acc", 100), ("knn5_accuracy", "5-NN acc", 100), ("silhouette", "silhouette", 1),
               ("test_mse_time", "test MSE", 1), ("test_ms_ssim", "test MS-SSIM", 1), ("fid", "FID", 1),
               ("is_mean", "IS", 1)]


def _sets_for(model: str, sets: list[str], models: list[str]) -> list[str]:
    """The ``key=value`` overrides that apply to ``model``: run keys always, model keys where the
    model's config has them. A key no model of the sweep knows is an error."""
    fields = {m: {f.name for f in dataclasses.fields(MODELS[m][1])} for m in models}
    out = []
    for item in sets:
        key = item.split("=", 1)[0]
        if key not in TRAIN_FIELDS and not any(key in f for f in fields.values()):
            raise ValueError(f"--set {item!r}: no model of this sweep has a field {key!r}")
        if key in TRAIN_FIELDS or key in fields[model]:
            out.append(item)
    return out


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
    ap.add_argument("--variants", default="stage1", choices=["stage1", "ssl", "zoo", "gradient", "gradient-ssl"],
                    help="stage1: vqvae and the two ncvqvae variants; ssl: vqvae and ncvqvae (Barlow Twins, "
                         "slice), the NC-VQVAE table's pair; zoo: every model; "
                         "gradient: vqvae with the straight-through estimator, with the rotation trick, and "
                         "with the rotation trick and dead-code restarts (threshold 2); "
                         "gradient-ssl: ncvqvae (Barlow Twins, slice) with either gradient")
    ap.add_argument("--fcn-weights", default=None, help="FCN weights for FID / IS of the VAEs' samples")
    args = ap.parse_args(argv)
    variants, columns = {"stage1": (VARIANTS, COLUMNS), "ssl": (SSL, COLUMNS), "gradient": (GRADIENT, COLUMNS),
                         "gradient-ssl": (GRADIENT_SSL, COLUMNS), "zoo": (ZOO, ZOO_COLUMNS)}[args.variants]
    rows = []
    means = {label: [] for label in variants}
    for ds in args.datasets:
        for label, (model, sets) in variants.items():
            results = []
            for seed in args.seeds:
                run = Path(args.runs) / f"{ds}-{label.replace(' ', '_')}-{args.preset}-seed{seed}"
                if (run / "metrics.json").exists():
                    result = json.loads((run / "metrics.json").read_text())
                else:
                    extra = _sets_for(model, args.set, [m for m, _ in variants.values()])
                    cfg = resolve_config(model, ds, args.preset, sets + extra, seed, args.data_dir)
                    result = train(cfg, run, resume=(run / "checkpoints" / "last.ckpt").exists(), progress=False)
                if model in ("vae", "mssim_vae") and args.fcn_weights and "fid" not in result:
                    result = evaluate_all(run, "best", args.fcn_weights, seed)
                results.append({**result, "peak_probe_svm": _peak_probe(run)})
            means[label].append(float(np.mean([r["svm_accuracy"] for r in results])))
            cells = []
            for key, _, scale in columns:
                if not all(key in r for r in results):
                    cells.append("–")
                    continue
                v = np.array([r[key] for r in results], dtype=float) * scale
                cells.append(f"{v.mean():.2f} ± {v.std():.2f}" if scale == 100 else f"{v.mean():.4g} ± {v.std():.2g}")
            rows.append(f"| {ds} | {label} | {len(results)} | " + " | ".join(cells) + " |")
    header = ("| dataset | model | seeds | " + " | ".join(c[1] for c in columns) + " |\n|---|---|---:|"
              + "---:|" * len(columns))
    table = header + "\n" + "\n".join(rows) + "\n\nMean SVM accuracy over datasets (%): " + ", ".join(
        f"{label} {100 * np.mean(v):.2f}" for label, v in means.items()) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
