"""NC-VQVAE side by side with its reference code (issue: the SSL gain of NC-VQVAE reproduced).

Runs a queue of stage-1 trainings, one at a time, and skips those already finished, so an
interrupted sweep resumes where it stopped (tsvq runs resume their own checkpoints with
``--resume``; a reference run that was cut off starts again):

- ``ref-reg`` / ``ref-bts``: the reference code (erlendlokna/Generative-SSL-VQVAE-modelling @ 4b905c6),
  VQ-VAE and Barlow Twins + ``slice``, through ``benchmarks/reference/run_reference.py`` in its own
  virtual environment (``--ref-python``) and checkout (``--ref-code``); see benchmarks/reference/README.md.
- ``ref-reg-p1000`` / ``ref-bts-p1000``: the same with the reference's probes only at the first and last
  epoch (its probes in training mode feed the test split to BatchNorm and the EMA codebook).
- ``tsvq-reg-dec`` / ``tsvq-bts-dec``: ``tsvq train vqvae|ncvqvae --preset paper`` (BT + slice), whose
  decoder is the reference's (TimeVQVAE's, ``decoder=timevqvae``).
- ``tsvq-reg`` / ``tsvq-bts``: the same with tsvq's other decoder, the encoder's mirror (``decoder=mirror``),
  the paper preset's before the comparison found the reference's; every variant below has it too unless
  its name ends in ``-dec`` or is ``tsvq-bts-all``.
- ``tsvq-bts-zq``, ``tsvq-bts-aug``, ``tsvq-bts-ref``: ncvqvae with the reference code's choices
  switched on one at a time and together (``original_latent=z_q``, ``aug_recon_weight=0.1``).
- ``tsvq-reg-nvq``, ``tsvq-bts-nvq``, ``tsvq-bts-ref-nvq``: vqvae, ncvqvae and ncvqvae with every
  switch above, with the reference's codebook start as well (``codebook_init=normal``: randn
  codewords, EMA cluster sizes from 0).
- ``tsvq-reg-dec-nvq``: vqvae with the reference's decoder and codebook start (the reference's VQ-VAE);
  ``tsvq-bts-all``: ncvqvae with every choice of the reference code above.

Every run probes every 50 epochs. ``--table`` writes the side-by-side tables from what is done, with the
reproduction test for the paper preset (``-dec``) and for the mirror decoder:

    python experiments/ncvqvae_reference.py --datasets GunPoint --seeds 0 1 --epochs 1000 \\
        --data-dir ../shared/data/UCRArchive_2018 --ref-code /work/refcode --ref-python /work/refenv/bin/python \\
        --runs runs/ncvqvae-reference --variants ref-reg ref-bts tsvq-reg-dec tsvq-bts-dec
    python experiments/ncvqvae_reference.py --table docs/ncvqvae-reference-table.md --runs runs/ncvqvae-reference ...
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

from tsvq.report.tables import mean_std

REPO = Path(__file__).resolve().parents[1]
BT = ["ssl_loss=barlow_twins", "augmentation=slice"]  # NC-VQVAE's BT-s: Barlow Twins with slice views
REF_SSL = ["original_latent=z_q", "aug_recon_weight=0.1"]  # the reference code's two SSL choices
MIRROR = ["decoder=mirror"]  # tsvq's other decoder (the paper preset's is the reference's)
TSVQ_SETS = {
    "tsvq-reg": ("vqvae", MIRROR),
    "tsvq-bts": ("ncvqvae", [*BT, *MIRROR]),
    "tsvq-bts-zq": ("ncvqvae", [*BT, *MIRROR, "original_latent=z_q"]),
    "tsvq-bts-aug": ("ncvqvae", [*BT, *MIRROR, "aug_recon_weight=0.1"]),
    "tsvq-bts-ref": ("ncvqvae", [*BT, *MIRROR, *REF_SSL]),
    "tsvq-reg-nvq": ("vqvae", [*MIRROR, "codebook_init=normal"]),
    "tsvq-bts-nvq": ("ncvqvae", [*BT, *MIRROR, "codebook_init=normal"]),
    "tsvq-bts-ref-nvq": ("ncvqvae", [*BT, *MIRROR, *REF_SSL, "codebook_init=normal"]),
    "tsvq-reg-dec": ("vqvae", ["decoder=timevqvae"]),
    "tsvq-bts-dec": ("ncvqvae", [*BT, "decoder=timevqvae"]),
    "tsvq-reg-dec-nvq": ("vqvae", ["decoder=timevqvae", "codebook_init=normal"]),
    "tsvq-bts-all": ("ncvqvae", [*BT, *REF_SSL, "codebook_init=normal", "decoder=timevqvae"]),
}
REF = {"ref-reg": ["--method", "regular"], "ref-bts": ["--method", "barlowtwins", "--views", "slice"],
       # the probe-leak test: the reference's probes in training mode put the test split through BatchNorm
       # and the EMA codebook every 50 epochs; here they run only at the first and the last epoch
       "ref-reg-p1000": ["--method", "regular", "--probe-every", "1000"],
       "ref-bts-p1000": ["--method", "barlowtwins", "--views", "slice", "--probe-every", "1000"]}
VARIANTS = list(REF) + list(TSVQ_SETS)


def run_dir(runs: Path, dataset: str, variant: str, seed: int, epochs: int) -> Path:
    return runs / f"{dataset}-{variant}-e{epochs}-seed{seed}"


def run_one(args, dataset: str, variant: str, seed: int) -> None:
    out = run_dir(args.runs, dataset, variant, seed, args.epochs)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if variant in REF:
        if (out / "result.json").exists():
            return
        out.mkdir(parents=True, exist_ok=True)
        cmd = [args.ref_python, str(REPO / "benchmarks/reference/run_reference.py"), "--dataset", dataset,
               *REF[variant], "--seed", str(seed), "--epochs", str(args.epochs), "--threads", str(args.threads),
               "--out", str((out / "result.json").resolve())]
        with open(out / "log.txt", "w") as log:
            subprocess.run(cmd, cwd=args.ref_code, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        return
    if (out / "metrics.json").exists():
        return
    model, sets = TSVQ_SETS[variant]
    cmd = [str(Path(sys.executable).with_name("tsvq")), "train", model, "--dataset", dataset, "--preset", "paper",
           "--seed", str(seed), "--out", str(out), "--no-progress", "--set", f"epochs={args.epochs}",
           "--set", "probe_every=50"]
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    for s in sets:
        cmd += ["--set", s]
    if (out / "checkpoints" / "last.ckpt").exists():
        cmd.append("--resume")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(str(out) + ".log", "a") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def train_mode_probe(out: Path) -> float:
    """SVM accuracy of a finished tsvq run's final model probed as the reference code probes: the
    model in training mode (encoder BatchNorm on the statistics of each batch of 128, the EMA
    codebook updated by the train and then the test batches), pooled z_q, MinMax to (-1, 1), linear
    SVC. Cached in ``train_mode_probe.json`` of the run directory."""
    cache = out / "train_mode_probe.json"
    if cache.exists():
        return json.loads(cache.read_text())["svm_accuracy"]
    import torch

    from tsvq import eval as tsvq_eval
    from tsvq.recipes.stage1 import load_run

    cfg, model, ds, x_train, x_test = load_run(out, "last")
    model.train()
    feats = []
    with torch.no_grad():
        for x in (x_train, x_test):
            parts = [torch.cat([t.mean(dim=(2, 3)) for t in model.encode(x[i:i + 128])[1]], 1)
                     for i in range(0, len(x), 128)]
            feats.append(torch.cat(parts))
    acc = tsvq_eval.linear_probe(feats[0], ds.y_train, feats[1], ds.y_test)
    cache.write_text(json.dumps({"svm_accuracy": acc}))
    return acc


def load(runs: Path, dataset: str, variant: str, seed: int, epochs: int) -> dict | None:
    """{"svm", "knn5", "mse", "s_per_epoch", "probes": {epoch: (svm, knn5)}} of a finished run, or None."""
    out = run_dir(runs, dataset, variant, seed, epochs)
    if variant in REF:
        f = out / "result.json"
        if not f.exists():
            return None
        r = json.loads(f.read_text())
        return {"svm": r["final"]["svm_accuracy"], "knn5": r["final"]["knn5_accuracy"],
                "svm_eval": r.get("final_eval_mode", {}).get("svm_accuracy"), "svm_train": r["final"]["svm_accuracy"],
                "mse": r["final"]["test_mse_time"], "s_per_epoch": r["s_per_epoch_batches"],
                "probes": {p["epoch"]: (p["svm"], p["knn5"]) for p in r["probes"]}}
    f = out / "metrics.json"
    if not f.exists():
        return None
    m = json.loads(f.read_text())
    probes = {}
    for log in sorted((out / "logs").glob("session*/metrics.csv")):
        with open(log) as fh:
            for row in csv.DictReader(fh):
                if row.get("probe/svm_accuracy"):
                    probes[int(row["epoch"]) + 1] = (float(row["probe/svm_accuracy"]), float(row["probe/knn5_accuracy"]))
    return {"svm": m["svm_accuracy"], "knn5": m["knn5_accuracy"], "svm_eval": m["svm_accuracy"],
            "svm_train": train_mode_probe(out), "mse": m["test_mse_time"],
            "s_per_epoch": m.get("epoch_time_s"), "probes": probes}


def _ms(values, scale=100.0, digits=1) -> str:
    return mean_std(values, scale, digits)


def table(args) -> str:
    lines = ["# NC-VQVAE side by side with its reference code: the tables", "",
             "Written by `experiments/ncvqvae_reference.py --table`; the reading is in docs/ncvqvae-reference.md.", "",
             f"Final linear-probe SVM / 5-NN accuracy (%) on average-pooled z_q, each code with its own probe "
             f"protocol; SVM with the encoder in eval mode (BatchNorm running statistics, tsvq's protocol) and in "
             f"training mode (batch statistics, the EMA codebook updated by the probe data: the reference's "
             f"protocol) for both; test MSE (time) of the final model; {args.epochs} epochs, mean ± std over the seeds done (n).", "",
             "| dataset | variant | n | SVM | 5-NN | SVM, eval mode | SVM, training mode | test MSE | s / epoch |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    variants = list(dict.fromkeys([*args.variants, *(v for pair in PAIRS for v in pair[1:])]))
    done = {(d, v): [r for s in args.seeds if (r := load(args.runs, d, v, s, args.epochs))]
            for d in args.datasets for v in variants}
    traj = []
    for dataset in args.datasets:
        for variant in args.variants:
            rs = done[dataset, variant]
            if not rs:
                continue
            lines.append(f"| {dataset} | {variant} | {len(rs)} | {_ms([r['svm'] for r in rs])} | "
                         f"{_ms([r['knn5'] for r in rs])} | {_ms([r['svm_eval'] for r in rs])} | "
                         f"{_ms([r['svm_train'] for r in rs])} | "
                         f"{_ms([r['mse'] for r in rs], 1.0, 4)} | "
                         f"{_ms([r['s_per_epoch'] for r in rs], 1.0, 3)} |")
            epochs = sorted(set().union(*(r["probes"] for r in rs)))
            row = " ".join(f"{e}: {_ms([r['probes'][e][0] for r in rs if e in r['probes']], digits=0)}"
                           for e in epochs if e % 100 == 0 or e == epochs[-1])
            traj.append(f"| {dataset} | {variant} | {row} |")
    lines += ["", "Probe trajectory, SVM accuracy (%) at epoch (mean over the seeds done):", "",
              "| dataset | variant | epoch: SVM |", "|---|---|---|"] + traj
    for title, pairs in REPRODUCTIONS:
        lines += ["", f"## Reproduction, {title}", ""] + reproduction(done, args.datasets, pairs)
    return "\n".join(lines) + "\n"


REPRODUCTIONS = (  # (title, ((pair, reference variant, tsvq variant), ...))
    ("the paper preset (the reference's decoder)", (("reg", "ref-reg", "tsvq-reg-dec"), ("BT-s", "ref-bts", "tsvq-bts-dec"))),
    ("decoder=mirror", (("reg", "ref-reg", "tsvq-reg"), ("BT-s", "ref-bts", "tsvq-bts"))))
PAIRS = tuple(p for _, pairs in REPRODUCTIONS for p in pairs)


def reproduction(done: dict, datasets, pairs) -> list[str]:
    """The issue's test per dataset: tsvq's final SVM (its own protocol) against the reference code's
    (its own protocol), mean over the seeds, and whether tsvq lies within one seed standard deviation
    of the reference; and each code's SSL gain (BT-s minus reg). ``done``: {(dataset, variant): finished
    runs}; ``pairs``: ((pair, reference variant, tsvq variant), ...)."""
    from scipy.stats import ttest_ind

    lines = ["Final SVM (%), mean over seeds (n); each code's seed standard deviation; tsvq minus reference, "
             "whether that is within the reference's standard deviation, and the p-value of Welch's t-test of the "
             "two codes' seeds; each code's SSL gain (BT-s minus reg).", "",
             "| dataset | pair | reference (n) | reference std | tsvq (n) | tsvq std | tsvq - reference | within 1 std "
             "| p (Welch) |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    gains = []
    for dataset in datasets:
        means = {}
        for pair, ref, ours in pairs:
            r = [x["svm"] * 100 for x in done[dataset, ref]]
            t = [x["svm"] * 100 for x in done[dataset, ours]]
            if not r or not t:
                continue
            m_ref, m_ours = statistics.mean(r), statistics.mean(t)
            means[pair] = (m_ref, m_ours)
            if len(r) > 1:
                sd = statistics.stdev(r)
                sd_text, within = f"{sd:.1f}", "yes" if abs(m_ours - m_ref) <= sd else "no"
            else:
                sd_text = within = "–"
            sd_ours = f"{statistics.stdev(t):.1f}" if len(t) > 1 else "–"
            with warnings.catch_warnings():  # scipy warns on a sample of equal values (two seeds, one accuracy);
                warnings.simplefilter("ignore", RuntimeWarning)  # the test still stands on the other's variance
                p = ttest_ind(t, r, equal_var=False).pvalue if min(len(r), len(t)) > 1 else float("nan")
            lines.append(f"| {dataset} | {pair} | {m_ref:.1f} ({len(r)}) | {sd_text} | "
                         f"{m_ours:.1f} ({len(t)}) | {sd_ours} | {m_ours - m_ref:+.1f} | {within} | "
                         f"{'–' if p != p else f'{p:.2f}'} |")
        if len(means) == 2:
            gains.append((dataset, means["BT-s"][0] - means["reg"][0], means["BT-s"][1] - means["reg"][1]))
    lines += ["", "| dataset | SSL gain, reference | SSL gain, tsvq |", "|---|---:|---:|"]
    lines += [f"| {d} | {g_ref:+.1f} | {g_ours:+.1f} |" for d, g_ref, g_ours in gains]
    if gains:
        lines.append(f"| mean | {sum(g[1] for g in gains) / len(gains):+.1f} | "
                     f"{sum(g[2] for g in gains) / len(gains):+.1f} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["GunPoint", "ECG200", "CBF", "ItalyPowerDemand"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--ref-code", type=Path, help="extracted reference repository (the runner's cwd)")
    ap.add_argument("--ref-python", help="python of the reference's virtual environment")
    ap.add_argument("--runs", type=Path, default=Path("runs/ncvqvae-reference"))
    ap.add_argument("--table", type=Path, help="write the tables of the finished runs here and exit")
    args = ap.parse_args(argv)
    if args.table:
        text = table(args)
        args.table.write_text(text)
        print(text)
        return 0
    if any(v in REF for v in args.variants) and not (args.ref_code and args.ref_python):
        ap.error("reference variants need --ref-code and --ref-python")
    for seed in args.seeds:
        for dataset in args.datasets:
            for variant in args.variants:
                print(f"{dataset} {variant} seed {seed}", flush=True)
                run_one(args, dataset, variant, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
