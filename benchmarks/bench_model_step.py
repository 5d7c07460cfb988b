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
changes; tests/models/test_reference_ops.py checks that the two give the same step, and
harness.training_step_case checks the losses before timing. Models: ``ncvqvae`` with the quick
preset's projector (1024 wide) and the paper's (4096), and ``vqvae``.
"""
from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, run_case

from harness import TRAINING_STEP_MODELS, training_step_case


@pytest.mark.parametrize("impl", ["tsvq", "reference"])
@pytest.mark.parametrize("model", list(TRAINING_STEP_MODELS))
@pytest.mark.parametrize("device", DEVICES)
def test_training_step(benchmark, impl, model, device):
    rounds = 20 if torch.device(device).type == "cuda" else 10
    run_case(benchmark, training_step_case(model, device), impl, device, rounds)
