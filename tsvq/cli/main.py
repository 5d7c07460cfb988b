"""The ``tsvq`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The registry's trainable models (tsvq.models.TRAINABLE) and the presets of tsvq.config (stage 1
# and prior), written out so that --help and bad arguments are answered without importing torch;
# tests/cli/test_main.py checks that they equal the registry's and the configs'.
TRAIN_MODELS = ("vqvae", "ncvqvae", "vae", "mssim_vae", "simclr", "barlow_twins", "vicreg", "vibcreg", "byol")
PRESET_NAMES = ("quick", "paper", "timevqvae")


def _default_out(args) -> str:
    """``runs/MODEL-DATASET-PRESET-seedS``, plus ``-`` and 8 hex digits of a hash of the ``--set`` (and
    ``--prior-set``) items when there are any, so that runs with other settings get other folders."""
    out = f"runs/{args.model}-{args.dataset}-{args.preset}-seed{args.seed}"
    sets = [*args.set, *(f"prior:{s}" for s in getattr(args, "prior_set", []))]
    if sets:
        import hashlib

        out += "-" + hashlib.sha256("\n".join(sets).encode()).hexdigest()[:8]
    return out


def _check_run_dir(run_dir: str) -> None:
    """Refuse a path that is not a run directory before any heavy import."""
    config = Path(run_dir) / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: not a tsvq run directory")


def _check_dataset(args) -> None:
    """Refuse a dataset-name typo or a missing ``--data`` path before any heavy import (see
    :mod:`tsvq.data.catalog`); with ``--data``, the dataset takes the file's or folder's name and
    the path is made absolute (the run directory must find it from anywhere)."""
    from ..data.catalog import check_name, check_path, data_name

    if args.data is not None:
        check_path(args.data)
        args.data = str(Path(args.data).resolve())
        args.dataset = data_name(args.data)
    else:
        check_name(args.dataset, args.data_dir)


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
    _check_dataset(args)
    from ..config import resolve_config
    from ..recipes.stage1 import train
    from ..report.tables import format_table

    cfg = resolve_config(args.model, args.dataset, args.preset, args.set, args.seed, args.data_dir, args.data)
    out = args.out or _default_out(args)
    metrics = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    print(f"\n{args.model} on {args.dataset} ({args.preset}, seed {args.seed}) -> {out}")
    print(format_table(metrics))
    return 0


def _data(args) -> int:
    from ..data.catalog import check_name, check_path

    source = args.source
    path_like = Path(source).exists() or "/" in source or "." in Path(source).name
    check_path(source, "source") if path_like else check_name(source, args.data_dir)
    from ..data import load_dataset

    ds = load_dataset(Path(source) if path_like else source, args.data_dir, args.length, args.nan,
                      require_test=False)
    info = ds.summary()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lo, hi = info["raw_lengths"]
    print(f"{info['name']}  ({info['source']})")
    print(f"  series        train {info['n_train']}, test {info['n_test'] if info['n_test'] is not None else 'none'}")
    print(f"  channels      {info['channels']}")
    print(f"  length        {info['length']}" + (f" (resampled from {lo}..{hi})" if (lo, hi) != (ds.length, ds.length) else ""))
    print(f"  NaN           {info['interpolated_nan']} interpolated inside series" if info["interpolated_nan"]
          else "  NaN           none inside series")
    if not info["labelled"]:
        print("  labels        none (unlabelled: label-based metrics will be skipped)")
    else:
        for split, counts in info["classes"].items():
            print(f"  {split + ' classes':14s}{len(counts)}: " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    return 0


def _evaluate(args) -> int:
    _check_run_dir(args.run_dir)
    from ..recipes.generation import evaluate_all
    from ..report.tables import format_table

    metrics = evaluate_all(args.run_dir, args.checkpoint, args.fcn_weights, args.seed)
    print(format_table(metrics))
    return 0


def _prior(args) -> int:
    _check_run_dir(args.run_dir)
    from ..config import resolve_prior_config
    from ..recipes.prior import train_prior
    from ..report.tables import format_table

    cfg = resolve_prior_config(args.preset, args.set, args.seed)
    summary = train_prior(args.run_dir, cfg, resume=args.resume, progress=not args.no_progress)
    print(f"\nMaskGIT prior ({args.preset}) -> {args.run_dir}/prior")
    print(format_table(summary))
    return 0


def _sample(args) -> int:
    _check_run_dir(args.run_dir)
    from ..recipes.prior import sample_to_file

    info = sample_to_file(args.run_dir, args.out, args.n, args.class_index, args.guidance, args.seed)
    print(f"wrote {info['n']} samples ({info['units']} units) to {info['path']} and a plot next to it")
    return 0


def _pipeline(args) -> int:
    _check_dataset(args)
    from ..config import resolve_config, resolve_prior_config
    from ..engine.run_dir import RunDir
    from ..recipes.fcn import check_fcn_weights, check_published_channels
    from ..recipes.generation import evaluate_all
    from ..recipes.prior import check_prior_config, prior_dir, train_prior
    from ..recipes.stage1 import train
    from ..report.tables import format_table

    cfg = resolve_config(args.model, args.dataset, args.preset, args.set, args.seed, args.data_dir, args.data)
    pcfg = resolve_prior_config(args.preset, args.prior_set, args.seed)
    out = Path(args.out or _default_out(args))
    # Every input of every stage is checked before the first one starts: both configs against
    # what OUT already holds (a finished stage is reused only with the same config), the prior's
    # settings, and the FCN weights.
    stage1, prior = RunDir(out), prior_dir(out)
    stage1.check_config(cfg, stage1.last_checkpoint.exists(), "use another --out or the same settings")
    prior.check_config(pcfg, prior.last_checkpoint.exists(), "use another --out or the same --prior-set")
    check_prior_config(pcfg)
    if check_fcn_weights(args.fcn_weights, args.dataset) is not None:
        from ..recipes.stage1 import load_dataset_of

        check_published_channels(args.fcn_weights, load_dataset_of(cfg).channels)
    if not (out / "metrics.json").exists():  # stage 1 (resumes an interrupted run)
        train(cfg, out, resume=stage1.last_checkpoint.exists(), progress=not args.no_progress)
    if not (out / "prior" / "summary.json").exists():
        train_prior(out, pcfg, resume=prior.last_checkpoint.exists(), progress=not args.no_progress)
    metrics = evaluate_all(out, "best", args.fcn_weights, args.seed)
    print(f"\n{args.model} + maskgit on {args.dataset} ({args.preset}, seed {args.seed}) -> {out}")
    print(format_table(metrics))
    return 0


DATA_HELP = ("your own data: a .npz (x_train [N, L] or [N, C, L], optional y_train, x_test, y_test), a .npy, "
             "a .csv/.tsv in the UCR layout (label, then the values; <name>_TEST.* next to <name>_TRAIN.* is the "
             "test split), a .ts file, or a folder holding <name>_TRAIN.*; its name names the run")


def _data_args(p) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", help="UCR or UEA archive name, e.g. GunPoint or BasicMotions")
    which.add_argument("--data", metavar="PATH", help=DATA_HELP)
    p.add_argument("--data-dir", default=None,
                   help="archive root (<Name>/<Name>_TRAIN.tsv or .ts); default $TSVQ_DATA_DIR, then aeon")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsvq", description="Vector-quantized models for time series.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="print what was built (torch, CUDA kernels, arch list, OpenMP)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = sub.add_parser("data", help="print what tsvq reads from a dataset name or a data file",
                       description="Load a dataset as tsvq train would and print it: series per split, channels, "
                                   "length (and the lengths before resampling), NaN found, classes and their counts.")
    p.add_argument("source", help="an archive name (GunPoint, BasicMotions, ...) or a data file / folder")
    p.add_argument("--data-dir", default=None, help="archive root; default $TSVQ_DATA_DIR, then aeon")
    p.add_argument("--length", type=int, default=None, help="resample to this length (default: the longest series)")
    p.add_argument("--nan", default="refuse", choices=["refuse", "interpolate"], help="NaN inside a series")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_data)

    p = sub.add_parser("train", help="train a stage-1 model on a dataset and evaluate it",
                       description="Train MODEL on a UCR / UEA dataset (official split) or your own data with PyTorch Lightning, then "
                                   "evaluate it (linear-probe SVM, KNN, silhouette, PCA dimension; reconstruction "
                                   "MSE / MS-SSIM where the model reconstructs; codebook perplexity for tokenizers) and write config.yaml, checkpoints, metrics.json/.md "
                                   "and plots to --out.")
    p.add_argument("model", choices=TRAIN_MODELS, help="model name from the registry")
    _data_args(p)
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES,
                   help="quick: minutes on a CPU (500 epochs but at most 500 steps, projector 1024); paper: SPEC "
                        "settings (1000 epochs); timevqvae (tokenizers): the TimeVQVAE paper's two-branch LF/HF "
                        "tokenizer, EMA decay 0.8, 2000 epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run field (epochs, max_steps, batch_size, lr, weight_decay, scaling, accelerator, devices, "
                        "precision, probe_every, holdout, length, nan) or a model config field (e.g. ssl_loss=vibcreg, augmentation=gauss); repeatable")
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--out", default=None, help="run directory (default runs/MODEL-DATASET-PRESET-seedS, plus -HASH of the --set items when given)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="recompute the metrics of a run directory (plus FID/IS/CAS with a prior)",
                       description="Recompute the stage-1 metrics of RUN_DIR from its checkpoint; when RUN_DIR has a "
                                   "prior (tsvq prior), also sample from it and report FID, IS and CAS with an FCN "
                                   "evaluator (TimeVQVAE protocol) and the FCN's own test accuracy.")
    p.add_argument("run_dir", help="directory written by tsvq train")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"],
                   help="which stage-1 checkpoint (default best)")
    p.add_argument("--fcn-weights", default=None, metavar="DIR",
                   help="folder of published per-dataset FCN weights (<Name>.ckpt, e.g. "
                        "../shared/fcn/supervised_fcn_v1) or one file; default: train tsvq's own FCN")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.set_defaults(func=_evaluate)

    prior_sets = ("override a prior run field (epochs, max_steps, batch_size, lr, weight_decay, fcn_epochs, "
                  "cas_epochs, checkpoint, accelerator, devices, precision) or a maskgit field (hidden, n_layers, n_heads, "
                  "dropout, class_dropout, n_steps, choice_temperature, temperature, guidance_scale); repeatable")
    p = sub.add_parser("prior", help="train the MaskGIT prior on a stage-1 run",
                       description="Train the MaskGIT prior (class-conditional, classifier-free guidance) on the "
                                   "tokens of the frozen tokenizer in RUN_DIR; writes RUN_DIR/prior.")
    p.add_argument("run_dir", help="directory written by tsvq train")
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES,
                   help="quick: hidden 128, 2 layers, 500 steps (minutes on a CPU), own FCN 200 epochs, CAS "
                        "classifier 30; paper (and timevqvae): SPEC prior (256, 4 layers, 2 heads), 10000 epochs, "
                        "FCNs 1000")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=prior_sets)
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/prior/checkpoints/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_prior)

    p = sub.add_parser("sample", help="sample series from the prior of a run",
                       description="Iterative decoding with the prior of RUN_DIR, decoded by the tokenizer; writes "
                                   "an .npz (x [n, C, L] in data units, y) and a plot of samples next to real series.")
    p.add_argument("run_dir", help="directory with a trained prior")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--class", dest="class_index", type=int, default=None,
                   help="class index (0-based, label-encoded); default unconditional")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default from config: 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--out", default=None,
                   help="output .npz (default RUN_DIR/prior/samples-<classK|all>-n<N>-seed<S>.npz)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("pipeline", help="stage 1 -> prior -> FID/IS/CAS on a dataset in one command",
                       description="Train MODEL (tsvq train), its MaskGIT prior (tsvq prior) and evaluate everything "
                                   "(tsvq evaluate); finished steps are skipped, so an interrupted pipeline resumes.")
    p.add_argument("model", choices=["vqvae", "ncvqvae"], help="stage-1 model")
    _data_args(p)
    p.add_argument("--preset", default="quick", choices=PRESET_NAMES,
                   help="preset of both stages (timevqvae: the TimeVQVAE paper's two-branch tokenizer, 2000 epochs, "
                        "and the SPEC prior: the setting of its FID / IS / CAS table)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="stage-1 override (as tsvq train)")
    p.add_argument("--prior-set", action="append", default=[], metavar="KEY=VALUE", help=prior_sets)
    p.add_argument("--fcn-weights", default=None, metavar="DIR", help="published FCN weights (as tsvq evaluate)")
    p.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    p.add_argument("--out", default=None, help="run directory (default runs/MODEL-DATASET-PRESET-seedS, plus -HASH of the --set items when given)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_pipeline)
    return parser


# What bad command-line input raises in tsvq (each message names the argument and what was
# expected): the command prints the message, like argparse's own usage errors, instead of a
# traceback. Anything else (a TypeError, a RuntimeError) is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError)


def main(argv=None) -> int:
    """Run the ``tsvq`` command line; returns the exit status (0, or 2 with ``tsvq CMD: error: ...``
    on stderr for bad input: an unknown dataset or key, a run directory that is not one, ...)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        lightning = sys.modules.get("lightning.fabric.utilities.exceptions")  # its settings checks
        if not isinstance(e, USER_ERRORS + ((lightning.MisconfigurationException,) if lightning else ())):
            raise
        print(f"tsvq {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
