"""Run the NC-VQVAE reference code (erlendlokna/Generative-SSL-VQVAE-modelling @ 4b905c6) on one
UCR dataset at its own settings and write its probe trajectory, reconstruction and timing as JSON.

Run from the root of an extracted copy of that repository, with its dependencies installed (see
README.md here); nothing of it is imported by tsvq. The reference's own trainer code is used
(``Exp_VQVAE`` / ``Exp_SIAM_VQVAE``, its data pipeline, augmenter, probes and Lightning loop); this
driver only sets the config, seeds numpy as well as torch (the reference draws its augmentations
from numpy's global generator unseeded), records what the reference logs to wandb, turns off its
t-SNE / UMAP / codebook plots (they do not touch the model), and uses no DataLoader worker
processes (the reference's 8 workers would be re-spawned every epoch on a 2-core CPU).

    python run_reference.py --dataset GunPoint --method regular --seed 0 --epochs 1000 --out r.json
    python run_reference.py --dataset GunPoint --method barlowtwins --views slice --seed 0 ...
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

VIEW_SETS = {"slice": ["slice_and_shuffle"], "gauss": ["gaussian_noise"], "warp": ["window_warp", "amplitude_resize"]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", choices=["regular", "barlowtwins", "vibcreg", "vicreg"], required=True)
    p.add_argument("--views", choices=sorted(VIEW_SETS), default="slice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--probe-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    sys.path.insert(0, os.getcwd())
    import numpy as np
    import torch
    import wandb

    torch.set_num_threads(args.threads)
    log: list[dict] = []
    state = {"epoch": 0, "batches": 0}

    def record(d, *a, **k):
        row = {"epoch": state["epoch"] if state["batches"] else 0}
        for key, v in d.items():
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = float(v)
            if isinstance(v, (int, float, np.floating)):
                row[key] = float(v)
        log.append(row)

    wandb.log = record
    import types

    import pytorch_lightning as pl
    sys.modules.setdefault("umap.plot", types.ModuleType("umap.plot"))  # plotting extras, unused here

    from evaluation.downstream_eval import DownstreamEval
    from preprocessing.data_pipeline import build_data_pipeline
    from preprocessing.preprocess_ucr import UCRDatasetImporter
    from utils import load_yaml_param_settings

    for name in ("log_tsne", "log_umap", "log_codebook_similarity", "log_token_usage", "log_corr_vs_usage"):
        setattr(DownstreamEval, name, lambda self, *a, **k: None)

    config = load_yaml_param_settings("configs/config.yaml")
    config["dataset"]["dataset_name"] = args.dataset
    config["dataset"]["num_workers"] = 0
    config["trainer_params"]["max_epochs"]["stage1"] = args.epochs
    config["VQVAE"]["probe_test_per"] = args.probe_every
    config["SSL"]["stage1_method"] = "" if args.method == "regular" else args.method
    config["augmentations"]["time_augs"] = VIEW_SETS[args.views]
    config["seed"] = args.seed

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    importer = UCRDatasetImporter(**config["dataset"])
    bs = config["dataset"]["batch_sizes"]["stage1"]
    ssl = args.method != "regular"
    train = build_data_pipeline(bs, importer, config, augment=ssl, kind="train")
    test = build_data_pipeline(bs, importer, config, augment=False, kind="test")
    length = train.dataset.X.shape[-1]
    if ssl:
        from experiments.exp_siam_vqvae import Exp_SIAM_VQVAE as Exp
    else:
        from experiments.exp_vqvae import Exp_VQVAE as Exp
    exp = Exp(length, config=config, n_train_samples=len(train.dataset), train_data_loader=train,
              test_data_loader=test)

    class Clock(pl.Callback):
        """Epoch counter for the log rows and the time of the training batches alone."""

        def __init__(self):
            self.batch_s, self.t0 = 0.0, 0.0

        def on_train_epoch_start(self, trainer, module):
            state["epoch"] = trainer.current_epoch + 1

        def on_train_batch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *a):
            self.batch_s += time.perf_counter() - self.t0
            state["batches"] += 1

    clock = Clock()
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, max_epochs=args.epochs, accelerator="cpu", devices=1,
                         check_val_every_n_epoch=20, callbacks=[clock])
    t = time.perf_counter()
    trainer.fit(exp, train_dataloaders=train, val_dataloaders=test)
    wall = time.perf_counter() - t

    # Test reconstruction of the final model over the whole test split (the reference logs it per
    # batch of 128 every 20 epochs; the per-epoch rows below average its batches).
    exp.eval()
    sq_t, sq_u, n = 0.0, 0.0, 0
    with torch.no_grad():
        for x, y in test:
            out = exp.forward((x, y), training=False) if ssl else exp.forward((x, y))
            sq_t += float(out[0]["orig.time"]) * len(x)
            sq_u += float(out[0]["orig.timefreq"]) * len(x)
            n += len(x)
    # The reference probes in training mode (encoder BatchNorm on batch statistics, the EMA codebook
    # updated by the probe's train and test batches). The same final model probed in eval mode
    # (running statistics, no codebook update), as tsvq probes, separates model from protocol.
    from evaluation.downstream_eval import probes as reference_probes
    z_tr, z_te, y_tr, y_te, _, _ = exp.downstream_eval.encode_data(exp.encoder, exp.vq_model, device="cpu")
    eval_mode = reference_probes(z_tr, z_te, y_tr, y_te)
    probes = [r for r in log if "svm_accuracy" in r]
    by_epoch: dict[int, list] = {}
    for r in log:
        if "val_recons_loss.time" in r:
            by_epoch.setdefault(r["epoch"], []).append(r)
    val = [{"epoch": e, "val_recons_loss.time": float(np.mean([r["val_recons_loss.time"] for r in rs])),
            "val_recons_loss.timefreq": float(np.mean([r["val_recons_loss.timefreq"] for r in rs]))}
           for e, rs in sorted(by_epoch.items())]
    result = {
        "code": "erlendlokna/Generative-SSL-VQVAE-modelling@4b905c6",
        "dataset": args.dataset, "method": args.method, "views": args.views if ssl else None,
        "seed": args.seed, "epochs": args.epochs, "threads": args.threads,
        "final": {"svm_accuracy": probes[-1]["svm_accuracy"], "knn5_accuracy": probes[-1]["knn_accuracy"],
                  "test_mse_time": sq_t / n, "test_mse_timefreq": sq_u / n},
        "final_train_perplexity": next((r["perplexity"] for r in reversed(log) if "perplexity" in r), None),
        "final_eval_mode": {"svm_accuracy": float(eval_mode["svm_accuracy"]),
                            "knn5_accuracy": float(eval_mode["knn_accuracy"])},
        "probes": [{"epoch": r["epoch"], "svm": r["svm_accuracy"], "knn5": r["knn_accuracy"]} for r in probes],
        "test_recon": [{"epoch": r["epoch"], "mse_time": r["val_recons_loss.time"],
                        "mse_timefreq": r["val_recons_loss.timefreq"]} for r in val],
        "train_batches_s": clock.batch_s, "wall_s": wall, "s_per_epoch_batches": clock.batch_s / args.epochs,
    }
    tmp = Path(args.out + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    print(json.dumps(result["final"]), f"{wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
