"""Every trainable model on multivariate UEA data (BasicMotions: 6 channels; JapaneseVowels: 12
channels, lengths 7-29), quick preset, and the same run from a user ``.npz``.

A resumable queue (a finished step is skipped; an interrupted training resumes its checkpoint):

- ``tsvq train MODEL --dataset NAME --preset quick --seed S`` for every model of ``tsvq train``;
- for the tokenizers (vqvae, ncvqvae): ``tsvq prior --preset quick`` and ``tsvq evaluate``
  (FID / IS / CAS with tsvq's own FCN: the published FCN weights are univariate);
- for the VAEs: ``tsvq evaluate`` (FID / IS of their samples with tsvq's own FCN);
- ``tsvq train vqvae --data <NAME>.npz`` (the dataset written to an ``.npz``), seed 0, whose
  metrics must equal the run by name.

``--table FILE`` writes the Markdown tables of what is done:

    python experiments/any_data.py --runs runs/any-data --seeds 0 1 2
    python experiments/any_data.py --runs runs/any-data --seeds 0 1 2 --table docs/any-data-table.md
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tsvq.report.tables import mean_std

MODELS = ("vqvae", "ncvqvae", "vae", "mssim_vae", "simclr", "barlow_twins", "vicreg", "vibcreg", "byol")
TOKENIZERS = ("vqvae", "ncvqvae")
VAES = ("vae", "mssim_vae")
DATASETS = ("BasicMotions", "JapaneseVowels")


def tsvq(*argv: str, log: Path) -> None:
    cmd = [str(Path(sys.executable).with_name("tsvq")), *argv]
    with open(log, "a") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)


def timed(path: Path, key: str, fn) -> None:
    """Run ``fn`` and add its wall time under ``key`` to ``path`` (the run's times.json)."""
    t = time.perf_counter()
    fn()
    times = json.loads(path.read_text()) if path.exists() else {}
    times[key] = time.perf_counter() - t
    path.write_text(json.dumps(times, indent=1))


def run_one(runs: Path, dataset: str, model: str, seed: int) -> None:
    out = runs / f"{dataset}-{model}-seed{seed}"
    log, times = runs / f"{out.name}.log", out.parent / f"{out.name}.times.json"
    metrics = out / "metrics.json"
    if not metrics.exists():
        resume = ["--resume"] if (out / "checkpoints" / "last.ckpt").exists() else []
        timed(times, "train_s", lambda: tsvq("train", model, "--dataset", dataset, "--preset", "quick", "--seed",
                                             str(seed), "--out", str(out), "--no-progress", *resume, log=log))
    if model in TOKENIZERS and not (out / "prior" / "summary.json").exists():
        resume = ["--resume"] if (out / "prior" / "checkpoints" / "last.ckpt").exists() else []
        timed(times, "prior_s", lambda: tsvq("prior", str(out), "--preset", "quick", "--seed", str(seed),
                                             "--no-progress", *resume, log=log))
    if model in TOKENIZERS + VAES and "fid" not in json.loads(metrics.read_text()):
        timed(times, "evaluate_s", lambda: tsvq("evaluate", str(out), "--seed", str(seed), log=log))


def npz_check(runs: Path, dataset: str) -> None:
    import numpy as np
    from aeon.datasets import load_classification

    path = runs / f"{dataset}.npz"
    if not path.exists():
        x, y = load_classification(dataset, split="train")
        xt, yt = load_classification(dataset, split="test")
        if isinstance(x, list):  # uneven lengths: NaN-padded, as a user would store them
            width = max(s.shape[-1] for s in list(x) + list(xt))
            pad = lambda xs: np.stack([np.pad(s, ((0, 0), (0, width - s.shape[-1])), constant_values=np.nan)  # noqa: E731
                                       for s in xs])
            x, xt = pad(x), pad(xt)
        np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    out = runs / f"{dataset}-npz-vqvae-seed0"
    if not (out / "metrics.json").exists():
        tsvq("train", "vqvae", "--data", str(path), "--preset", "quick", "--seed", "0", "--out", str(out),
             "--no-progress", log=runs / f"{out.name}.log")


def _fmt(values, scale=1.0, digits=1) -> str:
    return mean_std(values, scale, digits)


def table(runs: Path, seeds: list[int]) -> str:
    cols = [("svm_accuracy", "SVM %", 100, 1), ("knn1_accuracy", "1-NN %", 100, 1),
            ("test_mse_time", "test MSE", 1, 4), ("test_perplexity", "perplexity", 1, 1),
            ("fid", "FID", 1, 2), ("is_mean", "IS", 1, 2), ("cas", "CAS %", 100, 1)]
    lines = ["| dataset | model | seeds | " + " | ".join(c[1] for c in cols) + " | train s | prior + eval s |",
             "|---|---|---:|" + "---:|" * len(cols) + "---:|---:|"]
    for dataset in DATASETS:
        for model in MODELS:
            done = [runs / f"{dataset}-{model}-seed{s}" for s in seeds]
            done = [d for d in done if (d / "metrics.json").exists()]
            if not done:
                continue
            ms = [json.loads((d / "metrics.json").read_text()) for d in done]
            ts = [json.loads(d.with_name(d.name + ".times.json").read_text())
                  if d.with_name(d.name + ".times.json").exists() else {} for d in done]
            cells = [_fmt([m.get(k) for m in ms], scale, digits) for k, _, scale, digits in cols]
            lines.append(f"| {dataset} | {model} | {len(done)} | " + " | ".join(cells)
                         + f" | {_fmt([t.get('train_s') for t in ts], 1, 0)}"
                         + f" | {_fmt([(t.get('prior_s', 0) + t['evaluate_s']) if 'evaluate_s' in t else None for t in ts], 1, 0)} |")
    lines += ["", "The same vqvae run (quick, seed 0) from the dataset written to an .npz (`--data`):", "",
              "| dataset | source | SVM | 1-NN | test MSE | perplexity | final loss |", "|---|---|---:|---:|---:|---:|---:|"]
    for dataset in DATASETS:
        for source, d in (("--dataset", runs / f"{dataset}-vqvae-seed0"), ("--data .npz", runs / f"{dataset}-npz-vqvae-seed0")):
            if (d / "metrics.json").exists():
                m = json.loads((d / "metrics.json").read_text())
                lines.append(f"| {dataset} | {source} | {m['svm_accuracy']:.6f} | {m['knn1_accuracy']:.6f} | "
                             f"{m['test_mse_time']:.6f} | {m['test_perplexity']:.6f} | {m['final_train_loss']:.6f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/any-data"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--table", type=Path, default=None, help="write the tables of the finished runs here and exit")
    args = ap.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.table is not None:
        args.table.write_text(table(args.runs, args.seeds))
        print(args.table.read_text())
        return 0
    for dataset in args.datasets:
        npz_check(args.runs, dataset)
    for seed in args.seeds:
        for dataset in args.datasets:
            for model in args.models:
                print(dataset, model, seed, flush=True)
                run_one(args.runs, dataset, model, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
