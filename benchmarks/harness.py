"""tsvq against its pure-PyTorch reference: the comparisons and the timing rules shared by
``pytest benchmarks/`` (full shape grids, pytest-benchmark JSON) and ``benchmarks/targets.py``
(the project's speed targets on this machine, one table). Not part of the installed package:
the baselines include the test-only ``vector_quantize_pytorch``.

A :class:`Case` holds a tsvq callable and its baselines, built from the same inputs; building it
checks that they compute the same thing (correctness before timing). Timing rules:

* every call is synchronised with the device (:func:`sync`);
* a timed round repeats a short call until it lasts :data:`MIN_ROUND_S` (2 ms), so timer jitter
  and one-off stalls do not dominate sub-millisecond calls (:func:`iterations_per_round`);
* a speed-up is the ratio of medians from rounds of the baseline and of tsvq timed alternately,
  so drift of the machine's speed between two measurements (tens of percent over seconds on a
  shared VM) does not enter it (:func:`paired_medians`).
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from tsvq import _extension
from tsvq.engine.module import stage1_step
from tsvq.engine.optim import adamw

MIN_ROUND_S = 2e-3  # a round repeats a short call until it lasts about this long


def sync(device) -> None:
    """Wait for the device's queued work (no-op on CPUs)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def synced(fn: Callable[[], Any], device) -> Callable[[], Any]:
    """``fn`` followed by :func:`sync`, so that a timer around it measures the device's work."""
    def call():
        out = fn()
        sync(device)
        return out
    return call


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def peak_memory(fn: Callable[[], Any], device) -> int:
    """Extra bytes at the peak of one call of ``fn``: CUDA allocator peak on GPUs; on Linux
    CPUs the resident-set high-water mark (reset through /proc/self/clear_refs) above the
    resident size before the call (-1 where that cannot be read). On a CPU the first call in a
    process also counts one-off runtime allocations (thread pools, allocator arenas)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return -1
    base = _rss_bytes("VmRSS")
    fn()
    return max(_rss_bytes("VmHWM") - base, 0)


def iterations_per_round(call: Callable[[], Any]) -> int:
    """Calls per timed round: 1 for calls of 2 ms or more, else enough calls to fill 2 ms (at most
    1000). Makes two calls: a warm-up (allocator, caches, lazy initialisation) and a timed one."""
    call()
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    return max(1, min(1000, math.ceil(MIN_ROUND_S / max(once, 1e-7))))


def paired_medians(fn: Callable[[], Any], n_fn: int, tsvq_fn: Callable[[], Any], n_tsvq: int,
                   rounds: int) -> tuple[float, float]:
    """Median seconds per call of ``fn`` and of ``tsvq_fn`` (``n_fn`` / ``n_tsvq`` calls per round),
    timed in alternating rounds, which one goes first alternating too. Both must be synchronised."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for i, f, n in ((0, fn, n_fn), (1, tsvq_fn, n_tsvq))[:: 1 if r % 2 else -1]:
            start = time.perf_counter()
            for _ in range(n):
                f()
            times[i].append((time.perf_counter() - start) / n)
    return statistics.median(times[0]), statistics.median(times[1])


def paired_speedup(fn: Callable[[], Any], n_fn: int, tsvq_fn: Callable[[], Any], rounds: int) -> float:
    """Median time per call of ``fn`` over that of ``tsvq_fn`` (:func:`paired_medians`)."""
    base, ours = paired_medians(fn, n_fn, tsvq_fn, iterations_per_round(tsvq_fn), rounds)
    return base / ours


@dataclass
class Case:
    """One comparison: ``tsvq`` and each of ``baselines`` compute the same thing from the same inputs
    (checked when the case is built), each with its own state where the call has any (optimiser,
    EMA codebook). ``items`` units of work (``unit``: vectors, samples, series) per call."""
    group: str
    tsvq: Callable[[], Any]
    baselines: dict[str, Callable[[], Any]]
    items: int
    unit: str
    info: dict = field(default_factory=dict)


def _need_ops() -> None:
    if not _extension.has_ops():
        raise RuntimeError("tsvq._C is not built (or reference_ops() is active): there is nothing to compare "
                           "with the reference; reinstall with `pip install --no-build-isolation .`")


