"""Stage-1 runs (``tsvq train`` / ``tsvq evaluate``): data, model, training, evaluation, report.

A run directory (:class:`tsvq.engine.run_dir.RunDir`) is complete and self-describing:

    config.yaml                 the resolved :class:`tsvq.config.RunConfig`, written before training
    scaler.json                 the fitted scaling of the data
    checkpoints/last.ckpt       the final model (plus periodic saves); best.ckpt: lowest training loss
    logs/sessionN/metrics.csv   Lightning CSV log of each training session (a resume adds one)
    metrics.json, metrics.md    the evaluation (:mod:`tsvq.eval`) of the checkpoint they name
    reconstructions.png, codebook_usage.png, latent_pca.png, loss_curves.png (probe_curves.png)
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from .. import eval as tsvq_eval
from ..config import RunConfig
from ..data import GlobalScaler, TimeSeriesDataset, load_dataset
from ..engine.features import encode_split
from ..engine.run_dir import RunDir
from ..models import create_model
from ..report.plots import stage1_plots
from ..report.tables import metrics_markdown, run_title

RUN_HINT = "use a new --out directory"
UNLABELLED_NOTE = "skipped: the data has no labels (linear probe, KNN, silhouette and probe_every need classes)"


class Scaler:
    """The run's scaling: "global" (:class:`tsvq.data.GlobalScaler`, TimeVQVAE, per channel) or
    "znorm" (per series and channel)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.global_ = GlobalScaler()

    def fit(self, x: torch.Tensor) -> "Scaler":
        if self.kind == "global":
            self.global_.fit(x)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "global":
            return self.global_.transform(x)
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-8)

    def state_dict(self) -> dict:
        return {"kind": self.kind, **(self.global_.state_dict() if self.kind == "global" else {})}


