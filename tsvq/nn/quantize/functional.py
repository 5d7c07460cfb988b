"""The stateless pieces of the vector quantizers: counting, masked losses, row sampling, the
chunked logits (cross-entropy commitment, Gumbel sampling, codebook diversity), the orthogonal
regulariser and the rotation trick. Nothing here builds an N x K tensor at once."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


USAGE_DECAY = 0.99  # EMA of code usage kept for statistics when the codebook is loss-trained


def is_distributed() -> bool:
    """Whether torch.distributed runs with more than one process (the codebook statistics are then all-reduced)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def counts(indices: torch.Tensor, valid: torch.Tensor | None, K: int, dtype: torch.dtype) -> torch.Tensor:
    """Vectors per code, counting only rows with ``valid`` True (all when None)."""
    weights = torch.ones_like(indices, dtype=dtype) if valid is None else valid.to(dtype)
    return torch.zeros(K, dtype=dtype, device=indices.device).index_add_(0, indices, weights)


def masked_mse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows with ``valid`` True (0 when there are none)."""
    rows = (a - b).square().sum(1)
    return (rows * valid.to(rows.dtype)).sum() / (valid.sum() * a.shape[1]).clamp_min(1)


def random_rows(n: int, valid: torch.Tensor | None, shape: tuple[int, ...], device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Uniform random row indices in [0, n) of the given shape, among the rows with ``valid``
    True when given (the r-th valid row, r uniform: searchsorted on their running count), with no
    host synchronisation; and, with ``valid``, a bool scalar tensor: whether any row is valid."""
    if valid is None:
        return torch.randint(0, n, shape, device=device), None
    running = valid.cumsum(0)
    r = (torch.rand(shape, device=device) * running[-1]).long()
    return torch.searchsorted(running, (r + 1).flatten()).view(shape).clamp_max(n - 1), running[-1] > 0



CHUNK_LOGITS = 1 << 22  # rows x K logits per chunk (cross-entropy, sampling, diversity; 16 MiB in float32)


def code_logits(rows: torch.Tensor, codebook: torch.Tensor, cosine: bool) -> torch.Tensor:
    """``Tensor[R, K]`` logits of ``VectorQuantize``: ``-||x_r - e_k||`` (its cdist, squared
    distance clamped at 1e-8), or ``x_r . e_k`` for the cosine metric. For chunks of rows only."""
    if cosine:
        return rows @ codebook.T
    d2 = rows.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * (rows @ codebook.T)
    return -d2.clamp_min(1e-8).sqrt()


