"""The quantisers inside the TimeVQVAE tokenizer: ``vqvae`` (quick preset) with ``quantizer`` = vq / fsq /
lfq / simvq at the same vocabulary, K = 32 codes (vq and simvq: ``codebook_size=32``; FSQ levels [8, 4];
LFQ 5 bits), on the UCR datasets x seeds, each followed by the quick MaskGIT prior and FID / IS / CAS
with the published FCN evaluator.

A resumable queue (``experiments/generation_table.run_one``: a finished step is skipped, an
interrupted training resumes its checkpoint). Each finished pipeline's metrics go to the record,
one JSON file per run (default ``docs/results-quantizers-runs/``, committed with the results), so
the queue also resumes on a machine that no longer has the run directories; ``--table FILE``
writes the table of the recorded runs:

    python experiments/quantizer_comparison.py --seeds 0 1 2 --data-dir ../shared/data/UCRArchive_2018 \\
        --fcn-weights ../shared/fcn/supervised_fcn_v1 --runs runs/quantizers
    python experiments/quantizer_comparison.py --seeds 0 1 2 --table docs/q.md
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tsvq.engine.run_dir import atomic_write
from tsvq.report.tables import mean_std

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, also when loaded by path
from generation_table import run_one  # noqa: E402

DATASETS = ("GunPoint", "ECG200", "CBF", "Coffee", "ItalyPowerDemand", "SyntheticControl", "TwoLeadECG",
            "Strawberry", "Beef", "ArrowHead")
# Each quantiser at K = 32 codes, the tokenizer's default vocabulary.
QUANTIZERS = {"vq": ["quantizer=vq", "codebook_size=32"], "fsq": ["quantizer=fsq", "fsq_levels=[8,4]"],
              "lfq": ["quantizer=lfq", "lfq_bits=5"], "simvq": ["quantizer=simvq", "codebook_size=32"]}
COLUMNS = [("test_mse_time", "test MSE", 1, 4), ("test_perplexity", "perplexity", 1, 1),
           ("test_fraction_used", "codes used %", 100, 0), ("svm_accuracy", "SVM %", 100, 1),
           ("knn1_accuracy", "1-NN %", 100, 1), ("prior_masked_accuracy", "prior masked acc %", 100, 1),
           ("fid", "FID", 1, 2), ("fid_test_reconstruction", "FID of test reconstructions", 1, 2),
           ("is_mean", "IS", 1, 2), ("cas", "CAS %", 100, 1)]
# The quality metrics ranked across the quantisers on each dataset (1 = best), and which of them is better low.
RANKED = ("test_mse_time", "svm_accuracy", "knn1_accuracy", "fid", "is_mean", "cas")
LOWER_IS_BETTER = {"test_mse_time", "fid"}


RECORD = Path(__file__).resolve().parent.parent / "docs" / "results-quantizers-runs"


def code_version() -> str:
    """The last commit that changed ``tsvq/`` or ``csrc/`` (``+dirty`` with uncommitted changes there), or
    ``unknown`` outside a git checkout: recorded with every run, so that runs of different code show."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "tsvq", "csrc"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "tsvq", "csrc"], cwd=root).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def run_name(dataset: str, quantizer: str, seed: int) -> str:
    return f"{dataset}-vqvae_{quantizer}-quick-seed{seed}"


def record_path(record: Path, dataset: str, quantizer: str, seed: int) -> Path:
    return record / f"{run_name(dataset, quantizer, seed)}.json"


def read_record(record: Path, dataset: str, quantizer: str, seed: int, settings: dict) -> dict | None:
    """The recorded metrics of one finished pipeline, or None if it is not recorded.

    Raises:
        ValueError: it is recorded with other ``--set`` / ``--prior-set`` overrides than ``settings``.
    """
    path = record_path(record, dataset, quantizer, seed)
    if not path.exists():
        return None
    entry = json.loads(path.read_text())
    if entry["settings"] != settings:
        raise ValueError(f"--record {record} holds {path.name} with the overrides {entry['settings']}, not "
                         f"{settings}; pass another --record folder for other settings")
    return entry["metrics"]


