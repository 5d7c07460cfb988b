"""Generation table: stage 1 -> MaskGIT prior -> FID / IS / CAS on UCR datasets, next to the
TimeVQVAE paper's figures (SPEC section 5).

For each (dataset, seed) it runs the ``tsvq pipeline`` steps that are not finished yet (a stage-1
run directory with ``metrics.json`` is reused, e.g. one of ``experiments/stage1_table.py`` with the
same ``--runs``), so an interrupted sweep resumes:

    python experiments/generation_table.py --datasets GunPoint ECG200 --seeds 0 \
        --data-dir ../shared/data/UCRArchive_2018 --fcn-weights ../shared/fcn/supervised_fcn_v1 \
        --runs runs/stage1 --out docs/results-generation-table.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tsvq.config import resolve_config, resolve_prior_config
from tsvq.recipes.generation import evaluate_all
from tsvq.recipes.prior import train_prior
from tsvq.recipes.stage1 import train

# TimeVQVAE (Lee et al. 2023), two-branch, 2000 + 10000 epochs: FID, IS, CAS (%) (SPEC section 5)
PAPER = {"GunPoint": (0.8, 1.9, 99.1), "ECG200": (1.9, 1.5, 89.0), "CBF": (2.3, 2.7, 96.5),
         "Coffee": (0.3, 1.9, 100.0), "ItalyPowerDemand": (1.6, 2.0, 95.3), "SyntheticControl": (3.7, 4.4, 97.2),
         "TwoLeadECG": (0.2, 1.9, 97.6), "Strawberry": (0.4, 1.8, 95.7), "Beef": (1.8, 2.7, 72.2),
         "ArrowHead": (2.0, 2.5, 81.7)}


def run_one(model: str, dataset: str, preset: str, seed: int, runs: Path, data_dir, fcn_weights, sets, prior_sets,
            label: str | None = None):
    """Stage 1, prior and FID / IS / CAS of one (model, dataset, seed) in ``runs/<dataset>-<label>-<preset>-seed<seed>``
    (``label`` default: the model's), each step skipped when done and resumed when interrupted; the metrics."""
    label = label or {"vqvae": "vqvae", "ncvqvae": "ncvqvae_BT_slice"}[model]
    out = runs / f"{dataset}-{label}-{preset}-seed{seed}"
    if not (out / "metrics.json").exists():
        extra = ["ssl_loss=barlow_twins", "augmentation=slice"] if model == "ncvqvae" else []
        cfg = resolve_config(model, dataset, preset, extra + sets, seed, data_dir)
        train(cfg, out, resume=(out / "checkpoints" / "last.ckpt").exists(), progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    if "fid_test_reconstruction" not in metrics:
        if not (out / "prior" / "summary.json").exists():
            pcfg = resolve_prior_config(preset, prior_sets, seed)
            train_prior(out, pcfg, resume=(out / "prior" / "checkpoints" / "last.ckpt").exists(), progress=False)
        metrics = evaluate_all(out, "best", fcn_weights, seed)
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", required=True)
    ap.add_argument("--models", nargs="+", default=["vqvae"], choices=["vqvae", "ncvqvae"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--preset", default="quick", choices=["quick", "paper", "timevqvae"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--fcn-weights", default=None, help="published FCN weights folder (default: tsvq's own FCN)")
    ap.add_argument("--runs", default="runs/stage1")
    ap.add_argument("--out", default=None, help="Markdown file for the table (printed either way)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="stage-1 overrides")
    ap.add_argument("--prior-set", action="append", default=[], metavar="KEY=VALUE", help="prior overrides")
    args = ap.parse_args(argv)
    rows = []
    for ds in args.datasets:
        for model in args.models:
            res = [run_one(model, ds, args.preset, s, Path(args.runs), args.data_dir, args.fcn_weights, args.set,
                           args.prior_set) for s in args.seeds]

            def cell(key, scale=1.0, fmt="{:.2f}"):
                v = np.array([r[key] for r in res], dtype=float) * scale
                return (fmt + " ± " + fmt).format(v.mean(), v.std()) if len(v) > 1 else fmt.format(v[0])

            paper = PAPER.get(ds, (float("nan"),) * 3)
            rows.append(f"| {ds} | {model} | {len(res)} | {cell('fid')} | {paper[0]} | {cell('is_mean')} | {paper[1]} | "
                        f"{cell('cas', 100, '{:.1f}')} | {paper[2]} | {cell('fcn_test_accuracy', 100, '{:.1f}')} | "
                        f"{cell('prior_masked_accuracy', 100, '{:.1f}')} | {cell('fid_test_reconstruction')} | "
                        f"{cell('is_real_test')} |")
    header = ("| dataset | tokenizer | seeds | FID | FID paper | IS | IS paper | CAS (%) | CAS paper | "
              "FCN test acc (%) | prior masked-token acc (%) | FID of test reconstructions | IS of real test |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    table = header + "\n" + "\n".join(rows) + "\n"
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
