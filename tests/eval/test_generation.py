"""FID / IS / CAS on cases with known answers."""
import numpy as np
import pytest
import scipy.linalg
import torch

from tsvq.data import load_ucr
from tsvq.eval import fid, inception_score
from tsvq.models.fcn import fcn_predict, fcn_scale, load_supervised_fcn
from tsvq.recipes.fcn import cas, train_fcn

from helpers import FCN_DIR, UCR_DIR, requires_ucr


def test_fid_of_a_set_with_itself_is_zero_and_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert fid(a, a) < 1e-8
    mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.7]])
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    closed = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert abs(fid(x, y) - closed) < 0.03 * closed
    assert abs(fid(torch.tensor(x[:1000]), torch.tensor(x[1000:2000]))) < 0.05  # tensors accepted


def test_inception_score_known_values():
    k = 5
    onehot = np.eye(k)[np.arange(1000) % k]  # confident and uniform over k classes
    mean, std = inception_score(onehot, n_splits=1)
    assert abs(mean - k) < 1e-6 and std == 0.0
    # 10 splits: each split's marginal is its class histogram, so slightly below k, whatever the
    # order of the rows (a class-sorted set, as many UCR test splits are, must not give
    # single-class splits and a score of 1)
    by_class = onehot[np.argsort(onehot.argmax(1), kind="stable")]
    for rows in (onehot, by_class):
        mean, std = inception_score(rows, n_splits=10)
        assert 0.95 * k < mean <= k + 1e-9
    assert abs(inception_score(np.full((100, k), 1 / k))[0] - 1.0) < 1e-9  # uninformative
    with pytest.raises(ValueError, match="probability"):
        inception_score(np.ones((20, 2)))
    with pytest.raises(ValueError, match="n_splits"):
        inception_score(np.eye(2), n_splits=10)


def test_fid_bad_input():
    with pytest.raises(ValueError, match="same D"):
        fid(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        fid(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        fid(np.full((3, 2), np.nan), np.zeros((5, 2)))


@requires_ucr("GunPoint")
def test_cas_of_real_data_equals_the_fcn_accuracy_trained_the_same_way():
    ds = load_ucr("GunPoint", UCR_DIR)
    x_tr, x_te = fcn_scale(ds.x_train, ds.x_train), fcn_scale(ds.x_test, ds.x_train)
    own = train_fcn(x_tr, ds.y_train, 2, epochs=10, seed=3)
    acc = float((fcn_predict(own, x_te)[1].argmax(1) == ds.y_test).double().mean())
    assert cas(x_tr, ds.y_train, x_te, ds.y_test, 2, epochs=10, seed=3) == acc


@requires_ucr("GunPoint")
def test_fid_of_real_test_against_real_train_is_small_with_the_published_fcn():
    if not (FCN_DIR / "GunPoint.ckpt").exists():
        pytest.skip("shared FCN weights not found")
    ds = load_ucr("GunPoint", UCR_DIR)
    m = load_supervised_fcn(FCN_DIR / "GunPoint.ckpt")
    f_tr, _ = fcn_predict(m, fcn_scale(ds.x_train, ds.x_train))
    f_te, _ = fcn_predict(m, fcn_scale(ds.x_test, ds.x_train))
    noise = fcn_predict(m, torch.randn_like(ds.x_test))[0]
    assert fid(f_te, f_tr) < 0.2 * fid(f_te, noise)
