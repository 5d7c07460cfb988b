"""Generation evaluation of a run (``tsvq evaluate`` on a run with a prior, or a VAE run):
FID / IS / CAS with an FCN evaluator, following TimeVQVAE (Lee et al., AISTATS 2023, section 4).

FCN features of the real test set passed through the tokenizer's STFT -> ISTFT and of
``max(n_test, 256)`` unconditional samples for FID, the FCN softmax of the samples for IS (10
splits), and a fresh FCN trained on >= 1000 class-conditional samples (train class proportions)
and tested on the real test set for CAS. All series reach the FCN in data units scaled like the
published evaluator (:func:`tsvq.models.fcn.fcn_scale`). Files: ``metrics.json`` / ``metrics.md``
gain the generation metrics, ``samples.png`` shows samples next to real series, and
``fcn/fcn.pt`` caches tsvq's own FCN when no published weights are given.
"""
from __future__ import annotations

import os

import torch

from ..config import RunConfig
from ..engine.run_dir import RunDir
from ..eval import fid, inception_score
from ..models.fcn import fcn_predict, fcn_scale
from ..report.plots import sample_plot
from .fcn import cas, fcn_evaluator, fcn_on_test
from .prior import data_scaler, generate, load_prior, prior_dir
from .stage1 import evaluate_run, load_dataset_of, load_run


def class_counts(y_train: torch.Tensor, n_classes: int, total: int) -> torch.Tensor:
    """Samples per class for ``total`` samples with the train class proportions (largest remainders)."""
    p = torch.bincount(y_train, minlength=n_classes).double() / len(y_train)
    counts = torch.floor(p * total).long()
    rest = total - int(counts.sum())
    order = torch.argsort(p * total - counts, descending=True)
    counts[order[:rest]] += 1
    return counts


def evaluate_generation(run_dir: str | os.PathLike, fcn_weights: str | os.PathLike | None = None, seed: int = 0,
                        n_cas: int = 1000) -> dict:
    """FID / IS / CAS of the prior in ``run_dir`` (TimeVQVAE protocol, see the module docstring).

    Args:
        fcn_weights: a folder of published per-dataset FCN weights (``<Name>.ckpt``) or one file;
            None trains tsvq's own FCN on the train split (``fcn_epochs`` of the prior config,
            cached in ``run_dir/fcn``).
        seed: sampling seed. n_cas: class-conditional samples for CAS (>= 1000).

    Returns:
        dict: ``fid``, ``is_mean``, ``is_std``, ``cas``, ``fcn_test_accuracy`` (the evaluator's own
        accuracy on the real test set, a sanity line), ``fcn_source``, ``n_generated``, ``n_cas``,
        and two references: ``fid_test_reconstruction`` (FID of the tokenizer's reconstructions of
        the test set: the floor the prior cannot beat) and ``is_real_test`` (IS of the real test set).

    Raises:
        FileNotFoundError: no prior. ValueError: run not on global scaling, class-count mismatch.
    """
    run = RunDir(run_dir)
    pcfg, tokenizer, prior, cfg, ds, _, x_test = load_prior(run_dir)
    scaler = data_scaler(run_dir, cfg)
    fcn, source = fcn_evaluator(run, ds, fcn_weights, pcfg.fcn_epochs, pcfg.seed)
    to_fcn = lambda x: fcn_scale(scaler.inverse_transform(x), ds.x_train)  # noqa: E731 - tokenizer units -> FCN input
    x_test_fcn, fcn_acc, _ = fcn_on_test(fcn, ds)
    with torch.no_grad():
        real = torch.cat([tokenizer.to_time(tokenizer.to_time_frequency(x_test[i:i + 256]))
                          for i in range(0, len(x_test), 256)])
        recon = torch.cat([tokenizer.reconstruct(x_test[i:i + 256]) for i in range(0, len(x_test), 256)])
    f_real, p_real = fcn_predict(fcn, to_fcn(real))
    f_recon, _ = fcn_predict(fcn, to_fcn(recon))
    n_gen = max(len(x_test), 256)
    fake = generate(tokenizer, prior, n_gen, None, seed=seed, progress="sampling for FID / IS")
    f_fake, p_fake = fcn_predict(fcn, to_fcn(fake))
    is_mean, is_std = inception_score(p_fake, n_splits=10)
    counts = class_counts(ds.y_train, ds.n_classes, max(n_cas, 1000))
    y_cas = torch.repeat_interleave(torch.arange(ds.n_classes), counts)
    x_cas = generate(tokenizer, prior, len(y_cas), y_cas, seed=seed + 1, progress="sampling for CAS")
    cas_acc = cas(to_fcn(x_cas), y_cas, x_test_fcn, ds.y_test, ds.n_classes, epochs=pcfg.cas_epochs, seed=pcfg.seed,
                  progress="CAS classifier on the samples")
    sample_plot(run.path / "samples.png", scaler.inverse_transform(fake), ds, scaler.inverse_transform(x_cas), y_cas)
    return {"fid": fid(f_real, f_fake), "is_mean": is_mean, "is_std": is_std, "cas": cas_acc,
            "fcn_test_accuracy": fcn_acc, "fcn_source": source, "n_generated": n_gen, "n_cas": len(y_cas),
            "fid_test_reconstruction": fid(f_real, f_recon),
            "is_real_test": inception_score(p_real, n_splits=min(10, len(p_real)))[0]}


