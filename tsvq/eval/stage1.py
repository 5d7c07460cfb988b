"""Stage-1 evaluation (SPEC section 4 "Evaluation"; NC-VQVAE / BT-VQVAE protocol).

Probes use features of the un-augmented train and test splits (global-average-pooled z_q by
default), MinMax-scaled to (-1, 1) with the scaler fitted on the train split only. scikit-learn
does the classical ML: ``SVC(kernel="linear")``, ``KNeighborsClassifier``, ``KMeans``,
``silhouette_score``, ``PCA``.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import SVC


def as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _matrix(a, name: str) -> np.ndarray:
    f = as_numpy(a).astype(np.float64)
    if f.ndim != 2 or len(f) == 0:
        raise ValueError(f"{name} must be a non-empty [N, D] array, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} contain NaN or inf")
    return f


def _features(train, test):
    train, test = _matrix(train, "train_features"), _matrix(test, "test_features")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"features must be [N, D] arrays with the same D, got {train.shape} and {test.shape}")
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    return scaler.transform(train), scaler.transform(test)


def _labels(y, n: int, name: str) -> np.ndarray:
    y = as_numpy(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be [N] labels with N == {n} (rows of the features), got shape {y.shape}")
    return y


_SVM_MAX_ITER = 1_000_000  # libsvm iterations; a 28-series probe converges in tens


def linear_probe(train_features, y_train, test_features, y_test) -> float:
    """Test accuracy of a linear SVM (``SVC(kernel="linear")``, C = 1) trained on the train features,
    both MinMax-scaled to (-1, 1) on the train split (the NC-VQVAE linear-probe protocol).

    libsvm runs without its shrinking heuristic: with it, the solver cycled without end on the pooled
    features of a Coffee tokenizer (28 series, two groups of duplicate rows; a training run stalled in
    its probe), and without it the same problem converges in 43 iterations. Where both converge the
    two give the same solution to libsvm's tolerance. At most ``1e6`` iterations: beyond that
    scikit-learn's ``ConvergenceWarning`` says the accuracy is that of an unconverged solution.

    Args:
        train_features: [N_train, D]; test_features: [N_test, D] (Tensor or array, any float dtype).
        y_train: [N_train], y_test: [N_test] integer labels.

    Returns:
        accuracy in [0, 1].

    Raises:
        ValueError: mismatched shapes or label lengths, empty splits, NaN/inf features, a
            single class in ``y_train``.
    """
    tr, te = _features(train_features, test_features)
    y_tr, y_te = _labels(y_train, len(tr), "y_train"), _labels(y_test, len(te), "y_test")
    if len(np.unique(y_tr)) < 2:
        raise ValueError("y_train must hold at least two classes for a linear probe")
    clf = SVC(kernel="linear", shrinking=False, max_iter=_SVM_MAX_ITER).fit(tr, y_tr)
    return float((clf.predict(te) == y_te).mean())


def knn_probe(train_features, y_train, test_features, y_test, ks=(1, 5, 10)) -> dict[int, float]:
    """Test accuracy of k-nearest-neighbour classifiers (Euclidean, majority vote) for each k in
    ``ks``, on the same MinMax-scaled features as :func:`linear_probe`.

    Args:
        train_features, y_train, test_features, y_test: as :func:`linear_probe`.
        ks: neighbour counts (each >= 1; default 1, 5, 10). A k above N_train is capped at
            N_train (the result stays under the requested k).

    Returns:
        ``{k: accuracy in [0, 1]}``.

    Raises:
        ValueError: as :func:`linear_probe`, and a k < 1.
    """
    tr, te = _features(train_features, test_features)
    y_tr, y_te = _labels(y_train, len(tr), "y_train"), _labels(y_test, len(te), "y_test")
    out = {}
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"ks must hold neighbour counts >= 1, got {k}")
        clf = KNeighborsClassifier(n_neighbors=min(int(k), len(tr))).fit(tr, y_tr)
        out[int(k)] = float((clf.predict(te) == y_te).mean())
    return out


def silhouette(features, n_clusters: int, n_runs: int = 5, seed: int = 0) -> float:
    """Mean silhouette score (Rousseeuw 1987; Euclidean) of ``KMeans(n_clusters)`` clusterings of
    ``features`` over ``n_runs`` seeds (``seed``, ``seed + 1``, ...); the protocol uses
    n_clusters = number of classes. A clustering with a single non-empty cluster scores 0.

    Args:
        features: [N, D] (unscaled). n_clusters: in [2, N - 1]. n_runs: >= 1.

    Returns:
        a float in [-1, 1].

    Raises:
        ValueError: features not a non-empty [N, D] array or with NaN/inf, n_clusters outside
            [2, N - 1], n_runs < 1.
    """
    f = _matrix(features, "features")
    if n_clusters < 2 or n_clusters >= len(f):
        raise ValueError(f"n_clusters must be in [2, N - 1], got {n_clusters} for N = {len(f)}")
    if n_runs < 1:
        raise ValueError(f"n_runs must be >= 1, got {n_runs}")
    scores = []
    for r in range(n_runs):
        labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed + r).fit_predict(f)
        scores.append(silhouette_score(f, labels) if len(set(labels)) > 1 else 0.0)
    return float(np.mean(scores))


def intrinsic_dimension(features, variance: float = 0.95) -> int:
    """PCA intrinsic dimension: the number of principal components whose explained-variance
    ratios sum to at least ``variance`` (at most min(N, D)).

    Args:
        features: [N, D] (unscaled). variance: the fraction to explain, in (0, 1] (default 0.95).

    Returns:
        an int in [1, min(N, D)].

    Raises:
        ValueError: features not a non-empty [N, D] array or with NaN/inf, variance outside (0, 1].
    """
    f = _matrix(features, "features")
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be a fraction in (0, 1], got {variance}")
    ratios = PCA().fit(f).explained_variance_ratio_
    # cumsum can end a rounding error below 1.0: never count past the last component
    return int(min(np.searchsorted(np.cumsum(ratios), variance) + 1, len(ratios)))


def reconstruction_mse(x, x_hat) -> float:
    """Mean squared error over every element, in float64: ``mean((x - x_hat) ** 2)``.

    Args:
        x, x_hat: arrays or Tensors of one shape, e.g. ``[B, C, L]`` series (time domain) or
            ``[B, 2C, F, T]`` (time-frequency), in the units they are given in.

    Raises:
        ValueError: different shapes, or no elements.
    """
    x, x_hat = as_numpy(x).astype(np.float64), as_numpy(x_hat).astype(np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    if x.size == 0:
        raise ValueError(f"x and x_hat are empty (shape {x.shape})")
    return float(((x - x_hat) ** 2).mean())


def codebook_stats(indices, codebook_size: int) -> dict[str, float]:
    """Codebook usage of a set of code indices: the perplexity ``exp(-sum_k p_k log p_k)`` of the
    code histogram ``p`` (natural log; K when every code is used equally, 1 for a single code) and
    the fraction of the K codes used at least once.

    Args:
        indices: integer codes of any shape (flattened), each in [0, codebook_size).
        codebook_size: K >= 1.

    Returns:
        ``{"perplexity": float in [1, K], "fraction_used": float in [0, 1]}`` (perplexity 1 and
        fraction 0 for no indices).

    Raises:
        ValueError: K < 1, indices out of range. TypeError: non-integer indices.
    """
    raw = as_numpy(indices)
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        raise TypeError(f"indices must be integer codes, got dtype {raw.dtype}")
    idx = raw.astype(np.int64).ravel()
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    if idx.size and (idx.min() < 0 or idx.max() >= codebook_size):
        raise ValueError(f"indices must be in [0, {codebook_size}), got range [{idx.min()}, {idx.max()}]")
    counts = np.bincount(idx, minlength=codebook_size).astype(np.float64)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    return {"perplexity": float(np.exp(-(nz * np.log(nz)).sum())), "fraction_used": float((counts > 0).mean())}
