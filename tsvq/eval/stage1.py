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


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _features(train, test):
    train, test = _np(train).astype(np.float64), _np(test).astype(np.float64)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"features must be [N, D] arrays with the same D, got {train.shape} and {test.shape}")
    if len(train) == 0 or len(test) == 0:
        raise ValueError("features: empty train or test split")
    if not (np.isfinite(train).all() and np.isfinite(test).all()):
        raise ValueError("features contain NaN or inf")
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    return scaler.transform(train), scaler.transform(test)


def linear_probe(train_features, y_train, test_features, y_test) -> float:
    """Test accuracy of a linear SVM (``SVC(kernel="linear")``, C = 1) trained on the train features.

    Args:
        train_features: [N_train, D]; test_features: [N_test, D] (Tensor or array).
        y_train, y_test: integer labels.

    Returns:
        accuracy in [0, 1].

    Raises:
        ValueError: mismatched shapes, empty splits, NaN/inf features.
    """
    tr, te = _features(train_features, test_features)
    clf = SVC(kernel="linear").fit(tr, _np(y_train))
    return float((clf.predict(te) == _np(y_test)).mean())


def knn_probe(train_features, y_train, test_features, y_test, ks=(1, 5, 10)) -> dict[int, float]:
    """Test accuracy of k-nearest-neighbour classifiers (Euclidean) for each k in ``ks``
    (k is capped at the number of training series)."""
    tr, te = _features(train_features, test_features)
    out = {}
    for k in ks:
        clf = KNeighborsClassifier(n_neighbors=min(k, len(tr))).fit(tr, _np(y_train))
        out[int(k)] = float((clf.predict(te) == _np(y_test)).mean())
    return out


def silhouette(features, n_clusters: int, n_runs: int = 5, seed: int = 0) -> float:
    """Mean silhouette score of KMeans(n_clusters) clusterings over ``n_runs`` seeds
    (n_clusters = number of classes in the protocol)."""
    f = _np(features).astype(np.float64)
    if n_clusters < 2 or n_clusters >= len(f):
        raise ValueError(f"n_clusters must be in [2, N - 1], got {n_clusters} for N = {len(f)}")
    scores = []
    for r in range(n_runs):
        labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed + r).fit_predict(f)
        scores.append(silhouette_score(f, labels) if len(set(labels)) > 1 else 0.0)
    return float(np.mean(scores))


def intrinsic_dimension(features, variance: float = 0.95) -> int:
    """Number of principal components needed to explain ``variance`` of the feature variance."""
    f = _np(features).astype(np.float64)
    pca = PCA().fit(f)
    return int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), variance) + 1)


def reconstruction_mse(x, x_hat) -> float:
    """Mean squared error over every element (time or time-frequency representation)."""
    x, x_hat = _np(x).astype(np.float64), _np(x_hat).astype(np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    return float(((x - x_hat) ** 2).mean())


def codebook_stats(indices, codebook_size: int) -> dict[str, float]:
    """Perplexity ``exp(H(p))`` of the code histogram and the fraction of the K codes used."""
    idx = _np(indices).astype(np.int64).ravel()
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    if idx.size and (idx.min() < 0 or idx.max() >= codebook_size):
        raise ValueError(f"indices must be in [0, {codebook_size}), got range [{idx.min()}, {idx.max()}]")
    counts = np.bincount(idx, minlength=codebook_size).astype(np.float64)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    return {"perplexity": float(np.exp(-(nz * np.log(nz)).sum())), "fraction_used": float((counts > 0).mean())}
