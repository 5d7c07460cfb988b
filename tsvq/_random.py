"""Random draws seeded by a ``torch.Generator`` on any device: tsvq's one seeding rule.

Every tsvq function that takes ``generator`` accepts one on any device. The numbers are drawn on
the generator's device and moved to the device that uses them, so ``torch.Generator()`` (a CPU
generator, the usual way to seed) works with a model on a GPU and gives the same numbers there
as on the CPU; a generator on the model's device costs no copy. ``None`` draws from torch's
global generator of the target device. (torch's own samplers instead raise "Expected a 'cuda'
device type for generator but found 'cpu'".)
"""
from __future__ import annotations

import torch


def _home(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if generator is None or generator.device.type == device.type:
        return device
    return generator.device


def rand(*shape: int, device: torch.device | str, dtype: torch.dtype | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """``U[0, 1)`` of ``shape`` on ``device``, drawn from ``generator`` on its own device."""
    return torch.rand(shape, generator=generator, device=_home(generator, device), dtype=dtype).to(device)


def randn(*shape: int, device: torch.device | str, dtype: torch.dtype | None = None,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """``N(0, 1)`` of ``shape`` on ``device``, drawn from ``generator`` on its own device."""
    return torch.randn(shape, generator=generator, device=_home(generator, device), dtype=dtype).to(device)


def multinomial(probs: torch.Tensor, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``torch.multinomial(probs, num_samples)`` on ``probs.device``; with a generator on another
    device the probabilities are copied there for the draw (pass one on the model's device to
    avoid that copy)."""
    home = _home(generator, probs.device)
    return torch.multinomial(probs.to(home), num_samples, generator=generator).to(probs.device)