def chunk_rows(K: int) -> int:
    """Rows per chunk so that a chunk's logits hold at most ``CHUNK_LOGITS`` values."""
    return max(1, CHUNK_LOGITS // K)


def _ce_chunk(rows: torch.Tensor, codebook: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              cosine: bool) -> torch.Tensor:
    logits = code_logits(rows, codebook, cosine)
    ce = torch.logsumexp(logits, 1) - logits.gather(1, target.unsqueeze(1)).squeeze(1)
    return (ce * weight).sum()


def cross_entropy_sum(rows: torch.Tensor, codebook: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       cosine: bool) -> torch.Tensor:
    """``sum_n weight_n * CE(logits_n, target_n)`` with ``logits_nk = -||x_n - e_k||`` (cosine:
    ``x_n . e_k``), in chunks of rows that are recomputed in the backward pass
    (``torch.utils.checkpoint``), so that at most ``CHUNK_LOGITS`` logits exist at once."""
    step = chunk_rows(codebook.shape[0])
    grad = torch.is_grad_enabled() and (rows.requires_grad or codebook.requires_grad)
    total = rows.new_zeros(())
    for s in range(0, rows.shape[0], step):
        args = (rows[s:s + step], codebook, target[s:s + step], weight[s:s + step], cosine)
        total = total + (checkpoint(_ce_chunk, *args, use_reentrant=False) if grad else _ce_chunk(*args))
    return total


def gumbel_sample(rows: torch.Tensor, codebook: torch.Tensor, temperature: float, cosine: bool) -> torch.Tensor:
    """int64 ``[R]``: a code per row drawn from ``softmax_k(logits_rk / temperature)`` by the
    Gumbel-max trick, ``argmax_k logits_rk / temperature + g_rk`` with ``g = -log(-log u)``,
    ``u ~ U(0, 1)`` (logs clamped at 1e-20, as ``VectorQuantize``'s ``gumbel_noise``), one chunk
    of rows at a time in row order; no gradient. On a CPU the noise is the same stream as
    ``VectorQuantize``'s ``uniform_`` over its whole ``[rows, K]`` matrix (CPU sampling is serial)."""
    step = chunk_rows(codebook.shape[0])
    out = torch.empty(rows.shape[0], dtype=torch.long, device=rows.device)
    for s in range(0, rows.shape[0], step):
        logits = code_logits(rows[s:s + step], codebook, cosine)
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


class CodebookDiversity(torch.autograd.Function):
    """The codebook-diversity loss of ``VectorQuantize``: ``-mean_n H(mean_r p_r)``, where
    ``p_r = softmax_k(temperature * logits_rk)`` (``logits`` as :func:`logits`) and the inner mean
    runs over the rows r at sequence position n (all batch elements and heads; with one position
    for ``[B, D]`` input). Rows of weight 0 (padding) take no part. Forward sums the ``[positions,
    K]`` probabilities chunk by chunk; backward recomputes each chunk's softmax, so at most
    ``CHUNK_LOGITS`` logits exist at once (never N x K)."""

    @staticmethod
    def forward(ctx, flat, codebook, pos, weight, groups: int, K: int, n_pos: int, temperature: float,
                cosine: bool):
        sums = flat.new_zeros(n_pos, K)
        step = chunk_rows(K)
        for rows, codes, p, w in _diversity_groups(flat, codebook, pos, weight, groups, K):
            for s in range(0, rows.shape[0], step):
                prob = torch.softmax(temperature * code_logits(rows[s:s + step], codes, cosine), 1)
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
        step = chunk_rows(K)
        for (rows, codes, p, w), (g_rows, g_codes, _, _) in zip(
                _diversity_groups(flat, codebook, pos, weight, groups, K), g_groups):
            for s in range(0, rows.shape[0], step):
                with torch.enable_grad():
                    r = rows[s:s + step].detach().requires_grad_(need[0])
                    c = codes.detach().requires_grad_(need[1])
                    prob = torch.softmax(temperature * code_logits(r, c, cosine), 1)
                    target = g_sums[p[s:s + step]] * w[s:s + step].unsqueeze(1)
                    inputs = [t for t, n in ((r, need[0]), (c, need[1])) if n]
                    grads = list(torch.autograd.grad((prob * target).sum(), inputs))
                if need[0]:
                    g_rows[s:s + step] += grads.pop(0)
                if need[1]:
                    g_codes += grads.pop(0)
        return g_flat, g_codebook, None, None, None, None, None, None, None


NORM_EPS = 1e-6  # norm clamp of vector_quantize_pytorch (its l2norm and safe_div): rotation trick, orthogonal reg


def orthogonal_reg_loss(codebook: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Orthogonal codebook regularisation (Shin et al. 2023, eq. 2, as ``vector_quantize_pytorch``
    computes it) on the codes with ``weights`` 1 (others 0): with ``c_i`` the L2-normalised codes
    and n their number, ``sum_ij (c_i . c_j)^2 / n^2 - 1/n``, zero for n orthogonal codes. The sum
    is ``||C^T C||_F^2`` (a D x D Gram) when K > D, ``||C C^T||_F^2`` otherwise: never K x K for
    large K, no host synchronisation (the weights select codes without indexing by a mask).
    ``codebook: Tensor[..., K, D]``, ``weights: Tensor[..., K]``: with leading (head) dims, the
    mean of the per-codebook losses."""
    c = F.normalize(codebook, dim=-1, eps=NORM_EPS) * weights.unsqueeze(-1)
    gram = c.mT @ c if c.shape[-2] > c.shape[-1] else c @ c.mT
    n = weights.sum(-1)
    return (gram.square().sum((-2, -1)) / n.square() - 1 / n).mean()


class RotationTrick(torch.autograd.Function):
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
        nz = z.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
        norm_q = z_q.norm(dim=-1, keepdim=True)
        u, q = z / nz, z_q / norm_q.clamp_min(NORM_EPS)
        w = u + q
        w = w / w.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
        dot = lambda a, b: (a * b).sum(-1, keepdim=True)  # noqa: E731
        grad = g - 2 * dot(g, w) * w + 2 * dot(g, q) * u
        return grad * (norm_q / nz), None


def to_rows(x: torch.Tensor, channel_first: bool, dim: int, name: str) -> tuple[torch.Tensor, torch.Size | None]:
    """``x`` as ``Tensor[B, N, dim]``: channel-first input ``[B, dim, *S]`` is flattened and moved
    channel-last (returning ``S`` to restore it), ``[B, N, dim]`` is kept (``S`` None).

    Raises:
        ValueError: the result is not ``[B, N, dim]`` (the message names the argument ``name``).
    """
    spatial = None
    if channel_first:
        spatial = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} must be Tensor[B, N, {dim}] (or channel-first Tensor[B, {dim}, *S]), "
                         f"got shape {list(x.shape)}")
    return x, spatial


def check_residual_args(num_quantizers: int, cutoff: int, multiple_of: int) -> None:
    """Refuse a residual quantiser's layer count and quantize-dropout settings out of range.

    Raises:
        ValueError: ``num_quantizers`` not an int >= 1, ``cutoff`` outside ``[0, num_quantizers)``,
            ``multiple_of`` < 1.
    """
    if isinstance(num_quantizers, bool) or not isinstance(num_quantizers, int) or num_quantizers < 1:
        raise ValueError(f"num_quantizers must be an int >= 1, got {num_quantizers!r}")
    if not 0 <= cutoff < num_quantizers:
        raise ValueError(f"quantize_dropout_cutoff_index must be in [0, num_quantizers = {num_quantizers}), "
                         f"got {cutoff}")
    if multiple_of < 1:
        raise ValueError(f"quantize_dropout_multiple_of must be >= 1, got {multiple_of}")


def quantize_dropout_last(cutoff: int, num_quantizers: int, multiple_of: int, seed: int | None = None) -> int:
    """Quantize dropout's last layer index d (SoundStream sec. 3.3): uniform in
    ``[cutoff, num_quantizers - 1]``, then ``d + 1`` rounded up to a multiple of ``multiple_of``
    (EnCodec's structured dropout). Drawn on the CPU (no device synchronisation), or, with
    ``seed``, as ``vector_quantize_pytorch``'s residual quantisers draw it for that seed."""
    if seed is not None:
        import random

        d = random.Random(seed).randrange(cutoff, num_quantizers)
    else:
        d = int(torch.randint(cutoff, num_quantizers, ()))
    return -(-(d + 1) // multiple_of) * multiple_of - 1 if multiple_of != 1 else d


class BatchUsage:
    """Usage statistics of a quantiser from its ``batch_counts`` buffer (codes per index in the
    last training batch; ``[K]``, or ``[h, K]`` with one codebook per head): a mixin."""

    @property
    def perplexity(self) -> torch.Tensor:
        """exp(entropy) of the code histogram of the last training batch; K = uniform use.
        Scalar, or one per codebook."""
        p = self.batch_counts / self.batch_counts.sum(-1, keepdim=True).clamp_min(1)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(-1))

    @property
    def fraction_used(self) -> torch.Tensor:
        """Fraction of codes used at least once in the last training batch (per codebook)."""
        return (self.batch_counts > 0).float().mean(-1)

    def _count_codes(self, indices: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Set ``batch_counts`` from ``indices`` (any shape; -1 and rows of weight 0 not counted)."""
        with torch.no_grad():
            flat = indices.flatten().long()
            w = (flat >= 0).to(self.batch_counts.dtype)
            if weights is not None:
                w = w * weights.flatten().to(w.dtype)
            self.batch_counts.zero_().index_add_(0, flat.clamp_min(0), w)