def nearest_code_case(N: int, K: int, D: int, device) -> Case:
    """Nearest-codeword search of ``N`` random vectors in a ``K x D`` codebook; baselines
    ``reference_addmm`` (addmm + argmin, the fallback) and ``cdist`` (cdist + argmin)."""
    from tsvq.ops import nearest_code, reference

    _need_ops()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g).to(device)
    cb = torch.randn(K, D, generator=g).to(device)
    ridx, rdist = reference.nearest_code(x, cb)
    fns = {"tsvq": nearest_code, "reference_addmm": reference.nearest_code, "cdist": reference.nearest_code_cdist}
    for name, fn in fns.items():
        idx, dist = fn(x, cb)
        if (idx == ridx).float().mean() <= 0.999:
            raise AssertionError(f"nearest_code: {name} disagrees with the reference on more than 0.1 % of codes")
        torch.testing.assert_close(dist, rdist, rtol=1e-3, atol=1e-3, msg=f"nearest_code: {name} distances")
    bound = {name: (lambda fn=fn: fn(x, cb)) for name, fn in fns.items()}
    return Case(f"nearest_code {torch.device(device).type} N={N} K={K} D={D}", bound.pop("tsvq"), bound, N,
                "vectors", dict(op="nearest_code", N=N, K=K, D=D))


def nearest_code_topk_case(N: int, K: int, D: int, k: int, device) -> Case:
    """The ``k`` nearest codes of ``N`` random vectors in a ``K x D`` codebook; baselines ``cdist``
    (cdist + topk, what research code does for beam search) and ``addmm_topk`` (addmm + topk in
    chunks of rows, tsvq's library path on CUDA). Checked against the reference first."""
    from tsvq.ops import nearest_code_topk, reference
    from tsvq.ops.nearest_code import nearest_code_topk_gemm

    _need_ops()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g).to(device)
    cb = torch.randn(K, D, generator=g).to(device)
    fns = {"tsvq": lambda a, b: nearest_code_topk(a, b, k), "cdist": lambda a, b: reference.nearest_code_topk_cdist(a, b, k),
           "addmm_topk": lambda a, b: nearest_code_topk_gemm(a, b, k)}
    rows = slice(0, min(N, 4096))  # the reference sorts all K distances per row
    ridx, rdist = reference.nearest_code_topk(x[rows], cb, k)
    for name, fn in fns.items():
        idx, dist = fn(x[rows], cb)
        if (idx == ridx).float().mean() <= 0.999:
            raise AssertionError(f"nearest_code_topk: {name} disagrees with the reference on more than 0.1 % of codes")
        torch.testing.assert_close(dist, rdist, rtol=1e-3, atol=1e-3, msg=f"nearest_code_topk: {name} distances")
    bound = {name: (lambda fn=fn: fn(x, cb)) for name, fn in fns.items()}
    return Case(f"nearest_code_topk {torch.device(device).type} N={N} K={K} D={D} k={k}", bound.pop("tsvq"), bound, N,
                "vectors", dict(op="nearest_code_topk", N=N, K=K, D=D, k=k))


def ema_update_case(N: int, K: int, D: int, device) -> Case:
    """One EMA codebook update (statistics of ``N`` vectors, then the ``K x D`` state) against
    ``reference.ema_codebook_update_`` (index_add statistics and the ATen element-wise update),
    each on its own copy of the state, checked equal after one update first."""
    from tsvq.ops import ema_codebook_update_, reference

    _need_ops()
    g = torch.Generator().manual_seed(0)
    cb = torch.randn(K, D, generator=g)
    x = (cb[torch.randint(0, K, (N,), generator=g)] + 0.1 * torch.randn(N, D, generator=g)).to(device)
    idx = reference.nearest_code(x, cb.to(device))[0]
    ours = (torch.ones(K, device=device), cb.clone().to(device), cb.clone().to(device))
    theirs = tuple(t.clone() for t in ours)
    ema_codebook_update_(*ours, x, idx, 0.9, 1e-5)
    reference.ema_codebook_update_(*theirs, x, idx, 0.9, 1e-5)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg="ema update: tsvq and the reference differ")
    return Case(f"ema_codebook_update {torch.device(device).type} N={N} K={K} D={D}",
                lambda: ema_codebook_update_(*ours, x, idx, 0.9, 1e-5),
                {"reference": lambda: reference.ema_codebook_update_(*theirs, x, idx, 0.9, 1e-5)}, N, "vectors",
                dict(op="ema_codebook_update", N=N, K=K, D=D))


