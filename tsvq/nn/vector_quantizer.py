"""``VectorQuantizer``: a drop-in vector-quantisation layer on the tsvq kernels."""
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..ops import code_stats, ema_codebook_update_, nearest_code
from ..ops._checks import check_finite_on_cpu
from ..ops.ema_codebook_update import ema_apply_
from . import _compat
from .kmeans import kmeans

_USAGE_DECAY = 0.99  # EMA of code usage kept for statistics when the codebook is loss-trained


def is_distributed() -> bool:
    """Whether torch.distributed runs with more than one process (the codebook statistics are then all-reduced)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _counts(indices: torch.Tensor, valid: torch.Tensor | None, K: int, dtype: torch.dtype) -> torch.Tensor:
    """Vectors per code, counting only rows with ``valid`` True (all when None)."""
    weights = torch.ones_like(indices, dtype=dtype) if valid is None else valid.to(dtype)
    return torch.zeros(K, dtype=dtype, device=indices.device).index_add_(0, indices, weights)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows with ``valid`` True (0 when there are none)."""
    rows = (a - b).square().sum(1)
    return (rows * valid.to(rows.dtype)).sum() / (valid.sum() * a.shape[1]).clamp_min(1)


def _random_rows(n: int, valid: torch.Tensor | None, shape: tuple[int, ...], device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Uniform random row indices in [0, n) of the given shape, among the rows with ``valid``
    True when given (the r-th valid row, r uniform: searchsorted on their running count), with no
    host synchronisation; and, with ``valid``, a bool scalar tensor: whether any row is valid."""
    if valid is None:
        return torch.randint(0, n, shape, device=device), None
    running = valid.cumsum(0)
    r = (torch.rand(shape, device=device) * running[-1]).long()
    return torch.searchsorted(running, (r + 1).flatten()).view(shape).clamp_max(n - 1), running[-1] > 0


class LossBreakdown(NamedTuple):
    """The terms of :class:`VectorQuantizer`'s loss before their weights (``forward(...,
    return_loss_breakdown=True)``), with ``vector_quantize_pytorch.LossBreakdown``'s fields.

    Attributes:
        commitment: ``mean ||z - sg(z_q)||^2`` over the real vectors (scalar; the cross-entropy
            with ``commitment_use_cross_entropy_loss``). With ``decay=None``
            the codebook loss ``mean ||sg(z) - z_q||^2`` has the same value (its gradient goes to
            the codebook instead), and the loss is ``(beta + 1) * commitment + ...``.
        codebook_diversity: the codebook-diversity term ``-mean_n H(mean p)`` (see
            ``codebook_diversity_loss_weight``), 0 where it is not computed (weight 0 or eval mode).
        orthogonal_reg: the orthogonal regulariser, 0 where it is not computed (weight 0, eval
            mode or frozen codebook).
        inplace_optimize: always 0 (no in-place codebook optimiser).
    """

    commitment: torch.Tensor
    codebook_diversity: torch.Tensor
    orthogonal_reg: torch.Tensor
    inplace_optimize: torch.Tensor


_CHUNK_LOGITS = 1 << 22  # rows x K logits per chunk (cross-entropy, sampling, diversity; 16 MiB in float32)


def _logits(rows: torch.Tensor, codebook: torch.Tensor, cosine: bool) -> torch.Tensor:
    """``Tensor[R, K]`` logits of ``VectorQuantize``: ``-||x_r - e_k||`` (its cdist, squared
    distance clamped at 1e-8), or ``x_r . e_k`` for the cosine metric. For chunks of rows only."""
    if cosine:
        return rows @ codebook.T
    d2 = rows.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * (rows @ codebook.T)
    return -d2.clamp_min(1e-8).sqrt()


def _chunk_rows(K: int) -> int:
    """Rows per chunk so that a chunk's logits hold at most ``_CHUNK_LOGITS`` values."""
    return max(1, _CHUNK_LOGITS // K)


def _ce_chunk(rows: torch.Tensor, codebook: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              cosine: bool) -> torch.Tensor:
    logits = _logits(rows, codebook, cosine)
    ce = torch.logsumexp(logits, 1) - logits.gather(1, target.unsqueeze(1)).squeeze(1)
    return (ce * weight).sum()


def _cross_entropy_sum(rows: torch.Tensor, codebook: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       cosine: bool) -> torch.Tensor:
    """``sum_n weight_n * CE(logits_n, target_n)`` with ``logits_nk = -||x_n - e_k||`` (cosine:
    ``x_n . e_k``), in chunks of rows that are recomputed in the backward pass
    (``torch.utils.checkpoint``), so that at most ``_CHUNK_LOGITS`` logits exist at once."""
    step = _chunk_rows(codebook.shape[0])
    grad = torch.is_grad_enabled() and (rows.requires_grad or codebook.requires_grad)
    total = rows.new_zeros(())
    for s in range(0, rows.shape[0], step):
        args = (rows[s:s + step], codebook, target[s:s + step], weight[s:s + step], cosine)
        total = total + (checkpoint(_ce_chunk, *args, use_reentrant=False) if grad else _ce_chunk(*args))
    return total


def _gumbel_sample(rows: torch.Tensor, codebook: torch.Tensor, temperature: float, cosine: bool) -> torch.Tensor:
    """int64 ``[R]``: a code per row drawn from ``softmax_k(logits_rk / temperature)`` by the
    Gumbel-max trick, ``argmax_k logits_rk / temperature + g_rk`` with ``g = -log(-log u)``,
    ``u ~ U(0, 1)`` (logs clamped at 1e-20, as ``VectorQuantize``'s ``gumbel_noise``), one chunk
    of rows at a time in row order; no gradient. On a CPU the noise is the same stream as
    ``VectorQuantize``'s ``uniform_`` over its whole ``[rows, K]`` matrix (CPU sampling is serial)."""
    step = _chunk_rows(codebook.shape[0])
    out = torch.empty(rows.shape[0], dtype=torch.long, device=rows.device)
    for s in range(0, rows.shape[0], step):
        logits = _logits(rows[s:s + step], codebook, cosine)
        u = torch.zeros_like(logits).uniform_(0, 1)
        gumbel = -u.clamp_min(1e-20).log().neg().clamp_min(1e-20).log()
        out[s:s + step] = (logits / temperature + gumbel).argmax(1)
    return out


def _neg_entropy_of_mean(sums: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``-mean_n H(sums_n / count_n)`` over the positions n with ``count_n > 0``, ``H(p) = -sum_k p_k
    log max(p_k, 1e-5)`` (``VectorQuantize``'s ``entropy``)."""
    present = count > 0
    mean = sums / count.clamp_min(1).unsqueeze(1)
    entropy = -(mean * mean.clamp_min(1e-5).log()).sum(1)
    return -(entropy * present).sum() / present.sum().clamp_min(1)


def _diversity_groups(flat, codebook, pos, weight, groups: int, K: int):
    """(rows, codes, positions, weights) of each codebook: one group, or with separate codebooks
    head j's rows ``flat[j::groups]`` against codes ``j*K .. (j+1)*K - 1``."""
    if groups == 1:
        return [(flat, codebook, pos, weight)]
    rows, pos, weight = flat.view(-1, groups, flat.shape[1]), pos.view(-1, groups), weight.view(-1, groups)
    return [(rows[:, j], codebook[j * K:(j + 1) * K], pos[:, j], weight[:, j]) for j in range(groups)]


class _CodebookDiversity(torch.autograd.Function):
    """The codebook-diversity loss of ``VectorQuantize``: ``-mean_n H(mean_r p_r)``, where
    ``p_r = softmax_k(temperature * logits_rk)`` (``logits`` as :func:`_logits`) and the inner mean
    runs over the rows r at sequence position n (all batch elements and heads; with one position
    for ``[B, D]`` input). Rows of weight 0 (padding) take no part. Forward sums the ``[positions,
    K]`` probabilities chunk by chunk; backward recomputes each chunk's softmax, so at most
    ``_CHUNK_LOGITS`` logits exist at once (never N x K)."""

    @staticmethod
    def forward(ctx, flat, codebook, pos, weight, groups: int, K: int, n_pos: int, temperature: float,
                cosine: bool):
        sums = flat.new_zeros(n_pos, K)
        step = _chunk_rows(K)
        for rows, codes, p, w in _diversity_groups(flat, codebook, pos, weight, groups, K):
            for s in range(0, rows.shape[0], step):
                prob = torch.softmax(temperature * _logits(rows[s:s + step], codes, cosine), 1)
                sums.index_add_(0, p[s:s + step], prob * w[s:s + step].unsqueeze(1))
        count = flat.new_zeros(n_pos).index_add_(0, pos, weight)
        ctx.save_for_backward(flat, codebook, pos, weight, sums, count)
        ctx.config = (groups, K, temperature, cosine)
        return _neg_entropy_of_mean(sums, count)

    @staticmethod
    def backward(ctx, grad):
        flat, codebook, pos, weight, sums, count = ctx.saved_tensors
        groups, K, temperature, cosine = ctx.config
        with torch.enable_grad():
            leaf = sums.detach().requires_grad_()
            (g_sums,) = torch.autograd.grad(_neg_entropy_of_mean(leaf, count), leaf, grad)
        need = ctx.needs_input_grad[:2]
        g_flat = torch.zeros_like(flat) if need[0] else None
        g_codebook = torch.zeros_like(codebook) if need[1] else None
        g_groups = _diversity_groups(g_flat if need[0] else flat, g_codebook if need[1] else codebook,
                                     pos, weight, groups, K)
        step = _chunk_rows(K)
        for (rows, codes, p, w), (g_rows, g_codes, _, _) in zip(
                _diversity_groups(flat, codebook, pos, weight, groups, K), g_groups):
            for s in range(0, rows.shape[0], step):
                with torch.enable_grad():
                    r = rows[s:s + step].detach().requires_grad_(need[0])
                    c = codes.detach().requires_grad_(need[1])
                    prob = torch.softmax(temperature * _logits(r, c, cosine), 1)
                    target = g_sums[p[s:s + step]] * w[s:s + step].unsqueeze(1)
                    inputs = [t for t, n in ((r, need[0]), (c, need[1])) if n]
                    grads = list(torch.autograd.grad((prob * target).sum(), inputs))
                if need[0]:
                    g_rows[s:s + step] += grads.pop(0)
                if need[1]:
                    g_codes += grads.pop(0)
        return g_flat, g_codebook, None, None, None, None, None, None, None


_NORM_EPS = 1e-6  # norm clamp of vector_quantize_pytorch (its l2norm and safe_div): rotation trick, orthogonal reg


def _orthogonal_reg_loss(codebook: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Orthogonal codebook regularisation (Shin et al. 2023, eq. 2, as ``vector_quantize_pytorch``
    computes it) on the codes with ``weights`` 1 (others 0): with ``c_i`` the L2-normalised codes
    and n their number, ``sum_ij (c_i . c_j)^2 / n^2 - 1/n``, zero for n orthogonal codes. The sum
    is ``||C^T C||_F^2`` (a D x D Gram) when K > D, ``||C C^T||_F^2`` otherwise: never K x K for
    large K, no host synchronisation (the weights select codes without indexing by a mask).
    ``codebook: Tensor[..., K, D]``, ``weights: Tensor[..., K]``: with leading (head) dims, the
    mean of the per-codebook losses."""
    c = F.normalize(codebook, dim=-1, eps=_NORM_EPS) * weights.unsqueeze(-1)
    gram = c.mT @ c if c.shape[-2] > c.shape[-1] else c @ c.mT
    n = weights.sum(-1)
    return (gram.square().sum((-2, -1)) / n.square() - 1 / n).mean()


class _RotationTrick(torch.autograd.Function):
    """Rotation-trick gradient through the quantiser (Fifty et al. 2024, sec. 4.2).

    Forward returns ``z_q`` itself (bit-exact; the paper's ``lambda R z`` equals it only up to
    rounding). Backward treats the output as ``lambda R z`` with the rotation
    ``R = I - 2 w w^T + 2 q u^T`` (``u = z/|z|``, ``q = z_q/|z_q|``, ``w = (u+q)/|u+q|``) and
    ``lambda = |z_q|/|z|`` held constant, so ``dL/dz = lambda (g - 2 (g.w) w + 2 (g.q) u)`` for
    ``g = dL/dz_q``; no gradient reaches ``z_q``. Norms are clamped at 1e-6 as in
    ``vector_quantize_pytorch``.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, z_q)
        return z_q.view_as(z_q)  # no copy

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        z, z_q = ctx.saved_tensors
        nz = z.norm(dim=-1, keepdim=True).clamp_min(_NORM_EPS)
        norm_q = z_q.norm(dim=-1, keepdim=True)
        u, q = z / nz, z_q / norm_q.clamp_min(_NORM_EPS)
        w = u + q
        w = w / w.norm(dim=-1, keepdim=True).clamp_min(_NORM_EPS)
        dot = lambda a, b: (a * b).sum(-1, keepdim=True)  # noqa: E731
        grad = g - 2 * dot(g, w) * w + 2 * dot(g, q) * u
        return grad * (norm_q / nz), None


class VectorQuantizer(nn.Module):
    """Vector quantiser with an EMA or loss-trained codebook (VQ-VAE, van den Oord et al. 2017).

    Each D-dimensional vector z of the input is replaced by its nearest codeword
    ``z_q = e_k``, ``k = argmin_j ||z - e_j||^2`` (eq. 1; cosine similarity with
    ``use_cosine_sim``), and gradients pass straight through (``z + sg(z_q - z)``, eq. 3).
    The loss is the commitment loss ``beta ||z - sg(z_q)||^2`` (mean over elements), plus the
    codebook loss ``||sg(z) - z_q||^2`` when the codebook is trained by gradient
    (``decay=None``). With ``decay`` set the codebook is an exponential moving average of the
    vectors assigned to each code (appendix A.1), updated in place in training mode by the
    fused ``torch.ops.tsvq.ema_codebook_update_`` kernel, with no host synchronisation.

    With ``rotation_trick=True`` the gradient instead passes through the rotation and rescaling
    that maps z onto z_q (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
    Trick", sec. 4.2): ``dL/dz = (|z_q|/|z|) R^T dL/dz_q``, ``R = I - 2 w w^T + 2 q u^T`` with
    ``u = z/|z|``, ``q = z_q/|z_q|``, ``w = (u + q)/|u + q|`` (all held constant), so vectors in
    the same Voronoi cell get different gradients according to where they lie in it. The output
    is still exactly z_q.

    A drop-in for ``vector_quantize_pytorch.VectorQuantize`` in its common configuration (same
    constructor names and ``(quantized, indices, loss)`` return), without the N x K distance
    matrix. Deliberate differences: the commitment loss is also returned in ``eval()`` mode
    (useful for validation curves; ``VectorQuantize`` returns 0 there), and ``rotation_trick``
    defaults to False (the VQ-VAE straight-through estimator used by TimeVQVAE and NC-VQVAE),
    where ``VectorQuantize`` (1.32, the version tested against) defaults to True for
    dim > 1: pass ``rotation_trick=True`` for its default gradient. And a codebook trained by
    gradient (``decay=None``; ``VectorQuantize(learnable_codebook=True, ema_update=False)``) gets
    the codebook loss with weight 1 as in VQ-VAE eq. 3, where ``VectorQuantize`` weights it by
    beta as well (the same loss at the default beta = 1).

    Args:
        dim: D of the input vectors.
        codebook_size: K, number of codewords, >= 1.
        codebook_dim: dimension of the codewords; if ``codebook_dim * heads`` differs from
            ``dim``, linear layers project in and out. Default ``dim``.
        heads: h, multi-head quantisation (as ``VectorQuantize``): each (projected) vector of
            ``h * codebook_dim`` is cut into h sub-vectors of ``codebook_dim``, each quantised on its
            own, and the codes are concatenated back; indices gain a last dimension of size h.
            Default 1. (Set ``codebook_dim = dim // heads`` to split the input without a projection.)
        separate_codebook_per_head: one codebook per head (``codebook: Tensor[h, K, codebook_dim]``,
            ``cluster_size: Tensor[h, K]``); default False: all heads share one ``[K, codebook_dim]``.
        decay: EMA decay gamma in [0, 1) (default 0.8, as ``VectorQuantize`` and TimeVQVAE);
            ``None`` trains the codebook by gradient with the codebook loss.
        eps: Laplace smoothing of the EMA cluster sizes, default 1e-5.
        commitment_weight: beta, default 1.0.
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations for that, default 10.
        threshold_ema_dead_code: codes whose EMA cluster size falls below this are replaced by
            random vectors of the current batch (0 = never; default 0).
        use_cosine_sim: quantise L2-normalised vectors against an L2-normalised codebook.
        rotation_trick: pass gradients with the rotation trick instead of the straight-through
            estimator (default False; see above).
        commitment_use_cross_entropy_loss: the commitment term is the cross-entropy of the chosen
            codes under ``softmax_k(-||z - e_k||)`` (cosine: ``softmax_k(z . e_k)``), averaged over
            the vectors, instead of ``||z - sg(z_q)||^2`` (as ``VectorQuantize``'s option: the
            gradient pulls z towards its code and away from the others). Computed in chunks of
            rows recomputed in the backward pass, never N x K at once. With ``decay=None`` the
            codebook loss is still added (``VectorQuantize`` then drops it). Default False.
        stochastic_sample_codes: in training, draw each vector's code from
            ``softmax_k(-||z - e_k|| / sample_codebook_temp)`` (cosine: ``z . e_k``) by the Gumbel-max
            trick instead of taking the nearest one (as ``VectorQuantize``'s option; Gumbel 1954,
            Maddison et al. 2014), in chunks of rows (never N x K at once, matrix products instead of
            the search kernel). The sampled code is used everywhere the nearest one would be (output,
            losses, EMA update); the gradient is still the straight-through estimator (or the rotation
            trick). Eval mode and temperature 0 take the nearest code. On a CPU, with the same seed, the
            draws are ``VectorQuantize``'s. Default False.
        sample_codebook_temp: the sampling temperature, >= 0 (default 1.0); also per call,
            ``forward(..., sample_codebook_temp=...)``.
        codebook_diversity_loss_weight: weight of ``VectorQuantize``'s codebook-diversity term, added
            to the loss in training: ``-mean_n H(mean_r softmax_k(T * logits_rk))``, the negative
            entropy of the average soft assignment, where the average runs over the rows r (batch
            elements and heads) at each sequence position n (one position for ``[B, D]`` input) and
            ``logits`` are ``-||z - e_k||`` (cosine: ``z . e_k``). Maximising that entropy spreads the
            batch over the codebook. Computed in chunks of rows, recomputed in the backward pass (at
            most ``[positions, K]`` and one chunk's logits in memory); padding under ``mask`` is left out
            (``VectorQuantize`` counts it). The gradient reaches the codebook when it is trained by
            gradient (``decay=None``) and not frozen. Default 0 (off).
        codebook_diversity_temperature: T above, > 0 (default 100.0, as ``VectorQuantize``).
        orthogonal_reg_weight: weight of the orthogonal codebook regulariser (Shin et al. 2023,
            "Exploration into Translation-Equivariant Image Quantization", eq. 2):
            ``sum_ij (c_i . c_j)^2 / n^2 - 1/n`` over the n L2-normalised codes, added to the loss
            in training. Default 0 (off); > 0 makes the codebook an ``nn.Parameter`` that the
            optimiser also moves, with an EMA codebook too (as ``VectorQuantize``).
        orthogonal_reg_active_codes_only: regularise only the codes used in the batch.
        orthogonal_reg_max_codes: regularise at most this many codes, drawn at random each step
            (default None = all).
        freeze_codebook: in training mode too, leave the codebook as it is: no EMA update or
            dead-code restart, no gradient from the codebook loss or the orthogonal regulariser
            (k-means initialisation still runs once). An attribute; set it at any time, or per
            call with ``forward(..., freeze_codebook=True)``.
        channel_last: input is ``[B, N, D]`` (default). ``False``: channel-first ``[B, D, N]``.
        accept_image_fmap: input is channel-first ``[B, D, H, W]`` (any number of spatial
            dims is accepted whenever the input is channel-first).
        sync_codebook: all-reduce EMA statistics and k-means across ranks; default: whenever
            ``torch.distributed`` is initialised with more than one rank.
        **vqp_kwargs: other ``VectorQuantize`` keywords, taken only at the values that ask for what
            tsvq does (``sync_kmeans=True``, ``learnable_codebook=False``, ``ema_update=True``,
            ``straight_through=False``, ``accept_3d_fmap=False``, ...; see
            ``tsvq/nn/_compat.py``), so that a configuration spelling them out runs unchanged.

    Shapes:
        input: ``Tensor[B, D]``, ``Tensor[B, N, D]`` or channel-first ``Tensor[B, D, *S]``.
        mask (optional, ``forward(x, mask=...)``): bool ``Tensor[B, N]`` for sequences (``[B, N, D]``
            or ``[B, D, N]``), False at padding: padding is left out of the losses, the codebook
            statistics, k-means and dead-code restarts, and returns 0 and index -1. Or ``lens``:
            int ``Tensor[B]``, the real length of each sequence.
        quantized: same shape and dtype as the input.
        indices: int64, the input shape without D (``[B]``, ``[B, N]`` or ``[B, *S]``), with a last
            dimension of size h when ``heads > 1`` (``[B, h]``, ``[B, N, h]``, ``[B, *S, h]``).
        loss: scalar float32 (float64 for float64 inputs).

    Raises:
        ValueError: bad constructor values (a ``VectorQuantize`` keyword at a value tsvq does not
            provide: the message says what to use instead), wrong input rank or D, empty batch, NaN/inf input
            on CPU (on CUDA such vectors give a NaN loss, see :func:`tsvq.ops.nearest_code`;
            padding under ``mask`` may hold anything), a ``mask`` or ``lens`` of the wrong shape
            or device, both of them, or either with input that is not a sequence, a
            ``sample_codebook_temp`` that is negative, NaN or inf.
        TypeError: an unknown keyword, non-float input, non-bool ``mask``, non-integer ``lens``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        heads: int = 1,
        separate_codebook_per_head: bool = False,
        decay: float | None = 0.8,
        eps: float = 1e-5,
        commitment_weight: float = 1.0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 0,
        use_cosine_sim: bool = False,
        rotation_trick: bool = False,
        commitment_use_cross_entropy_loss: bool = False,
        stochastic_sample_codes: bool = False,
        sample_codebook_temp: float = 1.0,
        codebook_diversity_loss_weight: float = 0.0,
        codebook_diversity_temperature: float = 100.0,
        orthogonal_reg_weight: float = 0.0,
        orthogonal_reg_active_codes_only: bool = False,
        orthogonal_reg_max_codes: int | None = None,
        freeze_codebook: bool = False,
        channel_last: bool = True,
        accept_image_fmap: bool = False,
        sync_codebook: bool | None = None,
        **vqp_kwargs,
    ):
        super().__init__()
        _compat.check(type(self).__name__, vqp_kwargs, _compat.VECTOR_QUANTIZE, decay=decay)
        if rotation_trick is None:  # VectorQuantize's default: None = True for dim > 1
            raise ValueError("rotation_trick must be True or False, got None (VectorQuantize reads None as True "
                             "for dim > 1; tsvq's default is False, the straight-through estimator)")
        codebook_dim = dim if codebook_dim is None else codebook_dim
        for name, value, low in (("dim", dim, 1), ("codebook_size (K)", codebook_size, 1),
                                 ("codebook_dim", codebook_dim, 1), ("heads", heads, 1), ("kmeans_iters", kmeans_iters, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1) or None (loss-trained codebook), got {decay}")
        if not 0.0 <= eps < math.inf or (decay is not None and eps == 0.0):
            # eps = 0 divides an unused code's EMA sum by its EMA count: 0 / 0 once the count underflows
            raise ValueError(f"eps must be a finite float > 0 with an EMA codebook (>= 0 without), got {eps}")
        if not 0.0 <= commitment_weight < math.inf:
            raise ValueError(f"commitment_weight must be a finite float >= 0, got {commitment_weight}")
        if not 0.0 <= threshold_ema_dead_code < math.inf:
            raise ValueError(f"threshold_ema_dead_code must be a finite number >= 0 (0: no restarts), "
                             f"got {threshold_ema_dead_code}")
        if not 0.0 <= sample_codebook_temp < math.inf:
            raise ValueError(f"sample_codebook_temp must be a finite float >= 0, got {sample_codebook_temp}")
        if not 0.0 <= codebook_diversity_loss_weight < math.inf:
            raise ValueError("codebook_diversity_loss_weight must be a finite float >= 0, "
                             f"got {codebook_diversity_loss_weight}")
        if not 0.0 < codebook_diversity_temperature < math.inf:
            raise ValueError(f"codebook_diversity_temperature must be a finite float > 0, got {codebook_diversity_temperature}")
        if not 0.0 <= orthogonal_reg_weight < math.inf:
            raise ValueError(f"orthogonal_reg_weight must be a finite float >= 0, got {orthogonal_reg_weight}")
        if orthogonal_reg_max_codes is not None and orthogonal_reg_max_codes < 1:
            raise ValueError(f"orthogonal_reg_max_codes must be >= 1 or None, got {orthogonal_reg_max_codes}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.heads = int(heads)
        self.separate_codebook_per_head = bool(separate_codebook_per_head)
        self.decay = decay
        self.eps = eps
        self.commitment_weight = commitment_weight
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = float(threshold_ema_dead_code)
        self.use_cosine_sim = use_cosine_sim
        self.rotation_trick = bool(rotation_trick)
        self.commitment_use_cross_entropy_loss = bool(commitment_use_cross_entropy_loss)
        self.stochastic_sample_codes = bool(stochastic_sample_codes)
        self.sample_codebook_temp = float(sample_codebook_temp)
        self.codebook_diversity_loss_weight = float(codebook_diversity_loss_weight)
        self.codebook_diversity_temperature = float(codebook_diversity_temperature)
        self.orthogonal_reg_weight = float(orthogonal_reg_weight)
        self.orthogonal_reg_active_codes_only = bool(orthogonal_reg_active_codes_only)
        self.orthogonal_reg_max_codes = orthogonal_reg_max_codes
        self.freeze_codebook = bool(freeze_codebook)
        self.channel_last = channel_last
        self.accept_image_fmap = accept_image_fmap
        self.sync_codebook = sync_codebook

        inner = codebook_dim * self.heads
        needs_projection = inner != dim
        self.project_in = nn.Linear(dim, inner) if needs_projection else nn.Identity()
        self.project_out = nn.Linear(inner, dim) if needs_projection else nn.Identity()

        # One codebook, or one per head stacked in front: Tensor[K, Dc] or Tensor[h, K, Dc]. The
        # kernels see the stack as one codebook of h * K codes (_state), head j's at j * K.
        lead = (self.heads,) if self.separate_codebook_per_head else ()
        if kmeans_init:
            embed = torch.zeros(*lead, codebook_size, codebook_dim)
        else:
            embed = torch.empty(*lead, codebook_size, codebook_dim)
            for e in embed.view(-1, codebook_size, codebook_dim):
                nn.init.kaiming_uniform_(e)
            if use_cosine_sim:
                embed = F.normalize(embed, dim=-1)
        if decay is None or self.orthogonal_reg_weight > 0:  # the regulariser trains it by gradient too
            self.codebook = nn.Parameter(embed)
        else:
            self.register_buffer("codebook", embed)
        # EMA state as in vector-quantize-pytorch: n_k = 1, m_k = e_k at the start.
        self.register_buffer("cluster_size", torch.ones(*lead, codebook_size))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.register_buffer("batch_counts", torch.zeros(*lead, codebook_size), persistent=False)
        self._initted = not kmeans_init  # host mirror of `initted`: no sync in forward
        self.register_load_state_dict_post_hook(VectorQuantizer._after_load)

    @staticmethod
    def _after_load(module, incompatible_keys):
        module._initted = bool(module.initted)

    def extra_repr(self) -> str:
        mode = "loss-trained" if self.decay is None else f"ema decay={self.decay}"
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, "
                f"codebook_dim={self.codebook_dim}, heads={self.heads}, "
                f"separate_codebook_per_head={self.separate_codebook_per_head}, {mode}, commitment_weight={self.commitment_weight}, "
                f"cosine={self.use_cosine_sim}, rotation_trick={self.rotation_trick}, threshold_ema_dead_code={self.threshold_ema_dead_code}")

    # ------------------------------------------------------------------ statistics
    @property
    def perplexity(self) -> torch.Tensor:
        """exp(entropy) of the code histogram of the last forward batch; K = uniform use.
        Scalar; ``Tensor[h]``, one per codebook, with ``separate_codebook_per_head``."""
        p = self.batch_counts / self.batch_counts.sum(-1, keepdim=True).clamp_min(1)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(-1))

    @property
    def code_usage(self) -> torch.Tensor:
        """Tensor[K] (``[h, K]`` with separate codebooks): EMA cluster sizes (vectors per code
        per batch, smoothed)."""
        return self.cluster_size

    @property
    def fraction_used(self) -> torch.Tensor:
        """Fraction of codes used at least once in the last forward batch (per codebook with
        ``separate_codebook_per_head``)."""
        return (self.batch_counts > 0).float().mean(-1)

    @property
    def _num_codebooks(self) -> int:
        return self.heads if self.separate_codebook_per_head else 1

    def _state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cluster_size, embed_sum, codebook) as one codebook of G * K codes: ``[G*K]``,
        ``[G*K, Dc]``, ``[G*K, Dc]``; views of the buffers (the buffers themselves when G = 1)."""
        if not self.separate_codebook_per_head:
            return self.cluster_size, self.embed_sum, self.codebook
        Dc = self.codebook_dim
        return self.cluster_size.view(-1), self.embed_sum.view(-1, Dc), self.codebook.view(-1, Dc)

    # ------------------------------------------------------------------ layout helpers
    def _channel_first(self, x: torch.Tensor) -> bool:
        return x.dim() >= 3 and (self.accept_image_fmap or not self.channel_last)

    def _to_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """Input of any supported layout -> Tensor[B, N, dim]."""
        if x.dim() == 2:
            return x.unsqueeze(1)
        if self._channel_first(x):
            return x.flatten(2).transpose(1, 2)
        if x.dim() == 3:
            return x
        raise ValueError("x must be Tensor[B, D], Tensor[B, N, D], or channel-first Tensor[B, D, *S] "
                         f"(channel_last=False or accept_image_fmap=True), got shape {list(x.shape)}")

    def _from_vectors(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Tensor[B, N, d] -> the layout of ``like`` (d may differ from like's D)."""
        if like.dim() == 2:
            return v.squeeze(1)
        if self._channel_first(like):
            return v.transpose(1, 2).reshape(v.shape[0], v.shape[2], *like.shape[2:])
        return v

    # ------------------------------------------------------------------ codebook updates
    def _sync(self) -> bool:
        return is_distributed() if self.sync_codebook is None else bool(self.sync_codebook and is_distributed())

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor, valid: torch.Tensor | None) -> None:
        """k-means on the rows with ``valid`` True (all when None); per head with separate
        codebooks (head j's rows are ``flat[j::h]``). A batch with no valid row leaves the layer
        uninitialised (the next batch with vectors initialises it); a batch with NaN or inf raises
        before the codebook is touched."""
        rows = flat if valid is None else flat[valid]
        if rows.shape[0] == 0:
            return
        bad = ~torch.isfinite(rows).all(1)
        if bool(bad.any()):
            raise ValueError(f"x contains NaN or inf (first at vector {int(bad.nonzero()[0, 0])} of the batch): "
                             "k-means initialisation of the codebook needs finite vectors")
        run = functools.partial(kmeans, num_clusters=self.codebook_size, num_iters=self.kmeans_iters,
                                use_cosine_sim=self.use_cosine_sim, sync=self._sync())
        if self.separate_codebook_per_head:
            h = self.heads
            per_head = flat.view(-1, h, flat.shape[1])
            valid = None if valid is None else valid.view(-1, h)[:, 0]
            results = [run(per_head[:, j] if valid is None else per_head[valid, j]) for j in range(h)]
            means, counts = (torch.stack(r) for r in zip(*results))
        else:
            means, counts = run(flat if valid is None else flat[valid])
        means = means.to(self.codebook.dtype)
        counts = counts.to(self.cluster_size.dtype)
        self.codebook.copy_(means)
        self.embed_sum.copy_(means * counts.unsqueeze(-1))
        self.cluster_size.copy_(counts)
        self.initted.fill_(True)
        self._initted = True

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, indices: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
        """EMA update (or usage tracking for a loss-trained codebook) from the rows with ``valid``
        True (all rows when None; the others are zero); returns the batch counts."""
        sync = self._sync()
        cluster_size, embed_sum, codebook = self._state()
        K = cluster_size.shape[0]  # G * K
        if self.decay is None:
            counts = _counts(indices, valid, K, cluster_size.dtype)
            if sync:
                dist.all_reduce(counts)
            cluster_size.mul_(_USAGE_DECAY).add_(counts, alpha=1 - _USAGE_DECAY)
        elif sync or valid is not None:
            # Padding rows are zero, so they add nothing to the sums; the counts skip them.
            counts, sums = code_stats(flat, indices, K)
            if valid is not None:
                counts = _counts(indices, valid, K, counts.dtype)
            if sync:
                dist.all_reduce(counts)
                dist.all_reduce(sums)
            ema_apply_(cluster_size, embed_sum, codebook, counts, sums, self.decay, self.eps)
        else:
            counts = ema_codebook_update_(cluster_size, embed_sum, codebook, flat, indices, self.decay, self.eps)
        if self.decay is not None and self.use_cosine_sim:
            self.codebook.copy_(F.normalize(self.codebook, dim=-1))
        if self.threshold_ema_dead_code > 0:
            self._restart_dead_codes(flat, sync, valid)
        return counts

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, sync: bool, valid: torch.Tensor | None = None) -> None:
        """Replace codes whose EMA cluster size < threshold by random rows of the batch (rows
        with ``valid`` True only; a head's own rows with separate codebooks).

        Device-side selection with ``torch.where``: no ``.item()``, no host synchronisation.
        Under ``torch.distributed`` the replacement rows come from rank 0.
        """
        thr = self.threshold_ema_dead_code
        dead = self.cluster_size < thr  # [K] or [h, K]
        if self.separate_codebook_per_head:
            h = self.heads
            pick, any_valid = _random_rows(flat.shape[0] // h, None if valid is None else valid.view(-1, h)[:, 0],
                                           dead.shape, flat.device)
            pick = pick * h + torch.arange(h, device=flat.device).unsqueeze(1)  # head j's rows are j::h
        else:
            pick, any_valid = _random_rows(flat.shape[0], valid, dead.shape, flat.device)
        if any_valid is not None:
            dead = dead & any_valid  # a batch of padding only restarts nothing
        samples = flat[pick].to(self.codebook.dtype)
        if sync:
            dist.broadcast(samples, src=0)
        self.codebook.copy_(torch.where(dead.unsqueeze(-1), samples, self.codebook))
        self.embed_sum.copy_(torch.where(dead.unsqueeze(-1), samples * thr, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, torch.full_like(self.cluster_size, thr), self.cluster_size))

    def _orthogonal_reg(self, counts: torch.Tensor, work: torch.dtype) -> torch.Tensor:
        """The orthogonal regulariser on the codebook (after this step's EMA update, as
        ``VectorQuantize``): every code, or the codes of this batch (``counts > 0``, summed over
        ranks under torch.distributed), at most ``orthogonal_reg_max_codes`` of them drawn at random;
        with separate codebooks, the mean over the heads' codebooks of their losses."""
        G, K, Dc = self._num_codebooks, self.codebook_size, self.codebook_dim
        counts = counts.view(G, K)
        keep = counts > 0 if self.orthogonal_reg_active_codes_only else torch.ones_like(counts, dtype=torch.bool)
        codebook = self.codebook.to(work).view(G, K, Dc)
        M = self.orthogonal_reg_max_codes
        if M is not None and M < K:
            # M codes uniformly among the kept ones (all of them if there are fewer, padded with
            # dropped codes of weight 0): a fixed-size choice, so no synchronisation.
            key = torch.where(keep, torch.rand(G, K, device=counts.device), 2.0)
            pick = key.topk(M, largest=False).indices  # [G, M]
            codebook = codebook.gather(1, pick.unsqueeze(-1).expand(-1, -1, Dc))
            keep = keep.gather(1, pick)
        return _orthogonal_reg_loss(codebook, keep.to(work))

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, lens: torch.Tensor | None = None, *,
                indices: torch.Tensor | None = None, freeze_codebook: bool | None = None,
                sample_codebook_temp: float | None = None, return_loss_breakdown: bool = False):
        """Quantise ``x``; see the class docstring for shapes.

        Args:
            x: the vectors, in one of the layouts of the class docstring.
            mask: optional bool ``Tensor[B, N]`` for sequence input (``[B, N, D]``, or
                ``[B, D, N]`` channel-first): True at real vectors, False at padding (as
                ``VectorQuantize``'s ``mask``). Padding, whatever it holds (NaN included), takes
                no part in the losses, the EMA statistics, k-means or dead-code restarts; its
                ``quantized`` is 0 and its index -1.
            lens: optional integer ``Tensor[B]``, the number of real vectors at the start of each
                sequence (the rest is padding): the same as ``mask = arange(N) < lens[:, None]``
                (as ``VectorQuantize``'s ``lens``). At most one of ``mask`` and ``lens``.
            indices: optional target codes, int64 of the shape ``forward`` returns its indices in
                (``[B]``, ``[B, N]`` or ``[B, *S]``, ending in h with heads; keyword-only, where
                ``VectorQuantize`` takes it second): instead of the usual loss, return the
                cross-entropy of these codes under ``softmax_k(-||z - e_k||)`` (cosine:
                ``z . e_k``), averaged over the vectors whose target is not -1 (and that are not
                padding), as ``VectorQuantize(x, indices=...)`` (the loss that pulls a model's
                continuous output towards given codes, as in NaturalSpeech 2's training of its
                diffusion model). Computed in chunks of rows, with the codebook as it was before this
                step's EMA update; everything else (search, updates in training) runs as usual. The
                values are checked on the host (a synchronisation on CUDA).
            freeze_codebook: for this call, in place of the attribute ``freeze_codebook``
                (default None: the attribute), as ``VectorQuantize``'s keyword.
            sample_codebook_temp: for this call, in place of the attribute ``sample_codebook_temp``
                (default None: the attribute); used only with ``stochastic_sample_codes``.
            return_loss_breakdown: also return the unweighted loss terms as a
                :class:`LossBreakdown` (default False), as ``VectorQuantize``.

        Returns:
            (quantized, indices, loss), or (quantized, indices, loss, breakdown) with
            ``return_loss_breakdown``; with target ``indices``, (quantized, cross_entropy) as
            ``VectorQuantize`` (but ``quantized`` in the layout of ``x``, after ``project_out``).

        Raises:
            ValueError / TypeError: as the class docstring; target ``indices`` that are not an
                integer tensor of that shape with values in [-1, K).
        """
        out, codes, loss, breakdown, _ = self._forward(x, mask, lens, self._frozen(freeze_codebook),
                                                       defer_update=False, sample_codebook_temp=sample_codebook_temp,
                                                       target=indices)
        if indices is not None:
            return out, loss
        return (out, codes, loss, breakdown) if return_loss_breakdown else (out, codes, loss)

    def _frozen(self, freeze_codebook: bool | None) -> bool:
        """Whether this call leaves the codebook alone: ``forward``'s keyword, else the attribute."""
        return self.freeze_codebook if freeze_codebook is None else bool(freeze_codebook)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None, lens: torch.Tensor | None, frozen: bool,
                 defer_update: bool, sample_codebook_temp: float | None = None, target: torch.Tensor | None = None):
        """``forward``'s work: (quantized, indices, loss, breakdown, deferred). With ``defer_update``
        (a residual quantiser's shared codebook) the codebook is searched and trained by gradient as
        usual but its EMA update and restarts are left to the caller: ``deferred`` is then the
        update's input ``(rows, stacked indices, valid)`` (else None), for :meth:`_update_codebook`.
        With ``target`` codes, ``loss`` is their cross-entropy (``forward(indices=...)``)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        vectors = self._to_vectors(x)
        if vectors.shape[-1] != self.dim:
            where = "dim 1 (channel-first)" if self._channel_first(x) else "the last dim"
            raise ValueError(f"x must have D == dim == {self.dim} in {where}, got shape {list(x.shape)}")
        if vectors.shape[0] * vectors.shape[1] == 0:
            raise ValueError(f"x is an empty batch (shape {list(x.shape)}): nothing to quantise")
        valid = None
        if lens is not None:
            mask = self._lens_to_mask(lens, mask, x, vectors)
        if mask is not None:
            self._check_mask(mask, x, vectors)
            vectors = torch.where(mask.unsqueeze(-1), vectors, 0.0)  # padding may be NaN
            valid = mask.reshape(-1)
        z = self.project_in(vectors)
        B, N, h, Dc = z.shape[0], z.shape[1], self.heads, self.codebook_dim
        if h > 1 and valid is not None:
            valid = valid.repeat_interleave(h)  # rows are (b, n, head)
        with torch.autocast(device_type=z.device.type, enabled=False):
            work = torch.float64 if torch.float64 in (z.dtype, self.codebook.dtype) else torch.float32
            flat = z.reshape(B * N * h, Dc).to(work)
            if self.use_cosine_sim:
                flat = F.normalize(flat, dim=-1)
            if valid is not None and not isinstance(self.project_in, nn.Identity):
                flat = torch.where(valid.unsqueeze(1), flat, 0.0)  # project_in's bias made padding nonzero
            if self.training and not self._initted:
                self._kmeans_init(flat, valid)
            codebook = self._state()[2].to(work)  # [G*K, Dc]
            if self.use_cosine_sim:
                codebook = F.normalize(codebook, dim=-1)
            temperature = self.sample_codebook_temp if sample_codebook_temp is None else float(sample_codebook_temp)
            if not 0.0 <= temperature < math.inf:
                raise ValueError(f"sample_codebook_temp must be a finite float >= 0, got {sample_codebook_temp}")
            sample = self.training and self.stochastic_sample_codes and temperature > 0
            indices, head_indices = self._search(flat.detach(), codebook.detach(), temperature if sample else None, B, N)
            # Gather before the in-place EMA update: z_q uses the codebook the search used.
            quantized = F.embedding(indices.clamp_min(0), codebook)  # -1: a NaN row on CUDA
            mse = F.mse_loss if valid is None else functools.partial(_masked_mse, valid=valid)
            ce_codebook = codebook.detach() if frozen else codebook
            target_ce = None
            if target is not None:  # before the EMA update changes the codebook
                rows = self._target_rows(target, x, B, N)
                keep = rows >= 0 if valid is None else (rows >= 0) & valid
                target_ce = self._cross_entropy_commitment(flat, ce_codebook, rows, keep)
            if self.commitment_use_cross_entropy_loss:  # before the EMA update changes the codebook
                commitment = self._cross_entropy_commitment(flat, ce_codebook, head_indices, valid)
            else:
                commitment = mse(flat, quantized.detach())
            diversity = None
            if self.training and self.codebook_diversity_loss_weight > 0:  # before the EMA update, as VectorQuantize
                diversity = self._codebook_diversity(flat, codebook, valid, B, N, frozen)
            deferred = (flat.detach(), indices, valid) if defer_update and self.training and not frozen else None
            if self.training and not frozen and not defer_update:
                counts = self._update_codebook(flat.detach(), indices, valid)
            else:
                counts = _counts(indices.clamp_min(0), valid, codebook.shape[0], self.batch_counts.dtype)
            self.batch_counts.copy_(counts.view_as(self.batch_counts))
            loss = self.commitment_weight * commitment
            if diversity is not None:
                loss = loss + self.codebook_diversity_loss_weight * diversity
            if self.decay is None:
                loss = loss + mse(quantized.detach() if frozen else quantized, flat.detach())
            orthogonal = None
            if self.training and self.orthogonal_reg_weight > 0 and not frozen and not defer_update:
                orthogonal = self._orthogonal_reg(counts, work)
                loss = loss + self.orthogonal_reg_weight * orthogonal
            if self.rotation_trick and flat.requires_grad:
                out = _RotationTrick.apply(flat, quantized.detach())
            else:
                out = flat + (quantized - flat).detach()  # straight-through estimator
        out = self.project_out(out.reshape(B, N, h * Dc).to(z.dtype))
        indices = head_indices.reshape(B, N, h) if h > 1 else head_indices.reshape(B, N)
        if mask is not None:
            out = torch.where(mask.unsqueeze(-1), out, 0.0)
            indices = torch.where(mask.view(B, N, *(1,) * (indices.dim() - 2)), indices, -1)
        if x.dim() == 2:
            indices = indices[:, 0]
        elif self._channel_first(x):
            indices = indices.reshape(B, *x.shape[2:], *indices.shape[2:])
        zero = loss.new_zeros(())
        breakdown = LossBreakdown(commitment, zero if diversity is None else diversity,
                                  zero if orthogonal is None else orthogonal, zero)
        if target_ce is not None:
            loss = target_ce
        return self._from_vectors(out, x).to(x.dtype), indices, loss, breakdown, deferred

    def _target_rows(self, target: torch.Tensor, x: torch.Tensor, B: int, N: int) -> torch.Tensor:
        """Target codes of ``forward(indices=...)`` as int64 ``[B * N * h]`` rows, after checking
        their type, shape (that of the indices ``forward`` returns) and values (-1 or a code)."""
        if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.is_complex() \
                or target.dtype == torch.bool:
            raise TypeError(f"indices must be an integer tensor, got {getattr(target, 'dtype', type(target).__name__)}")
        lead = (B,) if x.dim() == 2 else (B, *x.shape[2:]) if self._channel_first(x) else (B, N)
        shape = lead + ((self.heads,) if self.heads > 1 else ())
        if tuple(target.shape) != shape:
            raise ValueError(f"indices must have the shape of forward's indices, {list(shape)}, got {list(target.shape)}")
        if target.device != x.device:
            raise ValueError(f"indices is on {target.device}, x on {x.device}: they must be on the same device")
        lo, hi = (int(v) for v in torch.aminmax(target))
        if lo < -1 or hi >= self.codebook_size:
            raise ValueError(f"indices must be in [-1, K = {self.codebook_size}) (-1: ignored), got values in [{lo}, {hi}]")
        return target.reshape(-1).long()

    def _codebook_diversity(self, flat: torch.Tensor, codebook: torch.Tensor, valid: torch.Tensor | None, B: int,
                            N: int, frozen: bool) -> torch.Tensor:
        """The codebook-diversity term (see ``codebook_diversity_loss_weight``); the gradient reaches
        the codebook when it is trained by gradient and not frozen."""
        if self.decay is not None:
            codebook = codebook.detach().clone()  # the EMA update changes it in place before the backward pass
        elif frozen:
            codebook = codebook.detach()
        h = self.heads
        pos = torch.arange(N, device=flat.device).view(1, N, 1).expand(B, N, h).reshape(-1)
        weight = torch.ones(flat.shape[0], dtype=flat.dtype, device=flat.device) if valid is None else valid.to(flat.dtype)
        return _CodebookDiversity.apply(flat, codebook, pos, weight, self._num_codebooks, self.codebook_size, N,
                                        self.codebook_diversity_temperature, self.use_cosine_sim)

    def _cross_entropy_commitment(self, flat: torch.Tensor, codebook: torch.Tensor, head_indices: torch.Tensor,
                                  valid: torch.Tensor | None) -> torch.Tensor:
        """Mean over the real (vector, head) rows of the cross-entropy of their codes (see
        ``commitment_use_cross_entropy_loss``); each head against its own codebook when separate."""
        if self.decay is not None:
            codebook = codebook.clone()  # the EMA update changes it in place before the backward pass
        weight = torch.ones(flat.shape[0], dtype=flat.dtype, device=flat.device) if valid is None else valid.to(flat.dtype)
        target = head_indices.clamp_min(0)
        if not self.separate_codebook_per_head:
            total = _cross_entropy_sum(flat, codebook, target, weight, self.use_cosine_sim)
        else:
            h = self.heads
            targets, weights = target.view(-1, h), weight.view(-1, h)
            total = sum(_cross_entropy_sum(rows, cb, targets[:, j], weights[:, j], self.use_cosine_sim)
                        for j, (rows, cb) in enumerate(self._heads(flat, codebook)))
        return total / weight.sum().clamp_min(1)

    def _search(self, flat: torch.Tensor, codebook: torch.Tensor, temperature: float | None, B: int, N: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codeword of every row of ``flat`` (``[R, Dc]``, rows (b, n, head)) in ``codebook``
        (``[G*K, Dc]``), or with a ``temperature`` a code drawn from ``softmax(logits / temperature)``
        (:func:`_gumbel_sample`): (indices into the stacked G*K codes, each head's own indices in
        [0, K)), both ``[R]`` and the same tensor for one codebook. With separate codebooks, head j's
        rows (``flat[j::h]``) search codes ``j*K .. (j+1)*K - 1``, one kernel call per head. -1 (a
        NaN row on CUDA) stays -1. Sampling visits the rows in ``VectorQuantize``'s order (head-major
        with separate codebooks, (b, head, n) with a shared one), so that on a CPU it draws the same
        noise for the same row."""
        if temperature is None:
            search = lambda rows, cb: nearest_code(rows, cb)[0]  # noqa: E731
        else:
            if flat.device.type == "cpu":
                check_finite_on_cpu(flat, codebook)
            search = functools.partial(_gumbel_sample, temperature=temperature, cosine=self.use_cosine_sim)
        if not self.separate_codebook_per_head:
            h = self.heads
            if temperature is None or h == 1 or N == 1:
                indices = search(flat, codebook)
            else:
                rows = flat.view(B, N, h, -1).transpose(1, 2).reshape(B * h * N, -1)
                indices = search(rows, codebook).view(B, h, N).transpose(1, 2).reshape(-1)
            return indices, indices
        local = torch.stack([search(rows, cb) for rows, cb in self._heads(flat, codebook)], 1)
        return torch.where(local >= 0, local + self._head_offsets(local.device), -1).view(-1), local.view(-1)

    def _heads(self, rows: torch.Tensor, codebook: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """With separate codebooks: each head's rows (``rows[j::h]``, strided views of ``[R, Dc]``)
        with its own codes (``codebook[j*K:(j+1)*K]`` of the stacked ``[h*K, Dc]``)."""
        h, K = self.heads, self.codebook_size
        per_head = rows.view(-1, h, rows.shape[1])
        return [(per_head[:, j], codebook[j * K:(j + 1) * K]) for j in range(h)]

    def _head_offsets(self, device: torch.device) -> torch.Tensor:
        """int64 ``[h]``: where each head's codes start in the stacked G*K codes (separate codebooks)."""
        return torch.arange(self.heads, device=device) * self.codebook_size

    def _lens_to_mask(self, lens: torch.Tensor, mask: torch.Tensor | None, x: torch.Tensor,
                      vectors: torch.Tensor) -> torch.Tensor:
        if mask is not None:
            raise ValueError("pass mask or lens, not both")
        self._check_sequence("lens", x)
        if not isinstance(lens, torch.Tensor) or lens.is_floating_point() or lens.is_complex() or lens.dtype == torch.bool:
            raise TypeError(f"lens must be an integer tensor, got {getattr(lens, 'dtype', type(lens).__name__)}")
        if lens.shape != vectors.shape[:1]:
            raise ValueError(f"lens must have shape [B] = [{vectors.shape[0]}], got {list(lens.shape)}")
        if lens.device != x.device:
            raise ValueError(f"lens is on {lens.device}, x on {x.device}: they must be on the same device")
        return torch.arange(vectors.shape[1], device=x.device) < lens.unsqueeze(1)

    def _check_sequence(self, name: str, x: torch.Tensor) -> None:
        if x.dim() != 3 or self.accept_image_fmap:
            raise ValueError(f"{name} is for sequence input, x: Tensor[B, N, D] (or channel-first Tensor[B, D, N]); "
                             f"got x of shape {list(x.shape)}" + (" with accept_image_fmap=True"
                                                                   if self.accept_image_fmap else ""))

    def _check_mask(self, mask: torch.Tensor, x: torch.Tensor, vectors: torch.Tensor) -> None:
        self._check_sequence("mask", x)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
        if mask.shape != vectors.shape[:2]:
            raise ValueError(f"mask must have shape [B, N] = {list(vectors.shape[:2])}, got {list(mask.shape)}")
        if mask.device != x.device:
            raise ValueError(f"mask is on {mask.device}, x on {x.device}: they must be on the same device")

    # ------------------------------------------------------------------ indices -> codes
    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codewords (codebook space, before ``project_out``) for integer ``indices``.

        Args:
            indices: int64 Tensor, values in ``[0, K)``: any shape, or with ``heads > 1`` the
                shape ``forward`` returns, ending in h (``[..., h]``).

        Returns:
            ``Tensor[*indices.shape, codebook_dim]`` (with heads: ``Tensor[..., h * codebook_dim]``,
            the heads' codes concatenated as ``forward`` does), or channel-first
            ``Tensor[B, codebook_dim (* h), *S]`` when the layer takes channel-first input.

        Raises:
            TypeError: non-integer indices.
            ValueError: with ``heads > 1``, a last dimension other than h.
        """
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be an integer tensor, got {getattr(indices, 'dtype', type(indices))}")
        h = self.heads
        if h > 1 and (indices.dim() < 1 or indices.shape[-1] != h):
            raise ValueError(f"indices must be Tensor[..., h] with h = heads = {h}, got shape {list(indices.shape)}")
        codebook = self._state()[2]
        if self.use_cosine_sim:
            codebook = F.normalize(codebook, dim=-1)
        indices = indices.long()
        if self.separate_codebook_per_head:
            indices = indices + self._head_offsets(indices.device)
        codes = F.embedding(indices, codebook)
        if h > 1:
            codes = codes.flatten(-2)
        if self._channel_first_indices(indices):
            codes = codes.movedim(-1, 1)
        return codes

    def _channel_first_indices(self, indices: torch.Tensor) -> bool:
        """Whether codes for these indices go channel-first (a batch of positions, channel-first layer)."""
        return indices.dim() - (self.heads > 1) >= 2 and (self.accept_image_fmap or not self.channel_last)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """What ``forward`` returns as ``quantized`` for these ``indices`` (after ``project_out``,
        in the layer's layout); the prior's path from tokens back to the decoder's input."""
        codes = self.get_codes_from_indices(indices)
        if isinstance(self.project_out, nn.Identity):
            return codes
        if self._channel_first_indices(indices):
            return self.project_out(codes.movedim(1, -1)).movedim(-1, 1)
        return self.project_out(codes)

    get_output_from_indices = indices_to_codes
