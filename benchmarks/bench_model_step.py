"""A whole tokenizer training step on the tsvq kernels vs the same model on pure-PyTorch ops
(SPEC section 6: NC-VQVAE step >= 2x on an H100).

    pytest benchmarks/bench_model_step.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json

One step = forward (STFT, encoder, vector quantiser with EMA codebook update, decoder, ISTFT; for
NC-VQVAE also the augmented view, projector and Barlow Twins loss) + backward + AdamW update, on
a batch of B = 128 series of L = 150 samples (GunPoint's shape, the SPEC batch size), default
tokenizer settings (n_fft 8, d 64, K 32). Baseline ("reference"): the same weights and optimiser
run inside ``tsvq._extension.reference_ops()``, so every tsvq op takes its pure-PyTorch
reference (torch.stft / torch.istft, addmm + argmin, a D x D Barlow Twins loss) and nothing else
changes; tests/models/test_reference_ops.py checks that the two give the same step. The
baseline rows also record the paired speed-up (conftest.paired_speedup).
Models: ``ncvqvae`` with the quick preset's projector (1024 wide) and the paper's (4096), and
``vqvae``.
"""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import DEVICES, run

import tsvq
from tsvq._extension import reference_ops
from tsvq.models import create_model

B, L = 128, 150
MODELS = {
    "ncvqvae-quick": ("ncvqvae", {"projector_widths": (1024, 1024, 1024)}),
    "ncvqvae-paper": ("ncvqvae", {"projector_widths": (4096, 4096, 4096)}),
    "vqvae": ("vqvae", {}),
}


def _step_fn(model, x, reference: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(x)["loss"]
        loss.backward()
        opt.step()
        return loss

    if not reference:
        return step

    def reference_step():
        with reference_ops():
            return step()

    return reference_step


@pytest.mark.parametrize("impl", ["tsvq", "reference"])
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("device", DEVICES)
def test_training_step(benchmark, impl, model_name, device):
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    name, overrides = MODELS[model_name]
    torch.manual_seed(0)
    model = create_model(name, length=L, **overrides).to(device).train()
    other = copy.deepcopy(model)
    x = torch.randn(B, 1, L, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():  # correctness first: the same loss on both paths (same weights, same views)
        ref_model = copy.deepcopy(model)  # before the forward updates the EMA codebook
        loss = model(x, generator=torch.Generator().manual_seed(1))["loss"]
        with reference_ops():
            ref_loss = ref_model(x, generator=torch.Generator().manual_seed(1))["loss"]
    torch.testing.assert_close(loss, ref_loss, rtol=1e-3, atol=1e-4)
    benchmark.group = f"training step {device} {model_name} B={B} L={L}"
    rounds = 20 if torch.device(device).type == "cuda" else 10
    run(benchmark, _step_fn(model, x, impl == "reference"), device, B, "series", rounds,
        paired=None if impl == "tsvq" else _step_fn(other, x, reference=False),
        impl=impl, op="training_step", model=model_name, B=B, L=L)
