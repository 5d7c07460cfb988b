import math

import pytest
import torch

from tsvq.data import augment as A


def _x(B=6, C=2, L=97, seed=0):
    return torch.randn(B, C, L, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", sorted(A.PRESETS))
def test_presets_shape_finite_seeded(device, preset):
    x = _x().to(device)
    g1 = torch.Generator(device=device).manual_seed(3)
    g2 = torch.Generator(device=device).manual_seed(3)
    a, b = A.augment(x, preset, g1), A.augment(x, preset, g2)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # same seed, same views
    assert not torch.allclose(a, x)


def test_slice_and_shuffle_permutes_segments():
    x = torch.arange(40.0).repeat(3, 1, 1)
    y = A.slice_and_shuffle(x, 4, torch.Generator().manual_seed(0))
    for row in y[:, 0]:
        assert sorted(row.tolist()) == list(range(40))
        # exactly 4 increasing runs (fewer if two segments stay adjacent in order)
        breaks = int((row[1:] != row[:-1] + 1).sum())
        assert breaks <= 3


def test_window_warp_identity_scale_and_range():
    x = _x()
    torch.testing.assert_close(A.window_warp(x, 0.4, (1.0, 1.0)), x, rtol=1e-5, atol=1e-5)
    y = A.window_warp(x, 0.4, (0.9, 2.0), torch.Generator().manual_seed(1))
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6  # linear interpolation stays in range


def test_simple_transforms():
    x = _x()
    g = torch.Generator().manual_seed(0)
    f = A.flip(x, 1.0, g)
    torch.testing.assert_close(f, x.flip(-1))
    s = A.slope(torch.zeros(4, 1, 10), 0.01, g)
    d = s[..., 1:] - s[..., :-1]
    assert (d.std(-1) < 1e-6).all() and (d.abs() <= 0.01 + 1e-7).all()
    r = A.amplitude_resize(x, 0.2, g) / x
    assert torch.allclose(r, r[:, :1, :1].expand_as(r), rtol=1e-4, atol=1e-4)
    c = A.random_crop(x, 50, g)
    assert c.shape == (6, 2, 50)


def test_stft_phase_shift_keeps_magnitude_spectrum():
    x = _x(L=128)
    y = A.stft_phase_shift(x, math.pi / 4, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert not torch.allclose(x, y)
    # zero shift is the identity (STFT -> ISTFT round trip)
    torch.testing.assert_close(A.stft_phase_shift(x, 0.0), x, rtol=1e-4, atol=1e-4)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        A.augment(_x(), "nope")
    with pytest.raises(ValueError, match=r"Tensor\[B, C, L\]"):
        A.jitter(torch.randn(5, 10))
    with pytest.raises(ValueError, match="n_segments"):
        A.slice_and_shuffle(_x(L=3), 5)


def test_make_views_draws_in_order_and_keeps_the_original():
    from tsvq.data import ViewSpec, make_views
    x = torch.randn(5, 2, 40, generator=torch.Generator().manual_seed(0))
    a, b = make_views(x, ViewSpec("gauss", with_original=True), torch.Generator().manual_seed(1))
    assert a is x  # the original view is the series itself (NC-VQVAE reuses its latents)
    torch.testing.assert_close(b, A.augment(x, "gauss", torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(2)
    first, second = A.augment(x, "gauss", g), A.augment(x, "gauss", g)
    a, b = make_views(x, ViewSpec("gauss"), torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, first)
    torch.testing.assert_close(b, second)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="augmentation must be one of"):
        ViewSpec("mixup")
    with pytest.raises(ValueError, match="at least 2 series"):
        make_views(x[:1], ViewSpec("gauss"))