def holdout_split(ds: TimeSeriesDataset, fraction: float, seed: int = 0) -> TimeSeriesDataset:
    """A hold-out split of the TRAIN split (``sklearn.model_selection.train_test_split``, fixed
    ``random_state=seed``, stratified by class when labelled), returned as a dataset whose "test"
    fields are the held-out series. For data without a test split (train-only copies of larger UCR
    datasets, a user's recordings): the result is a validation split, never an official test set.

    Raises:
        ValueError: ``fraction`` not in (0, 1), or a class too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {fraction}")
    idx = np.arange(len(ds.x_train))
    stratify = ds.y_train.numpy() if ds.labelled else None
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    y = (lambda i: ds.y_train[i]) if ds.labelled else (lambda i: None)  # noqa: E731
    return dataclasses.replace(ds, x_train=ds.x_train[tr], y_train=y(tr), x_test=ds.x_train[va], y_test=y(va))


def load_dataset_of(cfg: RunConfig) -> TimeSeriesDataset:
    """The dataset of a run, unscaled: ``cfg.data`` (a user file or folder) or the archive dataset
    ``cfg.dataset``; with ``cfg.holdout > 0`` its "test" split is a hold-out of TRAIN.

    Raises:
        FileNotFoundError: unknown dataset or path. ValueError: malformed data, or no test split
            and ``holdout`` is 0.
    """
    ds = load_dataset(cfg.data or cfg.dataset, cfg.data_dir, cfg.length, cfg.nan, require_test=cfg.holdout == 0)
    if cfg.holdout > 0:
        return holdout_split(ds, cfg.holdout)
    if ds.x_test is None:
        raise ValueError(f"{ds.name} has no test split ({ds.source}); evaluate on a hold-out of the train split "
                         "with --set holdout=0.2, or give the test series (x_test, or a <name>_TEST file)")
    return ds


def load_data(cfg: RunConfig):
    """Load and scale the dataset of a run: ``(dataset, x_train, x_test, scaler state)``; see
    :func:`load_dataset_of`.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_dataset_of`.
    """
    ds = load_dataset_of(cfg)
    scaler = Scaler(cfg.scaling).fit(ds.x_train)
    return ds, scaler.transform(ds.x_train), scaler.transform(ds.x_test), scaler.state_dict()


def check_data(ds, x_train: torch.Tensor, x_test: torch.Tensor, cfg: RunConfig | None = None) -> None:
    """Refuse data a run cannot train on or evaluate, before anything is written: fewer than 2
    train series (batch statistics), an empty test split, labelled data with one class only
    (probes, silhouette), non-finite values, constant data (zero range after scaling), or series
    too short for the model's STFT (``L <= n_fft // 2``).

    Raises:
        ValueError: naming the dataset and what is wrong.
    """
    if len(x_train) < 2:
        raise ValueError(f"{ds.name}: the train split holds {len(x_train)} series; training needs at least 2")
    if len(x_test) < 1:
        raise ValueError(f"{ds.name}: the test split is empty")
    if ds.labelled and int(torch.unique(ds.y_train).numel()) < 2:
        raise ValueError(f"{ds.name}: the train split holds one class; the linear probe, KNN and silhouette "
                         "need at least 2")
    for split, x in (("train", x_train), ("test", x_test)):
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if bool(bad.any()):
            raise ValueError(f"{ds.name}: {split} series {int(bad.nonzero()[0, 0])} holds NaN or inf after scaling")
    if float(x_train.max() - x_train.min()) == 0.0:
        raise ValueError(f"{ds.name}: every train series is constant (zero range after scaling): nothing to learn")
    n_fft = getattr(cfg.model_config, "n_fft", None) if cfg is not None else None
    if n_fft is not None and x_train.shape[-1] <= n_fft // 2:
        raise ValueError(f"{ds.name}: the series are {x_train.shape[-1]} steps long, too short for the STFT with "
                         f"n_fft={n_fft} (reflect padding needs more than n_fft // 2 = {n_fft // 2}); resample them "
                         f"with --set length=L (L > {n_fft // 2}) or use a smaller n_fft")


def build_model(cfg: RunConfig, in_channels: int, length: int, data_range: float | None = None):
    """The model of a run for data of ``in_channels`` x ``length`` (MS-SSIM-VAE: its ``data_range``
    from the scaled train split unless the config sets one).

    Raises:
        ValueError: what the model's constructor rejects.
    """
    overrides = dataclasses.asdict(cfg.model_config)
    overrides.update(in_channels=in_channels, length=length)
    if cfg.model == "mssim_vae" and overrides.get("data_range") is None and data_range is not None:
        overrides["data_range"] = data_range  # MS-SSIM's C1/C2 from the (scaled) train split
    return create_model(cfg.model, **overrides)


def evaluate_model(model, ds, x_train: torch.Tensor, x_test: torch.Tensor, batch_size: int = 256) -> dict:
    """Metrics of a trained model on the un-augmented splits (see :mod:`tsvq.eval`): probes (SVM,
    KNN), silhouette and PCA dimension of its probe features for every model; reconstruction MSE
    (and MS-SSIM) for the models that reconstruct; codebook statistics for tokenizers.

    Returns:
        ``{"metrics": dict, "features_test": Tensor[N, F], "codes_test": int64[N, tokens] or None}``.
    """
    data_range = float(x_train.max() - x_train.min())
    tr = encode_split(model, x_train, batch_size)
    te = encode_split(model, x_test, batch_size, data_range)
    f_tr, f_te = tr["features"], te["features"]
    n_classes = int(ds.n_classes)
    if ds.labelled:
        metrics = {
            "svm_accuracy": tsvq_eval.linear_probe(f_tr, ds.y_train, f_te, ds.y_test),
            **{f"knn{k}_accuracy": v for k, v in tsvq_eval.knn_probe(f_tr, ds.y_train, f_te, ds.y_test).items()},
            "silhouette": tsvq_eval.silhouette(f_te, n_clusters=n_classes) if 2 <= n_classes < len(f_te) else float("nan"),
        }
    else:
        metrics = {"label_metrics": UNLABELLED_NOTE}
    metrics["intrinsic_dim_95"] = tsvq_eval.intrinsic_dimension(f_te)
    if "mse_time" in te:
        metrics["test_mse_time"] = float(te["mse_time"].mean())
    if "mse_timefreq" in te:
        metrics["test_mse_timefreq"] = float(te["mse_timefreq"].mean())
    if "ms_ssim" in te:
        metrics["test_ms_ssim"] = float(te["ms_ssim"].mean())
    if "codes" in te:
        metrics.update({f"test_{k}": v for k, v in tsvq_eval.codebook_stats(te["codes"], model.n_codes).items()})
    return {"metrics": metrics, "features_test": f_te, "codes_test": te.get("codes")}


def probe_logger(ds, x_train: torch.Tensor, x_test: torch.Tensor, every: int):
    """An ``on_epoch_end`` hook for :class:`tsvq.engine.module.TrainModule` that logs the probe
    accuracies (and the test MSE) every ``every`` epochs."""

    def on_epoch_end(module, epoch: int):
        if not every or (epoch + 1) % every or not ds.labelled:
            return None
        f_tr = encode_split(module.model, x_train)["features"]
        te = encode_split(module.model, x_test)
        module.model.train()
        f_te = te["features"]
        logs = {"probe/svm_accuracy": tsvq_eval.linear_probe(f_tr, ds.y_train, f_te, ds.y_test),
                **{f"probe/knn{k}_accuracy": v for k, v in tsvq_eval.knn_probe(f_tr, ds.y_train, f_te, ds.y_test).items()}}
        if "mse_time" in te:
            logs["probe/test_mse_time"] = float(te["mse_time"].mean())
        return logs

    return on_epoch_end


def write_report(run: RunDir, cfg: RunConfig, model, ds, x_train, x_test, extra: dict) -> dict:
    """Evaluate ``model``, write ``metrics.json`` / ``metrics.md`` (the evaluation plus ``extra``)
    and the plots; returns the metrics."""
    result = evaluate_model(model, ds, x_train, x_test)
    split = (f"holdout {cfg.holdout:g} of TRAIN" if cfg.holdout > 0
             else "the data's TEST split" if cfg.data else "official TEST")
    metrics = {**result["metrics"], **extra, "eval_split": split}
    write_metrics(run, cfg, metrics)
    stage1_plots(run.path, model, ds, x_test, result["features_test"], result["codes_test"], run.session_logs())
    return metrics


def write_metrics(run: RunDir, cfg: RunConfig, metrics: dict) -> None:
    """``metrics.json`` and ``metrics.md`` of a stage-1 run, atomically."""
    run.write_json("metrics.json", metrics)
    run.write_text("metrics.md", metrics_markdown(run_title(cfg), metrics))


def train(cfg: RunConfig, out_dir: str | os.PathLike, resume: bool = False, progress: bool = True) -> dict:
    """Train ``cfg.model`` on ``cfg.dataset`` into ``out_dir`` and evaluate it; returns the metrics.

    Everything a bad setting can fail (data, model, Lightning's own checks) is checked before the
    first file is written, so a corrected command can reuse the directory.

    Raises:
        FileExistsError: ``out_dir`` holds a different run's config (use another --out or --resume).
        FileNotFoundError: unknown dataset; ``resume`` without a checkpoint to resume.
        ValueError: a setting the data, the model or Lightning rejects.
    """
    import lightning.pytorch as pl

    from ..engine.module import TrainModule, stage1_step
    from ..engine.trainer import fit, make_loader, make_trainer

    run = RunDir(out_dir)
    run.check_config(cfg, resume, RUN_HINT)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    ds, x_train, x_test, scaler_state = load_data(cfg)
    check_data(ds, x_train, x_test, cfg)
    model = build_model(cfg, x_train.shape[1], x_train.shape[2], float(x_train.max() - x_train.min()))
    loader, shuffle = make_loader(torch.utils.data.TensorDataset(x_train), cfg.batch_size, cfg.seed)
    module = TrainModule(model, stage1_step, cfg, len(loader), shuffle,
                         probe_logger(ds, x_train, x_test, cfg.probe_every))
    trainer = make_trainer(cfg, run, len(loader), progress)
    with run:
        run.write_config(cfg, resume, RUN_HINT)
        run.write_json("scaler.json", scaler_state)
        info = fit(trainer, module, loader, run, resume)
        model.cpu()
        return write_report(run, cfg, model, ds, x_train, x_test,
                            {**info, "checkpoint": "last", "checkpoint_step": info["steps"]})


def load_run(run_dir: str | os.PathLike, which: str = "best"):
    """Rebuild ``(cfg, model, dataset, x_train, x_test)`` of a run directory from its checkpoint.

    Raises:
        FileNotFoundError: not a run directory, or no checkpoint. ValueError: unreadable files.
    """
    return _load_run(run_dir, which)[:5]


def _load_run(run_dir, which: str):
    """:func:`load_run` plus the optimiser step of the checkpoint it loaded (read once)."""
    run = RunDir(run_dir)
    cfg = run.read_config(RunConfig)
    ds, x_train, x_test, _ = load_data(cfg)
    model = build_model(cfg, x_train.shape[1], x_train.shape[2], float(x_train.max() - x_train.min()))
    step = int(run.load_model_state(model, which)["global_step"])
    return cfg, model, ds, x_train, x_test, step


RUN_INFO = ("epochs", "steps", "train_wall_s_this_session", "epoch_time_s", "final_train_loss")


def evaluate_run(run_dir: str | os.PathLike, which: str = "best", extra: dict | None = None) -> dict:
    """Recompute ``metrics.json`` / ``metrics.md`` / plots of a run from its checkpoint ``which``,
    with ``extra`` metrics added (the training run info of the previous ``metrics.json`` is kept).

    Raises:
        FileNotFoundError: not a run directory, or no checkpoint. ValueError: unreadable run files.
    """
    run = RunDir(run_dir)
    cfg, model, ds, x_train, x_test, step = _load_run(run_dir, which)
    previous = run.read_json("metrics.json", {})
    keep = {k: v for k, v in previous.items() if k in RUN_INFO}
    with run:
        return write_report(run, cfg, model, ds, x_train, x_test,
                            {**keep, "checkpoint": which, "checkpoint_step": step, **(extra or {})})
