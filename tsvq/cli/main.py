"""The ``tsvq`` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
    import tsvq

    info = tsvq.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"tsvq {tsvq.__version__}")
    for key, value in info.items():
        print(f"  {key:22s} {value}")
    return 0


def _train(args) -> int:
    from ..train import format_table, resolve_config, train

    cfg = resolve_config(args.model, args.dataset, args.preset, args.set, args.seed, args.data_dir)
    out = args.out or f"runs/{args.model}-{args.dataset}-{args.preset}-seed{args.seed}"
    metrics = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    print(f"\n{args.model} on {args.dataset} ({args.preset}, seed {args.seed}) -> {out}")
    print(format_table(metrics))
    return 0


def _evaluate(args) -> int:
    from ..train import evaluate_run, format_table

    metrics = evaluate_run(args.run_dir, args.checkpoint)
    print(format_table(metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsvq", description="Vector-quantized models for time series.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="print what was built (torch, CUDA kernels, arch list, OpenMP)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = sub.add_parser("train", help="train a stage-1 model on a UCR dataset and evaluate it",
                       description="Train MODEL on a UCR dataset (official split) with PyTorch Lightning, then "
                                   "evaluate it (linear-probe SVM, KNN, silhouette, PCA dimension, reconstruction "
                                   "MSE, codebook perplexity) and write config.yaml, checkpoints, metrics.json/.md "
                                   "and plots to --out.")
    p.add_argument("model", choices=["vqvae", "ncvqvae"], help="model name from the registry")
    p.add_argument("--dataset", required=True, help="UCR dataset name, e.g. GunPoint")
    p.add_argument("--data-dir", default=None,
                   help="UCR archive root (<Name>/<Name>_TRAIN.tsv); default $TSVQ_DATA_DIR, then aeon")
    p.add_argument("--preset", default="quick", choices=["quick", "paper"],
                   help="quick: minutes on a CPU (500 epochs but at most 500 steps, projector 1024); paper: SPEC "
                        "settings (1000 epochs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run field (epochs, max_steps, batch_size, lr, weight_decay, scaling, accelerator, devices, "
                        "precision, probe_every) or a model config field (e.g. ssl_loss=vibcreg, augmentation=gauss); repeatable")
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--out", default=None, help="run directory (default runs/MODEL-DATASET-PRESET-seedS)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="recompute the metrics of a run directory from its checkpoint")
    p.add_argument("run_dir", help="directory written by tsvq train")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint (default best)")
    p.set_defaults(func=_evaluate)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