def evaluate_vae_samples(run_dir: str | os.PathLike, which: str = "best", fcn_weights=None, seed: int = 0,
                         fcn_epochs: int = 200) -> dict:
    """FID and IS of a VAE run's samples (``z ~ N(0, I)`` decoded; ``max(n_test, 256)`` of them)
    against the real test set, with the same FCN evaluator as the MaskGIT pipeline (published
    weights, or tsvq's own FCN trained for ``fcn_epochs``). No CAS: the VAEs are unconditional.
    Also writes ``samples.png``."""
    run = RunDir(run_dir)
    cfg, model, ds, _, x_test = load_run(run_dir, which)
    scaler = data_scaler(run_dir, cfg)
    fcn, source = fcn_evaluator(run, ds, fcn_weights, fcn_epochs, cfg.seed)
    _, fcn_acc, f_real = fcn_on_test(fcn, ds)
    n_gen = max(len(x_test), 256)
    fake = model.eval().sample(n_gen, generator=torch.Generator().manual_seed(seed)).cpu()
    fake = scaler.inverse_transform(fake)
    f_fake, p_fake = fcn_predict(fcn, fcn_scale(fake, ds.x_train))
    is_mean, is_std = inception_score(p_fake, n_splits=10)
    sample_plot(run.path / "samples.png", fake, ds, fake[:0], torch.zeros(0, dtype=torch.long))
    return {"fid": fid(f_real, f_fake), "is_mean": is_mean, "is_std": is_std,
            "fcn_test_accuracy": fcn_acc, "fcn_source": source, "n_generated": n_gen}


def evaluate_all(run_dir: str | os.PathLike, which: str = "best", fcn_weights: str | os.PathLike | None = None,
                 seed: int = 0) -> dict:
    """Metrics of the run (:func:`tsvq.recipes.stage1.evaluate_run`) plus FID / IS / CAS when it has
    a prior (:func:`evaluate_generation`) or FID / IS of its samples for a VAE
    (:func:`evaluate_vae_samples`); ``metrics.json`` / ``metrics.md`` are written once, at the end.

    Raises:
        FileNotFoundError: not a run directory, no checkpoint, FCN weights not found.
        ValueError: unreadable run files, a run that cannot be evaluated this way.
    """
    run = RunDir(run_dir)
    cfg = run.read_config(RunConfig)
    has_prior = prior_dir(run_dir).config_file.exists()
    vae = cfg.model in ("vae", "mssim_vae") and cfg.scaling == "global"
    if fcn_weights is not None and (has_prior or vae):
        from .fcn import check_fcn_weights

        check_fcn_weights(fcn_weights, cfg.dataset)  # before the stage-1 evaluation, not after it
    extra = {}
    if (has_prior or vae) and not load_dataset_of(cfg).labelled:
        import sys

        print("tsvq evaluate: FID / IS / CAS skipped: the data has no labels, and the FCN evaluator is a classifier "
              "trained on them; reporting the stage-1 metrics only", file=sys.stderr)
        has_prior = vae = False
    with run:  # one writer: samples.png, the FCN cache and the metrics files
        if has_prior:
            extra.update(prior_dir(run_dir).read_json("summary.json", {}))
            extra.update(evaluate_generation(run_dir, fcn_weights, seed=seed))
        elif vae:
            extra.update(evaluate_vae_samples(run_dir, which, fcn_weights, seed))
        return evaluate_run(run_dir, which, extra)
