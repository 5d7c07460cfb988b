"""A whole model on the tsvq kernels equals the same model on the pure-PyTorch reference ops.

The op tests compare each kernel with its reference in isolation; here one training step of every
tokenizer variant (STFT -> encoder -> vector quantiser with EMA codebook update -> decoder -> ISTFT,
plus the SSL head) runs twice from the same weights and random streams, once with the kernels and
once inside ``tsvq._extension.reference_ops()``, in float64 so that no near-tie of the
nearest-codeword search can flip a code: the losses, every parameter gradient and the updated
codebooks must agree. This is also what makes ``benchmarks/bench_model_step.py`` a like-for-like
comparison.
"""
import copy
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tsvq
from tsvq._extension import reference_ops
from tsvq.engine.module import stage1_step
from tsvq.models import create_model

VARIANTS = [
    ("vqvae", {}),
    ("vqvae", {"two_branch": True}),
    ("ncvqvae", {"ssl_loss": "barlow_twins"}),
    ("ncvqvae", {"ssl_loss": "vicreg", "augmentation": "warp"}),
    ("ncvqvae", {"ssl_loss": "vibcreg", "augmentation": "gauss", "two_branch": True}),
]


class _CountTsvqOps(TorchDispatchMode):
    """Counts the torch.ops.tsvq calls that reach the dispatcher (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "tsvq":
            self.calls[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))


def _step(model, x, seed):
    model.zero_grad(set_to_none=True)
    with _CountTsvqOps() as counter:
        out = stage1_step(model, (x,), torch.Generator().manual_seed(seed), 0, 1)
        out["loss"].backward()
    model.tsvq_calls = counter.calls
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return {k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}, grads, buffers


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=lambda v: str(v))
def test_training_step_matches_reference_ops(name, overrides, device):
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    torch.manual_seed(0)
    kw = dict(overrides)
    if name == "ncvqvae":
        kw["projector_widths"] = (128, 128)  # wider than the batch: the Barlow Twins Gram path
    model = create_model(name, length=97, in_channels=2, d=16, n_resnet_blocks=1, **kw).double().to(device).train()
    reference_model = copy.deepcopy(model)
    x = torch.randn(12, 2, 97, dtype=torch.float64).to(device)

    losses, grads, buffers = _step(model, x, seed=1)
    with reference_ops():
        assert not tsvq.has_ops()
        ref_losses, ref_grads, ref_buffers = _step(reference_model, x, seed=1)
    assert tsvq.has_ops()
    # the two runs took different paths: kernels (forward and backward) vs none at all
    expected = {"stft", "istft", "_istft_backward", "nearest_code", "ema_codebook_update_"}  # x needs no grad
    if name == "ncvqvae" and overrides["ssl_loss"] == "barlow_twins":
        expected |= {"_barlow_twins_loss_forward", "_barlow_twins_loss_backward"}  # the public op decomposes
    assert expected <= set(model.tsvq_calls), model.tsvq_calls
    assert not reference_model.tsvq_calls, reference_model.tsvq_calls

    assert losses.keys() == ref_losses.keys() and "loss" in losses
    for k in losses:
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-9, atol=1e-12, msg=k)
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for k in grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-7, atol=1e-10, msg=k)
    assert buffers.keys() == ref_buffers.keys()
    for k in buffers:  # EMA codebooks, cluster sizes, BatchNorm statistics
        torch.testing.assert_close(buffers[k], ref_buffers[k], rtol=1e-9, atol=1e-12, msg=k)


def test_reference_ops_nests_and_is_per_thread():
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    import threading

    seen = []
    with reference_ops():
        with reference_ops():
            assert not tsvq.has_ops()
        assert not tsvq.has_ops()
        t = threading.Thread(target=lambda: seen.append(tsvq.has_ops()))
        t.start()
        t.join()
    assert tsvq.has_ops() and seen == [True]
