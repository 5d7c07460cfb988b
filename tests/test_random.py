"""The seeding rule (tsvq._random): a generator on any device seeds draws on any device."""
import pytest
import torch

from tsvq import _random
from tsvq.data.augment import PRESETS, augment
from tsvq.models import VAE, VAEConfig
from tsvq.nn import kmeans

from helpers import CUDA


def test_draws_match_torch_on_the_generator_device():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    torch.testing.assert_close(_random.rand(4, 5, device="cpu", generator=g()), torch.rand(4, 5, generator=g()))
    torch.testing.assert_close(_random.randn(7, device="cpu", dtype=torch.float64, generator=g()),
                               torch.randn(7, generator=g(), dtype=torch.float64))
    probs = torch.softmax(torch.randn(6, 9), -1)
    assert torch.equal(_random.multinomial(probs, 1, g()), torch.multinomial(probs, 1, generator=g()))


def test_a_generator_on_another_device_draws_there_and_moves():
    # 'meta' stands in for a GPU on machines without one: torch itself refuses a CPU generator
    # for another device type; tsvq draws on the CPU and moves the result.
    out = _random.rand(2, 3, device="meta", generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.shape == (2, 3)
    out = _random.randn(2, 3, device="meta", dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.dtype == torch.float64


@pytest.mark.cuda
@CUDA
def test_cpu_generator_seeds_cuda_models_with_the_cpu_numbers():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = torch.randn(4, 1, 64, dtype=torch.float64)
    for preset in PRESETS:
        torch.testing.assert_close(augment(x.cuda(), preset, g()).cpu(), augment(x, preset, g()))
    vae = VAE(VAEConfig(in_channels=1, length=64))
    torch.manual_seed(0)
    ref = vae.eval().sample(3, generator=g())
    # same z; the decoders differ by TF32 convolutions on the GPU
    torch.testing.assert_close(vae.cuda().sample(3, generator=g()).cpu(), ref, rtol=1e-2, atol=1e-2)
    means, _ = kmeans(torch.randn(50, 4).cuda(), 5, num_iters=0, generator=g())
    assert means.device.type == "cuda"
    means, _ = kmeans(torch.randn(50, 4), 5, num_iters=0, generator=torch.Generator("cuda").manual_seed(0))
    assert means.device.type == "cpu"
