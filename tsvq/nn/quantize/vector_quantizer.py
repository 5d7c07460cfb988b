"""``VectorQuantizer``: a drop-in vector-quantisation layer on the tsvq kernels."""
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops import nearest_code
from ...ops._checks import check_finite_on_cpu
from . import compat
from . import functional as fq
from .codebook import CodebookState


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


class VectorQuantizer(CodebookState, nn.Module):
    """Vector quantiser with an EMA or loss-trained codebook (VQ-VAE, van den Oord et al. 2017).

    Each vector z is replaced by its nearest codeword ``z_q = e_k``, ``k = argmin_j ||z - e_j||^2``
    (eq. 1), found by the fused ``nearest_code`` op without the N x K distance matrix; gradients
    pass straight through (eq. 3) or, with ``rotation_trick``, through the rotation mapping z onto
    z_q (Fifty et al. 2024, sec. 4.2). Loss: ``beta ||z - sg(z_q)||^2`` (mean), plus the codebook
    loss ``||sg(z) - z_q||^2`` when the codebook is trained by gradient (``decay=None``); with
    ``decay`` the codebook is an EMA of its vectors (appendix A.1), updated in place in training
    with no host synchronisation. A drop-in for ``vector_quantize_pytorch.VectorQuantize``: same
    keywords and return; every option and each deliberate difference: ``docs/quantizers.md``.

    Args:
        dim: D of the input vectors. codebook_size: K >= 1.
        codebook_dim: codeword dimension (default ``dim``); linear projections in and out when
            ``codebook_dim * heads != dim``. heads: h sub-vectors quantised on their own (default 1).
        separate_codebook_per_head: one codebook per head (``Tensor[h, K, codebook_dim]``).
        decay: EMA decay in [0, 1) (default 0.8) or None (loss-trained codebook). eps: Laplace
            smoothing of the EMA cluster sizes (> 0 with an EMA codebook; default 1e-5).
        commitment_weight: beta (1.0). kmeans_init / kmeans_iters: k-means initialisation on the
            first training batch with real vectors (10 Lloyd iterations).
        threshold_ema_dead_code: restart codes whose EMA cluster size falls below this (0: never).
        use_cosine_sim: quantise L2-normalised vectors against a normalised codebook.
        rotation_trick: the rotation-trick gradient instead of the straight-through one (False).
        commitment_use_cross_entropy_loss, stochastic_sample_codes, sample_codebook_temp,
        codebook_diversity_loss_weight, codebook_diversity_temperature, orthogonal_reg_weight,
        orthogonal_reg_active_codes_only, orthogonal_reg_max_codes, freeze_codebook, channel_last,
        accept_image_fmap, sync_codebook: as ``VectorQuantize`` (``docs/quantizers.md``).
        **vqp_kwargs: other ``VectorQuantize`` keywords, at the values meaning what tsvq does (``compat``).

    Shapes:
        x: ``Tensor[B, D]``, ``Tensor[B, N, D]`` or channel-first ``Tensor[B, D, *S]``; ``mask``: bool
        ``Tensor[B, N]`` (False at padding) or ``lens``: int ``Tensor[B]``, for sequences.
        Returns ``(quantized, indices, loss)``: quantized like x; indices int64, x's shape without
        D (a last dimension h when ``heads > 1``; -1 at padding); loss a float32 scalar.

    Raises:
        ValueError: bad constructor values (a ``VectorQuantize`` keyword at a value tsvq does not
            provide names what to use instead), wrong input rank or D, an empty batch, NaN or inf
            in x on CPUs (on CUDA such vectors get index -1 and a NaN loss), a bad mask or lens.
        TypeError: an unknown keyword, non-float input, non-bool mask, non-integer lens.
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
        compat.check(type(self).__name__, vqp_kwargs, compat.VECTOR_QUANTIZE, decay=decay)
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
        return fq.orthogonal_reg_loss(codebook, keep.to(work))

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
                 defer_update: bool, sample_codebook_temp: float | None = None, target: torch.Tensor | None = None,
                 codes: torch.Tensor | None = None):
        """``forward``'s work: (quantized, indices, loss, breakdown, deferred). With ``defer_update``
        (a residual quantiser's shared codebook) the codebook is searched and trained by gradient as
        usual but its EMA update and restarts are left to the caller: ``deferred`` is then the
        update's input ``(rows, stacked indices, valid)`` (else None), for :meth:`_update_codebook`.
        With ``target`` codes, ``loss`` is their cross-entropy (``forward(indices=...)``). With
        ``codes`` (int64 ``[B * N]``, one head; a residual beam search's choice) those codes replace
        the search; everything after it is as usual.

        The pipeline: input -> rows (projection, heads, cosine) -> k-means init -> search (or sampled
        codes) -> the codewords and every loss that reads the codebook -> the codebook update ->
        the total loss and the gradient estimator -> the input's layout. Whatever reads the codebook
        runs before the in-place update, so outputs and losses use the codebook the search used."""
        vectors, mask, valid = self._input_vectors(x, mask, lens)
        z = self.project_in(vectors)
        B, N, h, Dc = z.shape[0], z.shape[1], self.heads, self.codebook_dim
        if h > 1 and valid is not None:
            valid = valid.repeat_interleave(h)  # rows are (b, n, head)
        temperature = self.sample_codebook_temp if sample_codebook_temp is None else float(sample_codebook_temp)
        if not 0.0 <= temperature < math.inf:
            raise ValueError(f"sample_codebook_temp must be a finite float >= 0, got {sample_codebook_temp}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            work = torch.float64 if torch.float64 in (z.dtype, self.codebook.dtype) else torch.float32
            flat = self._rows(z, valid, work)
            if self.training and not self._initted:
                self._kmeans_init(flat, valid)
            codebook = self._state()[2].to(work)  # [G*K, Dc]
            if self.use_cosine_sim:
                codebook = F.normalize(codebook, dim=-1)
            sample = self.training and self.stochastic_sample_codes and temperature > 0
            if codes is None:
                indices, head_indices = self._search(flat.detach(), codebook.detach(), temperature if sample else None,
                                                     B, N)
            else:
                indices = head_indices = codes
            quantized = F.embedding(indices.clamp_min(0), codebook)  # -1: a NaN row on CUDA
            commitment, diversity, target_ce = self._codebook_losses(flat, codebook, quantized, head_indices, valid,
                                                                     frozen, target, x, B, N)
            deferred = (flat.detach(), indices, valid) if defer_update and self.training and not frozen else None
            if self.training and not frozen and not defer_update:
                counts = self._update_codebook(flat.detach(), indices, valid)
            else:
                counts = fq.counts(indices.clamp_min(0), valid, codebook.shape[0], self.batch_counts.dtype)
            self.batch_counts.copy_(counts.view_as(self.batch_counts))
            loss = self.commitment_weight * commitment
            if diversity is not None:
                loss = loss + self.codebook_diversity_loss_weight * diversity
            if self.decay is None:  # the codebook loss of a loss-trained codebook (VQ-VAE eq. 3)
                loss = loss + self._mse(valid)(quantized.detach() if frozen else quantized, flat.detach())
            orthogonal = None
            if self.training and self.orthogonal_reg_weight > 0 and not frozen and not defer_update:
                orthogonal = self._orthogonal_reg(counts, work)
                loss = loss + self.orthogonal_reg_weight * orthogonal
            if self.rotation_trick and flat.requires_grad:
                out = fq.RotationTrick.apply(flat, quantized.detach())
            else:
                out = flat + (quantized - flat).detach()  # straight-through estimator
        out = self.project_out(out.reshape(B, N, h * Dc).to(z.dtype))
        out, indices = self._output_layout(out, head_indices, mask, x, B, N)
        zero = loss.new_zeros(())
        breakdown = LossBreakdown(commitment, zero if diversity is None else diversity,
                                  zero if orthogonal is None else orthogonal, zero)
        return out, indices, loss if target_ce is None else target_ce, breakdown, deferred

    def _input_vectors(self, x: torch.Tensor, mask: torch.Tensor | None, lens: torch.Tensor | None):
        """Checked input as ``Tensor[B, N, dim]`` with padding zeroed, the mask (from ``lens`` if
        given) and ``valid``, the mask as ``[B * N]`` rows (None without padding)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        vectors = self._to_vectors(x)
        if vectors.shape[-1] != self.dim:
            where = "dim 1 (channel-first)" if self._channel_first(x) else "the last dim"
            raise ValueError(f"x must have D == dim == {self.dim} in {where}, got shape {list(x.shape)}")
        if vectors.shape[0] * vectors.shape[1] == 0:
            raise ValueError(f"x is an empty batch (shape {list(x.shape)}): nothing to quantise")
        if lens is not None:
            mask = self._lens_to_mask(lens, mask, x, vectors)
        if mask is None:
            return vectors, None, None
        self._check_mask(mask, x, vectors)
        return torch.where(mask.unsqueeze(-1), vectors, 0.0), mask, mask.reshape(-1)  # padding may be NaN

    def _rows(self, z: torch.Tensor, valid: torch.Tensor | None, work: torch.dtype) -> torch.Tensor:
        """The projected vectors as ``[B * N * h, codebook_dim]`` rows in ``work`` precision
        (normalised with cosine similarity; padding rows zero)."""
        flat = z.reshape(-1, self.codebook_dim).to(work)
        if self.use_cosine_sim:
            flat = F.normalize(flat, dim=-1)
        if valid is not None and not isinstance(self.project_in, nn.Identity):
            flat = torch.where(valid.unsqueeze(1), flat, 0.0)  # project_in's bias made padding nonzero
        return flat

    @staticmethod
    def _mse(valid: torch.Tensor | None):
        return F.mse_loss if valid is None else functools.partial(fq.masked_mse, valid=valid)

    def _codebook_losses(self, flat, codebook, quantized, head_indices, valid, frozen: bool, target, x, B: int, N: int):
        """``(commitment, diversity or None, target cross-entropy or None)``: the losses that read the
        codebook, computed before the EMA update changes it (as ``VectorQuantize``)."""
        ce_codebook = codebook.detach() if frozen else codebook
        target_ce = None
        if target is not None:
            rows = self._target_rows(target, x, B, N)
            keep = rows >= 0 if valid is None else (rows >= 0) & valid
            target_ce = self._cross_entropy_commitment(flat, ce_codebook, rows, keep)
        if self.commitment_use_cross_entropy_loss:
            commitment = self._cross_entropy_commitment(flat, ce_codebook, head_indices, valid)
        else:
            commitment = self._mse(valid)(flat, quantized.detach())
        diversity = None
        if self.training and self.codebook_diversity_loss_weight > 0:
            diversity = self._codebook_diversity(flat, codebook, valid, B, N, frozen)
        return commitment, diversity, target_ce

    def _output_layout(self, out: torch.Tensor, head_indices: torch.Tensor, mask: torch.Tensor | None,
                       x: torch.Tensor, B: int, N: int):
        """``out: [B, N, dim]`` and the row indices back in the layout of ``x`` (padding: 0 and -1)."""
        h = self.heads
        indices = head_indices.reshape(B, N, h) if h > 1 else head_indices.reshape(B, N)
        if mask is not None:
            out = torch.where(mask.unsqueeze(-1), out, 0.0)
            indices = torch.where(mask.view(B, N, *(1,) * (indices.dim() - 2)), indices, -1)
        if x.dim() == 2:
            indices = indices[:, 0]
        elif self._channel_first(x):
            indices = indices.reshape(B, *x.shape[2:], *indices.shape[2:])
        return self._from_vectors(out, x).to(x.dtype), indices

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
        return fq.CodebookDiversity.apply(flat, codebook, pos, weight, self._num_codebooks, self.codebook_size, N,
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
            total = fq.cross_entropy_sum(flat, codebook, target, weight, self.use_cosine_sim)
        else:
            h = self.heads
            targets, weights = target.view(-1, h), weight.view(-1, h)
            total = sum(fq.cross_entropy_sum(rows, cb, targets[:, j], weights[:, j], self.use_cosine_sim)
                        for j, (rows, cb) in enumerate(self._heads(flat, codebook)))
        return total / weight.sum().clamp_min(1)

    def _search(self, flat: torch.Tensor, codebook: torch.Tensor, temperature: float | None, B: int, N: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codeword of every row of ``flat`` (``[R, Dc]``, rows (b, n, head)) in ``codebook``
        (``[G*K, Dc]``), or with a ``temperature`` a code drawn from ``softmax(logits / temperature)``
        (:func:`fq.gumbel_sample`): (indices into the stacked G*K codes, each head's own indices in
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
            search = functools.partial(fq.gumbel_sample, temperature=temperature, cosine=self.use_cosine_sim)
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