def table(record: Path, datasets, seeds) -> str:
    """Markdown: one row per (dataset, quantiser) with recorded runs (mean ± std over the seeds), then,
    over the datasets where every quantiser has finished runs, each quantiser's mean of every column
    (test MSE also as the mean ratio to vq's on the same dataset) and its mean rank on the quality
    metrics (1 = best of the four on a dataset, ties share the mean rank), and each quantiser's paired
    difference to vq on them with the Wilcoxon signed-rank test over the datasets."""
    from scipy.stats import rankdata, wilcoxon

    lines = ["| dataset | quantizer | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|---:|" + "---:|" * len(COLUMNS)]
    per = {}  # (dataset, quantiser) -> {metric: mean over the seeds}
    versions = Counter()  # code version -> number of runs
    for dataset in datasets:
        for q in QUANTIZERS:
            entries = [json.loads(p.read_text()) for p in (record_path(record, dataset, q, s) for s in seeds)
                       if p.exists()]
            versions.update(e.get("code", "unknown") for e in entries)
            ms = [e["metrics"] for e in entries]
            if not ms:
                continue
            lines.append(f"| {dataset} | {q} | {len(ms)} | "
                         + " | ".join(mean_std([m.get(k) for m in ms], scale, digits) for k, _, scale, digits in COLUMNS)
                         + " |")
            per[dataset, q] = {k: sum(m[k] for m in ms) / len(ms) for k, *_ in COLUMNS}
    if versions:
        lines += ["", "Code (the last commit of `tsvq/` and `csrc/` each run was made with): "
                  + ", ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in sorted(versions.items())) + "."]
    complete = [d for d in datasets if all((d, q) in per for q in QUANTIZERS)]
    if not complete:
        return "\n".join(lines) + "\n"
    n = len(complete)
    lines += ["", f"Mean over the {n} dataset(s) where every quantiser has finished runs ({', '.join(complete)}; "
              "each dataset's mean over its seeds):", "",
              "| quantizer | test MSE / vq's | " + " | ".join(c[1] for c in COLUMNS) + " |",
              "|---|---:|" + "---:|" * len(COLUMNS)]
    for q in QUANTIZERS:
        ratio = sum(per[d, q]["test_mse_time"] / per[d, "vq"]["test_mse_time"] for d in complete) / n
        lines.append(f"| {q} | {ratio:.2f} | " + " | ".join(
            f"{sum(per[d, q][k] for d in complete) / n * scale:.{digits}f}" for k, _, scale, digits in COLUMNS) + " |")
    ranks = {q: {k: 0.0 for k in RANKED} for q in QUANTIZERS}
    for d in complete:
        for k in RANKED:
            sign = 1 if k in LOWER_IS_BETTER else -1
            for q, r in zip(QUANTIZERS, rankdata([sign * per[d, q][k] for q in QUANTIZERS])):
                ranks[q][k] += r / n
    names = {k: name for k, name, *_ in COLUMNS}
    lines += ["", "Mean rank over the same datasets (1 = best of the four):", "",
              "| quantizer | " + " | ".join(names[k] for k in RANKED) + " |", "|---|" + "---:|" * len(RANKED)]
    lines += [f"| {q} | " + " | ".join(f"{ranks[q][k]:.2f}" for k in RANKED) + " |" for q in QUANTIZERS]
    lines += ["", "Each quantiser against vq on the same datasets: the mean of (quantiser - vq) and the two-sided "
              f"Wilcoxon signed-rank p-value, paired by dataset (n = {n}):", "",
              "| quantizer | " + " | ".join(names[k] for k in RANKED) + " |", "|---|" + "---:|" * len(RANKED)]
    fmt = {k: (scale, digits) for k, _, scale, digits in COLUMNS}
    for q in [q for q in QUANTIZERS if q != "vq"]:
        cells = []
        for k in RANKED:
            diff = [per[d, q][k] - per[d, "vq"][k] for d in complete]
            p = wilcoxon(diff).pvalue if any(diff) else 1.0  # all ties: no evidence either way
            scale, digits = fmt[k]
            cells.append(f"{sum(diff) / n * scale:+.{digits}f} (p {p:.3f})")
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--quantizers", nargs="+", default=list(QUANTIZERS), choices=list(QUANTIZERS))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--fcn-weights", default=None, help="published FCN weights folder (default: tsvq's own FCN)")
    ap.add_argument("--runs", type=Path, default=Path("runs/quantizers"), help="the run directories")
    ap.add_argument("--record", type=Path, default=RECORD,
                    help="folder of the finished pipelines' metrics, one JSON file per run (default: %(default)s)")
    ap.add_argument("--table", type=Path, default=None, help="write the table of the recorded runs here and exit")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="stage-1 overrides (all quantisers)")
    ap.add_argument("--prior-set", action="append", default=[], metavar="KEY=VALUE", help="prior overrides")
    args = ap.parse_args(argv)
    if args.table is not None:
        args.table.write_text(table(args.record, args.datasets, args.seeds))
        print(args.table.read_text())
        return 0
    settings = {"set": args.set, "prior_set": args.prior_set}
    code = code_version()
    queue = [(d, q, s) for s in args.seeds for d in args.datasets for q in args.quantizers]
    todo = [job for job in queue if read_record(args.record, *job, settings) is None]  # raises before any training
    for dataset, q, seed in todo:
        print(dataset, q, seed, flush=True)
        metrics = run_one("vqvae", dataset, "quick", seed, args.runs, args.data_dir, args.fcn_weights,
                          QUANTIZERS[q] + args.set, args.prior_set, label=f"vqvae_{q}")
        entry = {"run": run_name(dataset, q, seed), "settings": settings, "code": code, "metrics": metrics}
        atomic_write(record_path(args.record, dataset, q, seed), json.dumps(entry, indent=1, sort_keys=True) + "\n")
    args.table = args.runs / "table.md"
    atomic_write(args.table, table(args.record, args.datasets, args.seeds))
    print(args.table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
