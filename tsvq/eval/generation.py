"""Generation metrics the field reports (TimeVQVAE, Lee et al. AISTATS 2023, section 4): FID and
IS on the features / softmax of a supervised FCN, and the accuracy behind CAS (classification
accuracy score, train-on-synthetic-test-on-real, Ravuri & Vinyals 2019; the classifier is trained
by :func:`tsvq.recipes.generation.cas`).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from .stage1 import as_numpy


def fid(features_real, features_fake) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6):
    ``|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^{1/2})``.

    Args:
        features_real, features_fake: ``[N, D]`` arrays or tensors (N >= 2 each, same D), e.g. the
            128-d pooled FCN features. Covariances use ``np.cov`` (unbiased).

    The matrix square root is ``scipy.linalg.sqrtm``; the imaginary part it can return from
    round-off (singular covariances when N <= D) is dropped, as in the reference implementations.

    Raises:
        ValueError: wrong rank, different D, fewer than 2 rows, or non-finite features.
    """
    a, b = as_numpy(features_real).astype(np.float64), as_numpy(features_fake).astype(np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N, D] with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"fid needs at least 2 rows per set, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("fid: features contain NaN or inf")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # singular products (N <= D, dead features) are expected here
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():  # regularise as in the TF / pytorch-fid code
            offset = np.eye(len(s_a)) * 1e-6
            covmean = scipy.linalg.sqrtm((s_a + offset) @ (s_b + offset))
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def inception_score(probs, n_splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Inception score ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al. 2016) with the FCN softmax.

    Args:
        probs: ``[N, n_classes]`` class probabilities (rows sum to 1). n_splits: the samples are
            cut into this many equal parts (default 10, the convention); the score is computed
            per part with that part's marginal p(y). The rows are shuffled (fixed ``seed``) before
            the cut, so that the score does not depend on their order: the reference
            implementation cuts them in order, which is only right for i.i.d. samples; a set
            sorted by class (many UCR test splits, class-conditional samples made class by class)
            would give single-class parts and a score near 1.

    Returns:
        ``(mean, std)`` over the splits.

    Raises:
        ValueError: not a probability matrix, or fewer rows than ``n_splits``.
    """
    p = as_numpy(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"probs must be [N, n_classes], got {p.shape}")
    if n_splits < 1 or len(p) < n_splits:
        raise ValueError(f"need at least n_splits={n_splits} >= 1 rows, got {len(p)}")
    if (p < -1e-6).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("probs rows must be probability vectors (non-negative, summing to 1)")
    p = np.clip(p, 1e-12, 1.0)
    p = p[np.random.default_rng(seed).permutation(len(p))]
    scores = []
    for part in np.array_split(p, n_splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part) - np.log(marginal))).sum(1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def accuracy(probs, y) -> float:
    """Fraction of rows of ``probs: [N, n_classes]`` whose argmax equals ``y: int[N]`` (the CAS and
    evaluator accuracies).

    Raises:
        ValueError: shapes that do not match, or no rows.
    """
    p, t = as_numpy(probs), as_numpy(y)
    if p.ndim != 2 or t.ndim != 1 or len(p) != len(t) or len(t) == 0:
        raise ValueError(f"probs must be [N, n_classes] and y [N] with the same N >= 1, got {p.shape} and {t.shape}")
    return float((p.argmax(1) == t).mean())
