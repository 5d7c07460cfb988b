"""Metric tables: ``metrics.md`` of a run and the terminal table of the CLI."""
from __future__ import annotations

import math


# What each metric of metrics.json / summary.json is, with its unit (accuracies are fractions in [0, 1]).
METRIC_DOCS = {
    "svm_accuracy": "test accuracy (fraction) of a linear SVM trained on the train split's probe features "
                    "(average-pooled z_q for tokenizers), MinMax-scaled to (-1, 1)",
    "knn1_accuracy": "test accuracy (fraction) of a 1-nearest-neighbour classifier on the same features",
    "knn5_accuracy": "test accuracy (fraction) of a 5-nearest-neighbour classifier on the same features",
    "knn10_accuracy": "test accuracy (fraction) of a 10-nearest-neighbour classifier on the same features",
    "silhouette": "mean silhouette score in [-1, 1] of a k-means clustering (k = number of classes) of the "
                  "test features: how well separated the clusters are",
    "intrinsic_dim_95": "number of principal components that explain 95 % of the test features' variance",
    "test_mse_time": "mean squared error between test series and their reconstructions (scaled data units)",
    "test_mse_timefreq": "the same in the STFT (time-frequency) domain",
    "test_ms_ssim": "multi-scale structural similarity of test reconstructions, 1 = identical",
    "test_perplexity": "exp(entropy) of the code usage on the test split: the effective number of codes used",
    "test_fraction_used": "fraction of the codebook's codes used at least once on the test split",
    "epochs": "training epochs run", "steps": "optimiser steps run",
    "epoch_time_s": "mean wall time of an epoch in this session (seconds; probes and checkpoint saves included)",
    "final_train_loss": "training loss of the last epoch",
    "train_wall_s_this_session": "wall time of the training in this session (seconds; resumed runs count anew)",
    "checkpoint": "checkpoint whose model these metrics describe", "checkpoint_step": "its optimiser step",
    "eval_split": "split the test metrics come from",
    "label_metrics": "why the label-based metrics (probes, silhouette, CAS) are absent",
    "fid": "Fréchet distance between FCN features of generated and real test series (lower is better)",
    "is_mean": "Inception Score of the generated series with the FCN classifier (mean over 10 splits)",
    "is_std": "its standard deviation over the splits",
    "cas": "Classification Accuracy Score (fraction): accuracy on the real test split of an FCN trained on "
           "class-conditional samples only (train on synthetic, test on real)",
    "fcn_test_accuracy": "the FCN evaluator's own accuracy on the real test split (a sanity check of FID / IS)",
    "fcn_source": "where the FCN evaluator's weights come from",
    "n_generated": "unconditional samples drawn for FID / IS", "n_cas": "class-conditional samples drawn for CAS",
    "fid_test_reconstruction": "FID of the tokenizer's reconstructions of the test split: the floor a prior "
                               "on these tokens cannot beat",
    "is_real_test": "Inception Score of the real test split (the reference for is_mean)",
    "prior_epochs": "epochs of the MaskGIT prior", "prior_steps": "its optimiser steps",
    "prior_final_loss": "its last training loss (cross-entropy on masked tokens)",
    "prior_masked_accuracy": "its accuracy (fraction) at predicting masked training tokens",
    "prior_wall_s_this_session": "wall time of the prior's training in this session (seconds)",
}


def metrics_markdown(title: str, metrics: dict) -> str:
    """``metrics`` as a Markdown document with heading ``title`` and a table of name, value and what
    the metric is (:data:`METRIC_DOCS`)."""
    def value(v):
        return f"{v:.4f}" if isinstance(v, float) else f"{v}"

    rows = "\n".join(f"| {k} | {value(v)} | {METRIC_DOCS.get(k, '')} |" for k, v in metrics.items())
    return f"# {title}\n\n| metric | value | what it is |\n|---|---:|---|\n{rows}\n"


def run_title(cfg) -> str:
    """``"<model> on <dataset> (preset <p>, seed <s>)"`` of a stage-1 run config."""
    return f"{cfg.model} on {cfg.dataset} (preset {cfg.preset}, seed {cfg.seed})"


def format_table(metrics: dict) -> str:
    """``metrics`` as aligned ``name  value`` lines (floats with 4 decimals)."""
    width = max(len(k) for k in metrics)
    lines = []
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f"{v:.4f}" if math.isfinite(v) else str(v)
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)


def mean_std(values, scale: float = 1.0, digits: int = 1) -> str:
    """``"mean ± std"`` (sample standard deviation) of the values that are not None, each times
    ``scale``, with ``digits`` decimals; the value alone when there is one, ``"–"`` when none."""
    import statistics

    values = [v * scale for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