def layer_step_case(N: int, K: int, D: int, device, rotation_trick: bool = False, heads: int = 1,
                    sampling: bool = False) -> Case:
    """Forward + backward + EMA codebook update of :class:`tsvq.nn.VectorQuantizer` on ``N`` vectors
    (batches of 1024, or 128 for N = 5120) against ``vector_quantize_pytorch.VectorQuantize`` from
    the same codebook (decay 0.8, beta 1), both with the straight-through estimator or both with
    the rotation trick (``VectorQuantize``'s default); with ``heads`` > 1, multi-head quantisation
    with one codebook of dimension D / heads per head (no projection); with ``sampling``, codes
    drawn at temperature 0.5 (``stochastic_sample_codes``) and the codebook-diversity loss (weight
    0.1), the two options computed from the N x K logits, which tsvq forms in chunks. Raises
    ImportError without that package."""
    import vector_quantize_pytorch as vqp

    from tsvq.nn import VectorQuantizer

    _need_ops()
    n = 128 if N == 5120 else 1024
    torch.manual_seed(0)
    x = torch.randn(N // n, n, D, device=device, requires_grad=True)
    kw = dict(decay=0.8, commitment_weight=1.0, rotation_trick=rotation_trick)
    if heads > 1:
        kw.update(heads=heads, codebook_dim=D // heads, separate_codebook_per_head=True)
    if sampling:
        kw.update(stochastic_sample_codes=True, sample_codebook_temp=0.5, codebook_diversity_loss_weight=0.1)
    torch.manual_seed(0)
    ours = VectorQuantizer(D, K, **kw)
    theirs = vqp.VectorQuantize(D, K, **kw)
    theirs._codebook.embed.data.copy_(ours.codebook.reshape(theirs._codebook.embed.shape))
    theirs._codebook.embed_avg.data.copy_(ours.codebook.reshape(theirs._codebook.embed.shape))
    rt = " rotation trick" if rotation_trick else ""
    mh = f" {heads} heads (separate codebooks)" if heads > 1 else ""
    sd = " sampling + diversity loss" if sampling else ""
    return _quantizer_step_case(f"vq layer step{rt}{mh}{sd} {torch.device(device).type} N={N} K={K} D={D}", ours,
                                theirs, x, device, dict(op="layer_step", N=N, K=K, D=D, rotation_trick=rotation_trick,
                                                        heads=heads, sampling=sampling))


def _quantizer_step_case(group: str, ours, theirs, x: torch.Tensor, device, info: dict) -> Case:
    """A training step (forward, backward of output and losses, EMA updates) of two quantisers
    that return ``(quantized, indices, loss or losses)``, after checking they pick the same codes
    (the nearest ones: temperature 0 where codes are sampled)."""
    ours, theirs = ours.to(device).train(), theirs.to(device).train()
    with torch.no_grad():
        check = {"sample_codebook_temp": 0.0} if getattr(ours, "stochastic_sample_codes", False) else {}
        if (ours(x, **check)[1] == theirs(x, **check)[1]).float().mean() <= 0.999:
            raise AssertionError(f"{group}: tsvq and vector_quantize_pytorch chose different codes")

    def make_step(layer):
        def step():
            q, _, loss = layer(x)
            (q.sum() * 1e-6 + loss.sum()).backward()
            return loss
        return step

    return Case(group, make_step(ours), {"vector_quantize_pytorch": make_step(theirs)}, x.shape[0] * x.shape[1],
                "vectors", info)


def scalar_quantizer_step_case(kind: str, N: int, K: int, D: int, device) -> Case:
    """A training step (forward, backward of the output and the auxiliary loss) of tsvq's FSQ, LFQ
    or SimVQ layer (``kind``: "fsq" | "lfq" | "simvq") against ``vector_quantize_pytorch``'s
    ``FSQ`` / ``LFQ`` / ``SimVQ`` from the same parameters, on ``N`` vectors of dim ``D`` in batches
    of 1024 with ``K`` codes (FSQ levels [8, 8, 4, 4] for 1024 and [8, 8, 8, 8, 4, 4] for 65536;
    LFQ ``2^d = K`` with its entropy penalty at inverse temperature 100). Codes are checked
    equal first. Raises ImportError without that package."""
    import vector_quantize_pytorch as vqp

    from tsvq.nn import FiniteScalarQuantizer, LookupFreeQuantizer, SimVQ

    torch.manual_seed(0)
    x = torch.randn(N // min(N, 1024), min(N, 1024), D, device=device, requires_grad=True)
    torch.manual_seed(0)
    if kind == "fsq":
        levels = {1024: [8, 8, 4, 4], 65536: [8, 8, 8, 8, 4, 4]}[K]
        theirs, ours = vqp.FSQ(levels=levels, dim=D), FiniteScalarQuantizer(levels, dim=D)
    elif kind == "lfq":
        theirs, ours = vqp.LFQ(dim=D, codebook_size=K), LookupFreeQuantizer(dim=D, codebook_size=K)
    else:
        theirs, ours = vqp.SimVQ(dim=D, codebook_size=K, rotation_trick=False), SimVQ(D, K, rotation_trick=False)
    ours.load_state_dict(theirs.state_dict(), strict=False)
    ours, theirs = ours.to(device).train(), theirs.to(device).train()
    with torch.no_grad():
        if not torch.equal(ours(x)[1].long(), theirs(x)[1].long()):
            raise AssertionError(f"{kind}: tsvq and vector_quantize_pytorch chose different codes")

    def make_step(layer):
        def step():
            out = layer(x)
            loss = out[2] if len(out) > 2 else out[0].new_zeros(())
            (out[0].sum() * 1e-6 + loss.sum()).backward()
            return loss
        return step

    return Case(f"{kind} layer step {torch.device(device).type} N={N} K={K} D={D}", make_step(ours),
                {"vector_quantize_pytorch": make_step(theirs)}, N, "vectors", dict(op=f"{kind}_step", N=N, K=K, D=D))


def residual_vq_step_case(N: int, K: int, D: int, Q: int, device, beam_size: int | None = None) -> Case:
    """Forward + backward + EMA updates of :class:`tsvq.nn.ResidualVectorQuantizer` (``Q`` layers)
    on ``N`` vectors in batches of 1024 against ``vector_quantize_pytorch.ResidualVQ`` from the same
    codebooks (decay 0.8, beta 1, straight-through), greedy or with ``beam_size`` beams. Raises
    ImportError without that package."""
    import vector_quantize_pytorch as vqp

    from tsvq.nn import ResidualVectorQuantizer

    _need_ops()
    torch.manual_seed(0)
    x = torch.randn(N // 1024, 1024, D, device=device, requires_grad=True)
    torch.manual_seed(0)
    ours = ResidualVectorQuantizer(D, Q, K, decay=0.8, commitment_weight=1.0, beam_size=beam_size)
    theirs = vqp.ResidualVQ(dim=D, num_quantizers=Q, codebook_size=K, decay=0.8, commitment_weight=1.0,
                            rotation_trick=False, beam_size=beam_size)
    for a, b in zip(ours.layers, theirs.layers):
        b._codebook.embed.data.copy_(a.codebook[None])
        b._codebook.embed_avg.data.copy_(a.codebook[None])
    beam = f" beam={beam_size}" if beam_size else ""
    return _quantizer_step_case(f"residual vq step {torch.device(device).type} N={N} K={K} D={D} Q={Q}{beam}", ours,
                                theirs, x, device, dict(op="residual_vq_step", N=N, K=K, D=D, Q=Q, beam_size=beam_size))


def _series(BC: int, L: int, n_fft: int, device):
    g = torch.Generator().manual_seed(0)
    return torch.randn(BC, 1, L, generator=g).to(device), torch.hann_window(n_fft, device=device), n_fft // 4


def stft_case(BC: int, L: int, n_fft: int, device) -> Case:
    """STFT of ``BC`` series of ``L`` samples (Hann window, hop n_fft // 4, center, reflect) against
    ``torch.stft``."""
    from tsvq.ops import reference, stft

    _need_ops()
    x, w, hop = _series(BC, L, n_fft, device)
    torch.testing.assert_close(stft(x, n_fft, hop, window=w), reference.stft(x, n_fft, hop, w), rtol=1e-4, atol=1e-4)
    return Case(f"stft {torch.device(device).type} BC={BC} L={L} n_fft={n_fft}",
                lambda: stft(x, n_fft, hop, window=w), {"torch": lambda: reference.stft(x, n_fft, hop, w)},
                x.numel(), "samples", dict(op="stft", BC=BC, L=L, n_fft=n_fft))


def istft_case(BC: int, L: int, n_fft: int, device) -> Case:
    """ISTFT back to ``BC`` series of ``L`` samples against ``torch.istft`` (which also reads the window
    envelope back to the host for its NOLA check)."""
    from tsvq.ops import istft, reference

    _need_ops()
    x, w, hop = _series(BC, L, n_fft, device)
    spec = reference.stft(x, n_fft, hop, w)
    torch.testing.assert_close(istft(spec, n_fft, hop, window=w, length=L), x, rtol=1e-4, atol=1e-4)
    return Case(f"istft {torch.device(device).type} BC={BC} L={L} n_fft={n_fft}",
                lambda: istft(spec, n_fft, hop, window=w, length=L),
                {"torch": lambda: reference.istft(spec, n_fft, hop, w, length=L)},
                x.numel(), "samples", dict(op="istft", BC=BC, L=L, n_fft=n_fft))


def stft_round_trip_case(BC: int, L: int, n_fft: int, device) -> Case:
    """The training round trip stft -> istft, forward + backward, against torch.stft / torch.istft."""
    from tsvq.ops import istft, reference, stft

    _need_ops()
    x, w, hop = _series(BC, L, n_fft, device)
    x.requires_grad_()
    pairs = {"tsvq": (lambda v: stft(v, n_fft, hop, window=w), lambda s: istft(s, n_fft, hop, window=w, length=L)),
             "torch": (lambda v: reference.stft(v, n_fft, hop, w), lambda s: reference.istft(s, n_fft, hop, w, length=L))}
    grads = {}
    for name, (f, fi) in pairs.items():
        (grads[name],) = torch.autograd.grad(fi(f(x) * 0.5).pow(2).sum(), x)
    torch.testing.assert_close(grads["tsvq"], grads["torch"], rtol=1e-4, atol=1e-4, msg="stft round trip gradient")

    def make_step(f, fi):
        def step():
            x.grad = None
            fi(f(x) * 0.5).pow(2).sum().backward()
        return step

    return Case(f"stft+istft fwd+bwd {torch.device(device).type} BC={BC} L={L} n_fft={n_fft}",
                make_step(*pairs["tsvq"]), {"torch": make_step(*pairs["torch"])}, x.numel(), "samples",
                dict(op="stft_istft_train", BC=BC, L=L, n_fft=n_fft))


def barlow_twins_case(N: int, D: int, device) -> Case:
    """Barlow Twins loss forward + backward (lambda 0.005, scale_by_dim) on ``N x D`` embeddings against
    the explicit D x D cross-correlation matrix (facebookresearch/barlowtwins semantics)."""
    from tsvq.ops import barlow_twins_loss, reference

    _need_ops()
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(N, D, generator=g).to(device).requires_grad_()
    z2 = torch.randn(N, D, generator=g).to(device).requires_grad_()
    torch.testing.assert_close(barlow_twins_loss(z1, z2, 0.005, 1e-5, False, True),
                               reference.barlow_twins_loss(z1, z2, 0.005, 1e-5, False, True), rtol=1e-3, atol=1e-4)

    def make_step(fn):
        def step():
            z1.grad = z2.grad = None
            fn(z1, z2, 0.005, 1e-5, False, True).backward()
        return step

    return Case(f"barlow_twins {torch.device(device).type} N={N} D={D}", make_step(barlow_twins_loss),
                {"reference": make_step(reference.barlow_twins_loss)}, N, "samples",
                dict(op="barlow_twins_loss", N=N, D=D))


def _covariance_term_dxd(z: torch.Tensor, correlation: bool) -> torch.Tensor:
    """VICReg's (``correlation=False``) or VIbCReg's covariance term from the explicit D x D matrix,
    as the papers and their code write it: the baseline of :func:`ssl_loss_case`."""
    zc = z - z.mean(0)
    if correlation:
        zc = torch.nn.functional.normalize(zc, p=2, dim=0)
    m = zc.T @ zc if correlation else zc.T @ zc / (z.shape[0] - 1)
    off = m - torch.diag_embed(torch.diagonal(m))
    return off.pow(2).mean() if correlation else off.pow(2).sum() / z.shape[1]


def ssl_loss_case(name: str, N: int, D: int, device) -> Case:
    """``VICRegLoss`` / ``VIbCRegLoss`` (NC-VQVAE weights) forward + backward on ``N x D`` projector
    outputs, against the same loss with its covariance term from the explicit D x D matrix (the
    formulation of the papers' code); the losses are checked equal first. ``name``: "vicreg" or
    "vibcreg"."""
    from tsvq.nn import VIbCRegLoss, VICRegLoss

    losses = {"vicreg": (VICRegLoss, False), "vibcreg": (VIbCRegLoss, True)}
    if name not in losses:
        raise ValueError(f"name must be one of {sorted(losses)}, got {name!r}")
    cls, correlation = losses[name]
    ours = cls(25.0, 25.0, 1.0 if name == "vicreg" else 100.0)

    class DxD(cls):
        covariance_term = staticmethod(lambda z: _covariance_term_dxd(z, correlation))

    theirs = DxD(ours.sim_weight, ours.var_weight, ours.cov_weight)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(N, D, generator=g).to(device).requires_grad_()
    z2 = (z1.detach().cpu() + 0.5 * torch.randn(N, D, generator=g)).to(device).requires_grad_()
    torch.testing.assert_close(ours(z1, z2), theirs(z1, z2), rtol=1e-4, atol=1e-5, msg=f"{name}: D x D vs Gram")

    def make_step(loss):
        def step():
            z1.grad = z2.grad = None
            loss(z1, z2).backward()
        return step

    return Case(f"{name} loss {torch.device(device).type} N={N} D={D}", make_step(ours), {"dxd": make_step(theirs)},
                N, "samples", dict(op=f"{name}_loss", N=N, D=D))


TRAINING_STEP_MODELS = {  # name -> (registry name, overrides)
    "ncvqvae-quick": ("ncvqvae", {"projector_widths": (1024, 1024, 1024)}),
    "ncvqvae-paper": ("ncvqvae", {"projector_widths": (4096, 4096, 4096)}),
    "vqvae": ("vqvae", {}),
}


def adamw_step(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A training step of ``model`` on ``x`` with its own AdamW (:func:`tsvq.engine.optim.adamw`, the training
    loop's; lr 1e-3, weight decay 1e-3): zero the gradients, ``model(x)["loss"]``, backward,
    optimiser step (views and schedules as the training loop: :func:`tsvq.engine.module.stage1_step`);
    returns the loss."""
    opt = adamw(model.parameters(), 1e-3, 1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        out = stage1_step(model, (x,), None, 0, 1)["loss"]
        out.backward()
        opt.step()
        return out
    return step


def training_step_case(model: str, device, B: int = 128, L: int = 150) -> Case:
    """One AdamW training step (forward with every view, backward, optimiser) of a tokenizer from
    :data:`TRAINING_STEP_MODELS` on ``B`` series of ``L`` samples, against the same weights run inside
    :func:`tsvq._extension.reference_ops` (every tsvq op on its pure-PyTorch reference, nothing else
    changed); the two losses of a first step from the same random streams are checked equal."""
    from tsvq._extension import reference_ops
    from tsvq.models import create_model

    _need_ops()
    if model not in TRAINING_STEP_MODELS:
        raise ValueError(f"model must be one of {sorted(TRAINING_STEP_MODELS)}, got {model!r}")
    name, overrides = TRAINING_STEP_MODELS[model]
    torch.manual_seed(0)
    ours = create_model(name, length=L, **overrides).to(device).train()
    theirs = copy.deepcopy(ours)
    x = torch.randn(B, 1, L, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():  # one forward each from equal states (EMA and BatchNorm updates alike)
        loss = stage1_step(ours, (x,), torch.Generator().manual_seed(1), 0, 1)["loss"]
        with reference_ops():
            ref_loss = stage1_step(theirs, (x,), torch.Generator().manual_seed(1), 0, 1)["loss"]
    torch.testing.assert_close(loss, ref_loss, rtol=1e-3, atol=1e-4, msg="training step loss")

    def make_step(m, reference: bool):
        step = adamw_step(m, x)
        if not reference:
            return step

        def reference_step():
            with reference_ops():
                return step()
        return reference_step

    return Case(f"training step {torch.device(device).type} {model} B={B} L={L}", make_step(ours, False),
                {"reference": make_step(theirs, True)}, B, "series", dict(op="training_step", model=model, B=B, L=L))


@dataclass(frozen=True)
class Target:
    """A speed target of SPEC section 6: tsvq >= ``speedup`` x ``baseline`` on an H100."""
    name: str
    build: Callable[[Any], Case]
    baseline: str
    speedup: float
    cuda_only: bool = False


TARGETS = [
    Target("nearest_code N=65536 K=1024 D=64", lambda d: nearest_code_case(65536, 1024, 64, d), "cdist", 3.0),
    Target("vq layer step N=65536 K=1024 D=64", lambda d: layer_step_case(65536, 1024, 64, d),
           "vector_quantize_pytorch", 5.0),
    Target("stft BC=1024 L=1024 n_fft=8", lambda d: stft_case(1024, 1024, 8, d), "torch", 3.0),
    Target("stft BC=1024 L=1024 n_fft=64", lambda d: stft_case(1024, 1024, 64, d), "torch", 3.0),
    Target("istft BC=1024 L=1024 n_fft=8", lambda d: istft_case(1024, 1024, 8, d), "torch", 5.0),
    Target("istft BC=1024 L=1024 n_fft=64", lambda d: istft_case(1024, 1024, 64, d), "torch", 5.0),
    Target("barlow_twins N=512 D=4096", lambda d: barlow_twins_case(512, 4096, d), "reference", 5.0),
    Target("barlow_twins N=2048 D=8192", lambda d: barlow_twins_case(2048, 8192, d), "reference", 2.0, cuda_only=True),
    Target("ncvqvae training step B=128 L=150", lambda d: training_step_case("ncvqvae-paper", d), "reference", 2.0),
]


def measure(case: Case, baseline: str, device, rounds: int) -> dict:
    """Median milliseconds per call of tsvq and of ``baseline`` in paired rounds, and the speed-up."""
    ours, theirs = synced(case.tsvq, device), synced(case.baselines[baseline], device)
    base_s, tsvq_s = paired_medians(theirs, iterations_per_round(theirs), ours, iterations_per_round(ours), rounds)
    return {"tsvq_ms": tsvq_s * 1e3, "baseline_ms": base_s * 1e3, "speedup": base_s / tsvq_s,
            f"{case.unit}_per_s": case.items / tsvq_s}


def run_targets(device="cpu", rounds: int = 10, match: str | None = None,
                progress: Callable[[str], None] | None = None) -> list[dict]:
    """Measure every target of :data:`TARGETS` on ``device`` (those whose name contains ``match``).

    On a CUDA device the target is SPEC's (stated for an H100); on a CPU it is 1.0 (SPEC: "on CPU no
    kernel is slower than its reference"), and the CUDA-only shapes are left out.

    Returns:
        one dict per target: ``name``, ``baseline``, ``device``, ``target``, and from :func:`measure`
        ``tsvq_ms``, ``baseline_ms``, ``speedup`` and a throughput, or ``skipped`` (why) instead.

    Raises:
        RuntimeError: the extension is not built (nothing to compare).
        ValueError: ``rounds`` < 1, a device that is not available, or ``match`` selects nothing.
    """
    device = torch.device(device)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    _need_ops()
    targets = [t for t in TARGETS if (device.type == "cuda" or not t.cuda_only) and (not match or match in t.name)]
    if not targets:
        raise ValueError(f"match: no target name contains {match!r}; names: {[t.name for t in TARGETS]}")
    rows = []
    for t in targets:
        if progress:
            progress(t.name)
        row = {"name": t.name, "baseline": t.baseline, "device": str(device),
               "target": t.speedup if device.type == "cuda" else 1.0}
        try:
            case = t.build(device)
        except ImportError as err:
            row["skipped"] = f"{err.name or err} is not installed"
        else:
            row.update(measure(case, t.baseline, device, rounds))
            del case
        rows.append(row)
    return rows


def format_targets(rows: list[dict]) -> str:
    """Markdown table of :func:`run_targets` rows."""
    lines = ["| target | baseline | tsvq (ms) | baseline (ms) | speed-up | target | met |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['name']} | {r['baseline']} | | | | {r['target']:g}x | skipped: {r['skipped']} |")
            continue
        lines.append(f"| {r['name']} | {r['baseline']} | {r['tsvq_ms']:.3f} | {r['baseline_ms']:.3f} | "
                     f"{r['speedup']:.2f}x | {r['target']:g}x | {'yes' if r['speedup'] >= r['target'] else 'no'} |")
    return "\n".join(lines)
