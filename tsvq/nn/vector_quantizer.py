"""``VectorQuantizer``: a drop-in vector-quantisation layer on the tsvq kernels."""
from __future__ import annotations

import functools
import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..ops import code_stats, ema_codebook_update_, nearest_code
from ..ops.ema_codebook_update import ema_apply_
from .kmeans import kmeans

_USAGE_DECAY = 0.99  # EMA of code usage kept for statistics when the codebook is loss-trained


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _counts(indices: torch.Tensor, valid: torch.Tensor | None, K: int, dtype: torch.dtype) -> torch.Tensor:
    """Vectors per code, counting only rows with ``valid`` True (all when None)."""
    weights = torch.ones_like(indices, dtype=dtype) if valid is None else valid.to(dtype)
    return torch.zeros(K, dtype=dtype, device=indices.device).index_add_(0, indices, weights)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows with ``valid`` True (0 when there are none)."""
    rows = (a - b).square().sum(1)
    return (rows * valid.to(rows.dtype)).sum() / (valid.sum() * a.shape[1]).clamp_min(1)


_NORM_EPS = 1e-6  # norm clamp of vector_quantize_pytorch (its l2norm and safe_div): rotation trick, orthogonal reg


def _orthogonal_reg_loss(codebook: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Orthogonal codebook regularisation (Shin et al. 2023, eq. 2, as ``vector_quantize_pytorch``
    computes it) on the codes with ``weights`` 1 (others 0): with ``c_i`` the L2-normalised codes
    and n their number, ``sum_ij (c_i . c_j)^2 / n^2 - 1/n``, zero for n orthogonal codes. The sum
    is ``||C^T C||_F^2`` (a D x D Gram) when K > D, ``||C C^T||_F^2`` otherwise: never K x K for
    large K, no host synchronisation (the weights select codes without indexing by a mask)."""
    c = F.normalize(codebook, dim=-1, eps=_NORM_EPS) * weights.unsqueeze(1)
    gram = c.T @ c if c.shape[0] > c.shape[1] else c @ c.T
    n = weights.sum()
    return gram.square().sum() / n.square() - 1 / n


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
    matrix. Two deliberate differences: the commitment loss is also returned in ``eval()`` mode
    (useful for validation curves; ``VectorQuantize`` returns 0 there), and ``rotation_trick``
    defaults to False (the VQ-VAE straight-through estimator used by TimeVQVAE and NC-VQVAE),
    where ``VectorQuantize`` (1.32, the version tested against) defaults to True for
    dim > 1: pass ``rotation_trick=True`` for its default gradient.

    Args:
        dim: D of the input vectors.
        codebook_size: K, number of codewords, >= 1.
        codebook_dim: dimension of the codewords; if it differs from ``dim``, linear layers
            project in and out. Default ``dim``.
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
            (k-means initialisation still runs once). An attribute; set it at any time.
        channel_last: input is ``[B, N, D]`` (default). ``False``: channel-first ``[B, D, N]``.
        accept_image_fmap: input is channel-first ``[B, D, H, W]`` (any number of spatial
            dims is accepted whenever the input is channel-first).
        sync_codebook: all-reduce EMA statistics and k-means across ranks; default: whenever
            ``torch.distributed`` is initialised with more than one rank.

    Shapes:
        input: ``Tensor[B, D]``, ``Tensor[B, N, D]`` or channel-first ``Tensor[B, D, *S]``.
        mask (optional, ``forward(x, mask=...)``): bool ``Tensor[B, N]`` for sequences (``[B, N, D]``
            or ``[B, D, N]``), False at padding: padding is left out of the losses, the codebook
            statistics, k-means and dead-code restarts, and returns 0 and index -1.
        quantized: same shape and dtype as the input.
        indices: int64, the input shape without D (``[B]``, ``[B, N]`` or ``[B, *S]``).
        loss: scalar float32 (float64 for float64 inputs).

    Raises:
        ValueError: bad constructor values, wrong input rank or D, empty batch, NaN/inf input
            on CPU (on CUDA such vectors give a NaN loss, see :func:`tsvq.ops.nearest_code`;
            padding under ``mask`` may hold anything), a ``mask`` of the wrong shape or device,
            or with input that is not a sequence.
        TypeError: non-float input, non-bool ``mask``.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        decay: float | None = 0.8,
        eps: float = 1e-5,
        commitment_weight: float = 1.0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 0,
        use_cosine_sim: bool = False,
        rotation_trick: bool = False,
        orthogonal_reg_weight: float = 0.0,
        orthogonal_reg_active_codes_only: bool = False,
        orthogonal_reg_max_codes: int | None = None,
        freeze_codebook: bool = False,
        channel_last: bool = True,
        accept_image_fmap: bool = False,
        sync_codebook: bool | None = None,
    ):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if codebook_size < 1:
            raise ValueError(f"codebook_size (K) must be >= 1, got {codebook_size}")
        codebook_dim = dim if codebook_dim is None else codebook_dim
        if codebook_dim < 1:
            raise ValueError(f"codebook_dim must be >= 1, got {codebook_dim}")
        if decay is not None and not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1) or None (loss-trained codebook), got {decay}")
        if not 0.0 <= eps < math.inf:
            raise ValueError(f"eps must be a finite float >= 0, got {eps}")
        if not 0.0 <= commitment_weight < math.inf:
            raise ValueError(f"commitment_weight must be a finite float >= 0, got {commitment_weight}")
        if kmeans_iters < 0:
            raise ValueError(f"kmeans_iters must be >= 0, got {kmeans_iters}")
        if threshold_ema_dead_code < 0:
            raise ValueError(f"threshold_ema_dead_code must be >= 0, got {threshold_ema_dead_code}")
        if not 0.0 <= orthogonal_reg_weight < math.inf:
            raise ValueError(f"orthogonal_reg_weight must be a finite float >= 0, got {orthogonal_reg_weight}")
        if orthogonal_reg_max_codes is not None and orthogonal_reg_max_codes < 1:
            raise ValueError(f"orthogonal_reg_max_codes must be >= 1 or None, got {orthogonal_reg_max_codes}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.decay = decay
        self.eps = eps
        self.commitment_weight = commitment_weight
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.threshold_ema_dead_code = float(threshold_ema_dead_code)
        self.use_cosine_sim = use_cosine_sim
        self.rotation_trick = bool(rotation_trick)
        self.orthogonal_reg_weight = float(orthogonal_reg_weight)
        self.orthogonal_reg_active_codes_only = bool(orthogonal_reg_active_codes_only)
        self.orthogonal_reg_max_codes = orthogonal_reg_max_codes
        self.freeze_codebook = bool(freeze_codebook)
        self.channel_last = channel_last
        self.accept_image_fmap = accept_image_fmap
        self.sync_codebook = sync_codebook

        needs_projection = codebook_dim != dim
        self.project_in = nn.Linear(dim, codebook_dim) if needs_projection else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if needs_projection else nn.Identity()

        if kmeans_init:
            embed = torch.zeros(codebook_size, codebook_dim)
        else:
            embed = torch.empty(codebook_size, codebook_dim)
            nn.init.kaiming_uniform_(embed)
            if use_cosine_sim:
                embed = F.normalize(embed, dim=-1)
        if decay is None or self.orthogonal_reg_weight > 0:  # the regulariser trains it by gradient too
            self.codebook = nn.Parameter(embed)
        else:
            self.register_buffer("codebook", embed)
        # EMA state as in vector-quantize-pytorch: n_k = 1, m_k = e_k at the start.
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.register_buffer("batch_counts", torch.zeros(codebook_size), persistent=False)
        self._initted = not kmeans_init  # host mirror of `initted`: no sync in forward
        self.register_load_state_dict_post_hook(VectorQuantizer._after_load)

    @staticmethod
    def _after_load(module, incompatible_keys):
        module._initted = bool(module.initted)

    def extra_repr(self) -> str:
        mode = "loss-trained" if self.decay is None else f"ema decay={self.decay}"
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, "
                f"codebook_dim={self.codebook_dim}, {mode}, commitment_weight={self.commitment_weight}, "
                f"cosine={self.use_cosine_sim}, rotation_trick={self.rotation_trick}, threshold_ema_dead_code={self.threshold_ema_dead_code}")

    # ------------------------------------------------------------------ statistics
    @property
    def perplexity(self) -> torch.Tensor:
        """exp(entropy) of the code histogram of the last forward batch; K = uniform use."""
        p = self.batch_counts / self.batch_counts.sum().clamp_min(1)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())

    @property
    def code_usage(self) -> torch.Tensor:
        """Tensor[K]: EMA cluster sizes (vectors per code per batch, smoothed)."""
        return self.cluster_size

    @property
    def fraction_used(self) -> torch.Tensor:
        """Fraction of codes used at least once in the last forward batch."""
        return (self.batch_counts > 0).float().mean()

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
        return _distributed() if self.sync_codebook is None else bool(self.sync_codebook and _distributed())

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        means, counts = kmeans(flat, self.codebook_size, self.kmeans_iters,
                               use_cosine_sim=self.use_cosine_sim, sync=self._sync())
        means = means.to(self.codebook.dtype)
        counts = counts.to(self.cluster_size.dtype)
        self.codebook.copy_(means)
        self.embed_sum.copy_(means * counts.unsqueeze(1))
        self.cluster_size.copy_(counts)
        self.initted.fill_(True)
        self._initted = True

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, indices: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
        """EMA update (or usage tracking for a loss-trained codebook) from the rows with ``valid``
        True (all rows when None; the others are zero); returns the batch counts."""
        sync = self._sync()
        K = self.codebook_size
        if self.decay is None:
            counts = _counts(indices, valid, K, self.cluster_size.dtype)
            if sync:
                dist.all_reduce(counts)
            self.cluster_size.mul_(_USAGE_DECAY).add_(counts, alpha=1 - _USAGE_DECAY)
        elif sync or valid is not None:
            # Padding rows are zero, so they add nothing to the sums; the counts skip them.
            counts, sums = code_stats(flat, indices, K)
            if valid is not None:
                counts = _counts(indices, valid, K, counts.dtype)
            if sync:
                dist.all_reduce(counts)
                dist.all_reduce(sums)
            ema_apply_(self.cluster_size, self.embed_sum, self.codebook, counts, sums, self.decay, self.eps)
        else:
            counts = ema_codebook_update_(self.cluster_size, self.embed_sum, self.codebook, flat,
                                          indices, self.decay, self.eps)
        if self.decay is not None and self.use_cosine_sim:
            self.codebook.copy_(F.normalize(self.codebook, dim=-1))
        if self.threshold_ema_dead_code > 0:
            self._restart_dead_codes(flat, sync, valid)
        return counts

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, sync: bool, valid: torch.Tensor | None = None) -> None:
        """Replace codes whose EMA cluster size < threshold by random rows of the batch (rows
        with ``valid`` True only).

        Device-side selection with ``torch.where``: no ``.item()``, no host synchronisation.
        Under ``torch.distributed`` the replacement rows come from rank 0.
        """
        thr = self.threshold_ema_dead_code
        dead = (self.cluster_size < thr).unsqueeze(1)
        if valid is None:
            pick = torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)
        else:
            # The r-th valid row, r uniform: searchsorted on the running count of valid rows.
            running = valid.cumsum(0)
            r = (torch.rand(self.codebook_size, device=flat.device) * running[-1]).long()
            pick = torch.searchsorted(running, r + 1).clamp_max(flat.shape[0] - 1)
            dead = dead & (running[-1] > 0)  # a batch of padding only restarts nothing
        samples = flat[pick].to(self.codebook.dtype)
        if sync:
            dist.broadcast(samples, src=0)
        self.codebook.copy_(torch.where(dead, samples, self.codebook))
        self.embed_sum.copy_(torch.where(dead, samples * thr, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead.squeeze(1), torch.full_like(self.cluster_size, thr),
                                            self.cluster_size))

    def _orthogonal_reg(self, counts: torch.Tensor, work: torch.dtype) -> torch.Tensor:
        """The orthogonal regulariser on the codebook (after this step's EMA update, as
        ``VectorQuantize``): every code, or the codes of this batch (``counts > 0``, summed over
        ranks under torch.distributed), at most ``orthogonal_reg_max_codes`` of them drawn at random."""
        K = self.codebook_size
        keep = counts > 0 if self.orthogonal_reg_active_codes_only else torch.ones(K, dtype=torch.bool,
                                                                                   device=counts.device)
        codebook = self.codebook.to(work)
        M = self.orthogonal_reg_max_codes
        if M is not None and M < K:
            # M codes uniformly among the kept ones (all of them if there are fewer, padded with
            # dropped codes of weight 0): a fixed-size choice, so no synchronisation.
            key = torch.where(keep, torch.rand(K, device=counts.device), 2.0)
            pick = key.topk(M, largest=False).indices
            codebook, keep = codebook[pick], keep[pick]
        return _orthogonal_reg_loss(codebook, keep.to(work))

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``x``; see the class docstring for shapes.

        Args:
            x: the vectors, in one of the layouts of the class docstring.
            mask: optional bool ``Tensor[B, N]`` for sequence input (``[B, N, D]``, or
                ``[B, D, N]`` channel-first): True at real vectors, False at padding (as
                ``VectorQuantize``'s ``mask``). Padding, whatever it holds (NaN included), takes
                no part in the losses, the EMA statistics, k-means or dead-code restarts; its
                ``quantized`` is 0 and its index -1.

        Returns:
            (quantized, indices, loss).
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        vectors = self._to_vectors(x)
        if vectors.shape[-1] != self.dim:
            where = "dim 1 (channel-first)" if self._channel_first(x) else "the last dim"
            raise ValueError(f"x must have D == dim == {self.dim} in {where}, got shape {list(x.shape)}")
        if vectors.shape[0] * vectors.shape[1] == 0:
            raise ValueError(f"x is an empty batch (shape {list(x.shape)}): nothing to quantise")
        valid = None
        if mask is not None:
            self._check_mask(mask, x, vectors)
            vectors = torch.where(mask.unsqueeze(-1), vectors, 0.0)  # padding may be NaN
            valid = mask.reshape(-1)
        z = self.project_in(vectors)
        B, N, Dc = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            work = torch.float64 if torch.float64 in (z.dtype, self.codebook.dtype) else torch.float32
            flat = z.reshape(B * N, Dc).to(work)
            codebook = self.codebook.to(work)
            if self.use_cosine_sim:
                flat = F.normalize(flat, dim=-1)
                codebook = F.normalize(codebook, dim=-1)
            if valid is not None and not isinstance(self.project_in, nn.Identity):
                flat = torch.where(valid.unsqueeze(1), flat, 0.0)  # project_in's bias made padding nonzero
            if self.training and not self._initted:
                self._kmeans_init(flat if valid is None else flat[valid])
                codebook = self.codebook.to(work)
            indices, _ = nearest_code(flat.detach(), codebook.detach())
            # Gather before the in-place EMA update: z_q uses the codebook the search used.
            quantized = F.embedding(indices.clamp_min(0), codebook)
            if self.training and not self.freeze_codebook:
                counts = self._update_codebook(flat.detach(), indices, valid)
            else:
                counts = _counts(indices.clamp_min(0), valid, self.codebook_size, self.batch_counts.dtype)
            self.batch_counts.copy_(counts)
            mse = F.mse_loss if valid is None else functools.partial(_masked_mse, valid=valid)
            loss = self.commitment_weight * mse(flat, quantized.detach())
            if self.decay is None:
                loss = loss + mse(quantized.detach() if self.freeze_codebook else quantized, flat.detach())
            if self.training and self.orthogonal_reg_weight > 0 and not self.freeze_codebook:
                loss = loss + self.orthogonal_reg_weight * self._orthogonal_reg(counts, work)
            if self.rotation_trick and flat.requires_grad:
                out = _RotationTrick.apply(flat, quantized.detach())
            else:
                out = flat + (quantized - flat).detach()  # straight-through estimator
        out = self.project_out(out.reshape(B, N, Dc).to(z.dtype))
        indices = indices.reshape(B, N)
        if mask is not None:
            out = torch.where(mask.unsqueeze(-1), out, 0.0)
            indices = torch.where(mask, indices, -1)
        return self._from_vectors(out, x).to(x.dtype), self._from_vectors(
            indices.unsqueeze(-1), x).squeeze(1 if self._channel_first(x) else -1), loss

    def _check_mask(self, mask: torch.Tensor, x: torch.Tensor, vectors: torch.Tensor) -> None:
        if x.dim() != 3 or self.accept_image_fmap:
            raise ValueError("mask is for sequence input, x: Tensor[B, N, D] (or channel-first Tensor[B, D, N]); "
                             f"got x of shape {list(x.shape)}" + (" with accept_image_fmap=True"
                                                                   if self.accept_image_fmap else ""))
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
            indices: int64 Tensor of any shape, values in ``[0, K)``.

        Returns:
            ``Tensor[*indices.shape, codebook_dim]``, or channel-first
            ``Tensor[B, codebook_dim, *S]`` when the layer takes channel-first input.

        Raises:
            TypeError: non-integer indices.
        """
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be an integer tensor, got {getattr(indices, 'dtype', type(indices))}")
        codebook = F.normalize(self.codebook, dim=-1) if self.use_cosine_sim else self.codebook
        codes = F.embedding(indices.long(), codebook)
        if indices.dim() >= 2 and (self.accept_image_fmap or not self.channel_last):
            codes = codes.movedim(-1, 1)
        return codes

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """What ``forward`` returns as ``quantized`` for these ``indices`` (after ``project_out``,
        in the layer's layout); the prior's path from tokens back to the decoder's input."""
        codes = self.get_codes_from_indices(indices)
        if isinstance(self.project_out, nn.Identity):
            return codes
        channel_first = indices.dim() >= 2 and (self.accept_image_fmap or not self.channel_last)
        if channel_first:
            return self.project_out(codes.movedim(1, -1)).movedim(-1, 1)
        return self.project_out(codes)

    get_output_from_indices = indices_to_codes
