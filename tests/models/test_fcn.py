"""FCN evaluator: the published per-dataset weights load into tsvq's FCN and reproduce their accuracies."""
import pytest
import torch

from tsvq.data import load_ucr
from tsvq.models import create_model
from tsvq.models.fcn import fcn_predict, fcn_scale, load_supervised_fcn
from tsvq.recipes.fcn import train_fcn

from helpers import FCN_DIR, UCR_DIR

# test accuracies listed in ../shared/fcn/supervised_fcn_v1/README.md
PUBLISHED = {"ArrowHead": 0.8000, "Beef": 0.7333, "CBF": 0.9900, "Coffee": 1.0000, "ECG200": 0.8900,
             "GunPoint": 1.0000, "ItalyPowerDemand": 0.9475, "Strawberry": 0.9784, "SyntheticControl": 0.9833,
             "TwoLeadECG": 1.0000}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_weights_reproduce_their_test_accuracy(name):
    if not (FCN_DIR / f"{name}.ckpt").exists() or not (UCR_DIR / name).exists():
        pytest.skip("shared FCN weights or data not found")
    ds = load_ucr(name, UCR_DIR)
    model = load_supervised_fcn(FCN_DIR / f"{name}.ckpt")
    feats, probs = fcn_predict(model, fcn_scale(ds.x_test, ds.x_train))
    assert feats.shape == (len(ds.x_test), 128) and probs.shape == (len(ds.x_test), ds.n_classes)
    acc = float((probs.argmax(1) == ds.y_test).double().mean())
    assert abs(acc - PUBLISHED[name]) < 5e-4


def test_same_padding_keeps_the_length_and_puts_the_extra_zero_on_the_right():
    m = create_model("fcn", n_classes=3)
    x = torch.zeros(2, 1, 10)
    x[:, :, 0] = 1.0
    conv = m.blocks[0]
    out = conv.conv(torch.nn.functional.pad(x, conv.pad))
    assert conv.pad == (3, 4) and out.shape[-1] == 10
    assert m(torch.randn(4, 1, 33)).shape == (4, 3) and m.features(torch.randn(4, 1, 33)).shape == (4, 128)
    m(torch.randn(4, 1, 33)).sum().backward()


def test_train_fcn_learns_a_separable_problem_and_checks_input():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 6.28, 40)
    x = torch.cat([torch.sin(t).expand(20, 1, 40), torch.sign(torch.sin(t)).expand(20, 1, 40)])
    x = x + 0.1 * torch.randn(40, 1, 40, generator=g)
    y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
    model = train_fcn(x, y, 2, epochs=15, batch_size=16)
    assert not model.training
    assert float((fcn_predict(model, x)[1].argmax(1) == y).double().mean()) == 1.0
    with pytest.raises(ValueError, match="y must be in"):
        train_fcn(x, y + 1, 2, epochs=1)
    with pytest.raises(ValueError, match="same N"):
        train_fcn(x, y[:3], 2, epochs=1)
    with pytest.raises(ValueError, match="Tensor\\[B, 1, L\\]"):
        model(torch.randn(2, 3, 40))
    with pytest.raises(FileNotFoundError):
        load_supervised_fcn(FCN_DIR / "NoSuchDataset.ckpt")


def test_fcn_scale_is_per_channel_for_multichannel_data():
    x = torch.stack([torch.randn(10, 30) * 5 + 3, torch.randn(10, 30) * 0.1 - 1], 1)
    z = fcn_scale(x, x)
    for c in range(2):
        assert abs(float(z[:, c].mean())) < 1e-5 and abs(float(z[:, c].double().var(unbiased=False)) - 1) < 1e-4
    one = fcn_scale(x[:, :1], x[:, :1])  # one channel: the published protocol, one mean / variance
    t = x[:, :1].double()
    torch.testing.assert_close(one, ((t - t.mean()) / t.var(unbiased=False).sqrt()).float())
