import numpy as np
import pytest
import torch

from tsvq import eval as E


def _blobs(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) * 0.3 + np.eye(3, d)[y] * 3
    return f, y


def test_probes_separate_blobs_and_fail_on_noise():
    f, y = _blobs()
    g, yg = _blobs(seed=1)
    assert E.linear_probe(f, y, g, yg) == 1.0
    knn = E.knn_probe(torch.tensor(f), torch.tensor(y), g, yg)
    assert set(knn) == {1, 5, 10} and min(knn.values()) > 0.95
    rng = np.random.default_rng(2)
    assert E.linear_probe(rng.normal(size=(60, 5)), y, rng.normal(size=(60, 5)), yg) < 0.6


def test_silhouette_intrinsic_dim_mse_codebook():
    f, y = _blobs()
    assert E.silhouette(f, 3) > 0.5
    low_rank = np.random.default_rng(0).normal(size=(100, 2)) @ np.random.default_rng(1).normal(size=(2, 10))
    assert E.intrinsic_dimension(low_rank) == 2
    assert E.reconstruction_mse(np.zeros(4), np.full(4, 2.0)) == 4.0
    s = E.codebook_stats(np.array([0, 1, 2, 3]), 8)
    assert s["perplexity"] == pytest.approx(4.0) and s["fraction_used"] == 0.5


def test_bad_input():
    f, y = _blobs()
    with pytest.raises(ValueError, match="same D"):
        E.linear_probe(f, y, f[:, :2], y)
    with pytest.raises(ValueError, match="NaN"):
        E.linear_probe(np.full_like(f, np.nan), y, f, y)
    with pytest.raises(ValueError, match="indices"):
        E.codebook_stats(np.array([9]), 4)
    with pytest.raises(ValueError, match="n_clusters"):
        E.silhouette(f, 1)
