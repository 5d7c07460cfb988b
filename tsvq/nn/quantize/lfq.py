"""Lookup-free quantisation (Yu et al. 2023, "Language Model Beats Diffusion: Tokenizer is Key to
Visual Generation", MAGVIT-v2, section 3.1 and eq. 5) and its spherical form, binary spherical
quantisation (Zhao et al. 2024, "Image and Video Tokenization with Binary Spherical Quantization").

Each of d dimensions is quantised to its sign, so the codebook is the implicit hypercube
``{-s, s}^d`` of ``2^d`` codes (on the sphere for BSQ). The entropy penalty
``H[q(z)] - gamma H[E q(z)]`` with ``q_k(z) = softmax_k(2 tau z . c_k)`` needs every code's
probability; here it is computed over chunks of codes and rows with a hand-written backward, so
memory stays bounded (never ``N x 2^d``) at d = 16 and beyond.
"""
from __future__ import annotations

import math
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

from .functional import BatchUsage, check_residual_args, quantize_dropout_last, to_rows
from .grouped import GroupedResidual

Return = namedtuple("Return", ["quantized", "indices", "entropy_aux_loss"])
LFQLossBreakdown = namedtuple("LFQLossBreakdown", ["per_sample_entropy", "batch_entropy", "commitment"])
ENTROPY_EPS = 1e-5  # probability clamp inside log, as vector_quantize_pytorch
CHUNK_ELEMENTS = 1 << 22  # logits held at once by the chunked entropy (16 MiB in float32)
MAX_ENTROPY_BITS = 24  # 2^24 codes per row is the most the entropy penalty is computed for


def code_bits(indices: torch.Tensor, d: int) -> torch.Tensor:
    """The d bits of each index, most significant first: ``Tensor[..., d]`` of 0. / 1. (float32)."""
    mask = 2 ** torch.arange(d - 1, -1, -1, device=indices.device, dtype=torch.int64)
    return ((indices.unsqueeze(-1).long() & mask) != 0).float()


def _code_chunk(k0: int, k1: int, d: int, value: float, device) -> torch.Tensor:
    """Codes ``k0 .. k1 - 1`` of the hypercube ``{-value, value}^d``: ``Tensor[k1 - k0, d]``."""
    return code_bits(torch.arange(k0, k1, device=device), d) * (2 * value) - value


def _plogp(p: torch.Tensor) -> torch.Tensor:
    return p * p.clamp_min(ENTROPY_EPS).log()


class _HypercubeEntropy(torch.autograd.Function):
    """Per-sample and batch entropies of ``softmax_k(2 tau x . c_k)`` over the 2^d codes ``c_k`` of
    ``{-a, a}^d``, in chunks (see the module docstring).

    Forward: ``x: Tensor[G, R, d]`` (float32/64), ``weights: Tensor[R]`` (1 real row, 0 padding),
    ``tau``, ``a`` -> ``(mean over real rows and groups of H(q_n), mean over groups of H(mean_n q_n))``
    with ``H(p) = -sum p log max(p, 1e-5)``. The normaliser ``log Z_n`` factorises over dimensions
    (the codes are every sign pattern): ``sum_i log(exp(2 tau a x_i) + exp(-2 tau a x_i))``.
    Backward: d/dlogit_j of ``H(q)`` is ``q_j (g_j - sum_k q_k g_k)`` with ``g = -(log max(q, eps)
    + [q > eps])``, and of ``H(mean q)`` the same with ``h = -(log max(A, eps) + [A > eps])`` of the
    mean A; two more passes over the chunks.
    """

    @staticmethod
    def _chunks(G: int, R: int, K: int):
        kc = min(K, max(1, CHUNK_ELEMENTS // max(G, 1)))
        rc = max(1, CHUNK_ELEMENTS // (G * kc))
        for r0 in range(0, R, rc):
            for k0 in range(0, K, kc):
                yield r0, min(R, r0 + rc), k0, min(K, k0 + kc)

    @staticmethod
    def _probs(x, log_z, k0, k1, tau, a, d):
        codes = _code_chunk(k0, k1, d, a, x.device).to(x.dtype)
        return torch.exp(2 * tau * (x @ codes.T) - log_z.unsqueeze(-1)), codes  # [G, r, kc]

    @staticmethod
    def forward(ctx, x, weights, tau: float, a: float):
        G, R, d = x.shape
        K = 1 << d
        log_z = torch.logaddexp(2 * tau * a * x, -2 * tau * a * x).sum(-1)  # [G, R]
        h_rows = x.new_zeros(G, R)
        above = x.new_zeros(G, R)  # sum of q over codes with q > eps (the backward's indicator term)
        mean_q = x.new_zeros(G, K)
        for r0, r1, k0, k1 in _HypercubeEntropy._chunks(G, R, K):
            q, _ = _HypercubeEntropy._probs(x[:, r0:r1], log_z[:, r0:r1], k0, k1, tau, a, d)
            h_rows[:, r0:r1] -= _plogp(q).sum(-1)
            above[:, r0:r1] += (q * (q > ENTROPY_EPS)).sum(-1)
            mean_q[:, k0:k1] += (q * weights[r0:r1, None]).sum(1)
        total = weights.sum().clamp_min(1)
        mean_q = mean_q / total
        per_sample = (h_rows * weights).sum() / (total * G)
        batch = -_plogp(mean_q).sum(-1).mean()
        ctx.save_for_backward(x, weights, log_z, h_rows, above, mean_q)
        ctx.tau, ctx.a = tau, a
        return per_sample, batch

    @staticmethod
    def backward(ctx, g_sample, g_batch):
        x, weights, log_z, h_rows, above, mean_q = ctx.saved_tensors
        tau, a = ctx.tau, ctx.a
        G, R, d = x.shape
        K = 1 << d
        total = weights.sum().clamp_min(1)
        h = -(mean_q.clamp_min(ENTROPY_EPS).log() + (mean_q > ENTROPY_EPS))  # [G, K]
        g_mean = h_rows - above  # sum_k q_k g_k per row: H(q) - sum of q over codes above eps
        s_rows = x.new_zeros(G, R)  # sum_k q_k h_k per row
        chunks = list(_HypercubeEntropy._chunks(G, R, K))
        for r0, r1, k0, k1 in chunks:
            q, _ = _HypercubeEntropy._probs(x[:, r0:r1], log_z[:, r0:r1], k0, k1, tau, a, d)
            s_rows[:, r0:r1] += (q * h[:, None, k0:k1]).sum(-1)
        grad = torch.zeros_like(x)
        scale = weights / (total * G)  # [R]
        for r0, r1, k0, k1 in chunks:
            q, codes = _HypercubeEntropy._probs(x[:, r0:r1], log_z[:, r0:r1], k0, k1, tau, a, d)
            g = -(q.clamp_min(ENTROPY_EPS).log() + (q > ENTROPY_EPS))
            dl = q * (g_sample * (g - g_mean[:, r0:r1, None]) + g_batch * (h[:, None, k0:k1] - s_rows[:, r0:r1, None]))
            grad[:, r0:r1] += (2 * tau) * (dl * scale[None, r0:r1, None]) @ codes
        return grad, None, None, None


class CosineSimLinear(nn.Module):
    """``normalize(x) @ normalize(W, dim=0) * scale`` (LFQ's ``cosine_sim_project_in``)."""

    def __init__(self, dim_in: int, dim_out: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.randn(dim_in, dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=0) * self.scale


class LookupFreeQuantizer(BatchUsage, nn.Module):
    """LFQ, a drop-in for ``vector_quantize_pytorch.LFQ``; ``spherical=True`` is BSQ.

    ``q = s sign(z)`` per dimension (``s = codebook_scale``; BSQ: z and q on the sphere of radius
    s), the index the bits ``z > 0`` read most significant first; the gradient is straight through
    (after ``straight_through_activation`` in training). Training loss ``entropy_loss_weight *
    (H_sample - diversity_gamma * H_batch) + commitment_loss_weight * ||z - sg(q)||^2`` (MAGVIT-v2
    eq. 5, entropies in nats at inverse temperature ``inv_temperature``; with
    ``experimental_softplus_entropy_loss`` the entropy term is ``softplus(term + entropy_loss_offset)``).
    Quantisation and entropies run in float32 with autocast off (``force_quantization_f32``).

    Args:
        dim: input feature size (default ``log2(codebook_size) * num_codebooks``; otherwise Linear
            projections in and out, or ``has_projections``). codebook_size: ``2^d`` per codebook
            (default ``2^dim``). entropy_loss_weight (0.1), commitment_loss_weight (0.),
            diversity_gamma (1.), straight_through_activation, num_codebooks (1),
            keep_num_codebooks_dim, codebook_scale (1.), frac_per_sample_entropy (1.: every row;
            less: that fraction of the rows, drawn as ``LFQ`` draws them), has_projections,
            projection_has_bias, soft_clamp_input_value, cosine_sim_project_in(_scale),
            channel_first, experimental_softplus_entropy_loss, entropy_loss_offset (5.), spherical,
            force_quantization_f32: as ``LFQ``.

    Shapes: ``x: Tensor[B, N, dim]`` (channel-first ``[B, dim, *S]`` for 4-D and larger or with
    ``channel_first``) -> ``Return(quantized`` same shape, ``indices: int64 [B, N]`` (``[B, N, c]``
    with several codebooks), ``entropy_aux_loss`` scalar``)``; with ``return_loss_breakdown``,
    also ``LFQLossBreakdown(per_sample_entropy, batch_entropy, commitment)``. ``perplexity`` /
    ``fraction_used``: code usage of the last training batch (for d <= 20).

    Raises:
        ValueError: neither ``dim`` nor ``codebook_size``, a codebook size that is not a power of
            two, ``2^d`` beyond ``2^24`` with an entropy penalty, ``frac_per_sample_entropy`` outside
            (0, 1], a soft clamp below ``codebook_scale``, ``orthogonal_rotation``, input whose
            feature size is not ``dim``.
    """

    def __init__(self, *, dim: int | None = None, codebook_size: int | None = None, entropy_loss_weight: float = 0.1,
                 commitment_loss_weight: float = 0.0, diversity_gamma: float = 1.0,
                 straight_through_activation: nn.Module | None = None, num_codebooks: int = 1,
                 keep_num_codebooks_dim: bool | None = None, codebook_scale: float = 1.0,
                 frac_per_sample_entropy: float = 1.0, has_projections: bool | None = None,
                 projection_has_bias: bool = True, soft_clamp_input_value: float | None = None,
                 cosine_sim_project_in: bool = False, cosine_sim_project_in_scale: float | None = None,
                 channel_first: bool | None = None, experimental_softplus_entropy_loss: bool = False,
                 entropy_loss_offset: float = 5.0, spherical: bool = False, force_quantization_f32: bool = True,
                 orthogonal_rotation: bool = False):
        super().__init__()
        if dim is None and codebook_size is None:
            raise ValueError("LookupFreeQuantizer needs dim or codebook_size")
        codebook_size = 2 ** dim if codebook_size is None else codebook_size
        if isinstance(codebook_size, bool) or not isinstance(codebook_size, int) or codebook_size < 2 or \
                codebook_size & (codebook_size - 1):
            raise ValueError(f"codebook_size must be a power of 2 >= 2 (2^d codes), got {codebook_size!r}")
        d = codebook_size.bit_length() - 1
        if d > MAX_ENTROPY_BITS and entropy_loss_weight > 0:
            raise ValueError(f"codebook_size 2^{d}: the entropy penalty sums over 2^d codes per row, at most "
                             f"2^{MAX_ENTROPY_BITS}; split d with num_codebooks or set entropy_loss_weight=0")
        if not 0.0 < frac_per_sample_entropy <= 1.0:
            raise ValueError(f"frac_per_sample_entropy must be in (0, 1], got {frac_per_sample_entropy}")
        if soft_clamp_input_value is not None and soft_clamp_input_value < codebook_scale:
            raise ValueError(f"soft_clamp_input_value ({soft_clamp_input_value}) must be >= codebook_scale ({codebook_scale})")
        if orthogonal_rotation:
            raise ValueError("orthogonal_rotation is not supported by tsvq's LookupFreeQuantizer")
        keep = num_codebooks > 1 if keep_num_codebooks_dim is None else bool(keep_num_codebooks_dim)
        if num_codebooks > 1 and not keep:
            raise ValueError("keep_num_codebooks_dim=False needs num_codebooks == 1")
        dims = d * num_codebooks
        self.dim = dims if dim is None else dim
        self.codebook_size, self.codebook_dim, self.num_codebooks = codebook_size, d, num_codebooks
        self.keep_num_codebooks_dim, self.channel_first, self.spherical = keep, channel_first, spherical
        self.has_projections = self.dim != dims if has_projections is None else has_projections
        if cosine_sim_project_in:
            scale = codebook_scale if cosine_sim_project_in_scale is None else cosine_sim_project_in_scale
            project_in = CosineSimLinear(self.dim, dims, scale)
        else:
            project_in = nn.Linear(self.dim, dims, bias=projection_has_bias)
        self.project_in = project_in if self.has_projections else nn.Identity()
        self.project_out = nn.Linear(dims, self.dim, bias=projection_has_bias) if self.has_projections else nn.Identity()
        self.activation = straight_through_activation or nn.Identity()
        self.entropy_loss_weight, self.commitment_loss_weight = entropy_loss_weight, commitment_loss_weight
        self.diversity_gamma, self.codebook_scale = diversity_gamma, codebook_scale
        self.frac_per_sample_entropy, self.soft_clamp_input_value = frac_per_sample_entropy, soft_clamp_input_value
        self.experimental_softplus_entropy_loss, self.entropy_loss_offset = experimental_softplus_entropy_loss, entropy_loss_offset
        self.force_quantization_f32 = force_quantization_f32
        self.register_buffer("mask", 2 ** torch.arange(d - 1, -1, -1))
        self.register_buffer("batch_counts", torch.zeros(codebook_size if d <= 20 else 0), persistent=False)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, num_codebooks={self.num_codebooks}, "
                f"spherical={self.spherical}, entropy_loss_weight={self.entropy_loss_weight}")

    def _sphere(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(t, dim=-1) * self.codebook_scale if self.spherical else t

    @property
    def code_value(self) -> float:
        """Magnitude of every coordinate of every code (``s``, or ``s / sqrt(d)`` on the sphere)."""
        return self.codebook_scale / math.sqrt(self.codebook_dim) if self.spherical else self.codebook_scale

    def indices_to_codes(self, indices: torch.Tensor, project_out: bool = True) -> torch.Tensor:
        """Indices as ``forward`` returns them -> codes (``project_out`` applied unless False)."""
        grid = indices.dim() >= 3 + int(self.keep_num_codebooks_dim)
        transpose = grid if self.channel_first is None else self.channel_first
        if not self.keep_num_codebooks_dim:
            indices = indices.unsqueeze(-1)
        codes = self._sphere(code_bits(indices, self.codebook_dim) * (2 * self.codebook_scale) - self.codebook_scale)
        codes = codes.flatten(-2)
        if project_out:
            codes = self.project_out(codes)
        return codes.movedim(-1, 1) if transpose else codes

    def _entropy_rows(self, x: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows [R, c, d], weights [R])`` the entropies are taken over: the real rows, or a random
        ``frac_per_sample_entropy`` of them drawn as ``LFQ`` draws them (a fixed-size pick, no sync)."""
        rows = x.reshape(-1, *x.shape[2:])
        weights = valid.reshape(-1).to(rows.dtype) if valid is not None else rows.new_ones(rows.shape[0])
        if self.frac_per_sample_entropy < 1.0:
            n = rows.shape[0]
            keep = int(n * self.frac_per_sample_entropy)
            chosen = torch.randn(n).argsort(dim=-1) < keep
            pick = chosen.to(torch.int8).argsort(descending=True, stable=True)[:keep].sort().values.to(rows.device)
            rows, weights = rows[pick], weights[pick]
        return rows, weights

    def forward(self, x: torch.Tensor, inv_temperature: float = 100.0, return_loss_breakdown: bool = False,
                mask: torch.Tensor | None = None):
        """Quantise ``x``; see the class docstring. ``mask: bool Tensor[B, N]`` marks real vectors
        (padding takes no part in the entropies and the commitment loss)."""
        transpose = x.dim() >= 4 if self.channel_first is None else self.channel_first
        x, spatial = to_rows(x, transpose, self.dim, "x")
        x = self.project_in(x)
        if self.soft_clamp_input_value is not None:
            c = self.soft_clamp_input_value
            x = torch.tanh(x / c) * c
        B, N = x.shape[:2]
        x = self._sphere(x.view(B, N, self.num_codebooks, self.codebook_dim))
        zero = x.new_zeros(())
        with torch.autocast(device_type=x.device.type, enabled=not self.force_quantization_f32):
            orig = x.dtype
            if self.force_quantization_f32:
                x = x.float()
            original = x
            quantized = self._sphere(torch.where(x > 0, self.codebook_scale, -self.codebook_scale).to(x.dtype))
            indices = ((x > 0).long() * self.mask).sum(-1)
            if self.training:
                x = self.activation(x)
                x = x + (quantized - x).detach()
                rows, weights = self._entropy_rows(original, mask)
                per_sample, batch = _HypercubeEntropy.apply(rows.transpose(0, 1), weights, float(inv_temperature),
                                                            self.code_value)
                entropy_aux = per_sample - self.diversity_gamma * batch
                if self.experimental_softplus_entropy_loss:
                    entropy_aux = F.softplus(entropy_aux + self.entropy_loss_offset)
                if self.commitment_loss_weight > 0:
                    err = F.mse_loss(original, quantized.detach(), reduction="none")
                    if mask is not None:
                        w = mask.to(err.dtype).view(B, N, 1, 1)
                        commit = (err * w).sum() / (w.sum() * err.shape[2] * err.shape[3]).clamp_min(1)
                    else:
                        commit = err.mean()
                else:
                    commit = zero
                if self.batch_counts.numel():
                    self._count_codes(indices, None if mask is None else mask.unsqueeze(-1).expand_as(indices))
            else:
                x = quantized
                entropy_aux = per_sample = batch = commit = zero
            x = x.to(orig)
        out = self.project_out(x.flatten(-2))
        if transpose:
            out = out.transpose(1, 2).reshape(B, out.shape[-1], *spatial)
            indices = indices.view(B, *spatial, self.num_codebooks)
        if not self.keep_num_codebooks_dim:
            indices = indices.squeeze(-1)
        aux = entropy_aux * self.entropy_loss_weight + commit * self.commitment_loss_weight
        ret = Return(out, indices, aux)
        return (ret, LFQLossBreakdown(per_sample, batch, commit)) if return_loss_breakdown else ret


class ResidualLFQ(nn.Module):
    """Residual LFQ: ``num_quantizers`` :class:`LookupFreeQuantizer` layers, layer q with codebook
    scale ``2^-q`` (and a soft clamp halved per layer when given), each quantising what the previous
    ones left; as ``vector_quantize_pytorch.ResidualLFQ``. Quantize dropout as :class:`ResidualFSQ`
    (drawn on the CPU, or from ``rand_quantize_dropout_fixed_seed``).

    Args:
        dim: input feature size (projections to ``log2(codebook_size)`` and back when it differs).
        num_quantizers: Q >= 1. codebook_size: 2^d per layer. quantize_dropout,
        quantize_dropout_cutoff_index, quantize_dropout_multiple_of: as :class:`ResidualFSQ`.
        soft_clamp_input_value: the first layer's soft clamp (None: none). **kwargs:
        :class:`LookupFreeQuantizer` keywords (entropy and commitment weights, ...).

    Shapes: ``x: Tensor[B, N, dim]`` -> ``(quantized [B, N, dim], indices int64 [B, N, Q], losses [Q])``
    (plus the codes of every layer ``[Q, B, N, d]`` with ``return_all_codes``); dropped layers:
    index -1, loss 0.

    Raises:
        ValueError: Q < 1, a cutoff outside ``[0, Q)``, and what :class:`LookupFreeQuantizer` raises.
    """

    def __init__(self, *, dim: int, num_quantizers: int, codebook_size: int, quantize_dropout: bool = False,
                 quantize_dropout_cutoff_index: int = 0, quantize_dropout_multiple_of: int = 1,
                 soft_clamp_input_value: float | None = None, **kwargs):
        super().__init__()
        check_residual_args(num_quantizers, quantize_dropout_cutoff_index, quantize_dropout_multiple_of)
        layers = []
        for q in range(num_quantizers):
            layers.append(LookupFreeQuantizer(dim=None, codebook_size=codebook_size, codebook_scale=2.0 ** -q,
                                              soft_clamp_input_value=soft_clamp_input_value, **kwargs))
            if soft_clamp_input_value is not None:
                soft_clamp_input_value *= 0.5
        self.layers = nn.ModuleList(layers)
        d = self.layers[0].codebook_dim
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.has_projections = dim != d
        self.project_in = nn.Linear(dim, d) if self.has_projections else nn.Identity()
        self.project_out = nn.Linear(d, dim) if self.has_projections else nn.Identity()
        self.quantize_dropout = bool(quantize_dropout) and num_quantizers > 1
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.quantize_dropout_multiple_of = quantize_dropout_multiple_of

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of each layer, ``Tensor[Q, B, ..., d]`` from ``indices: Tensor[B, ..., q]`` (q <= Q:
        missing layers and -1 give 0)."""
        q = indices.shape[-1]
        if q < self.num_quantizers:
            indices = F.pad(indices, (0, self.num_quantizers - q), value=-1)
        codes = []
        for i, layer in enumerate(self.layers):
            idx = indices[..., i]
            c = layer._sphere(code_bits(idx.clamp_min(0), layer.codebook_dim) * (2 * layer.codebook_scale)
                              - layer.codebook_scale)
            codes.append(c.masked_fill((idx < 0).unsqueeze(-1), 0.0))
        return torch.stack(codes)

    def get_output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.get_codes_from_indices(indices).sum(0))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_all_codes: bool = False,
                rand_quantize_dropout_fixed_seed: int | None = None):
        x = self.project_in(x)
        dropout = self.training and self.quantize_dropout and torch.is_grad_enabled()
        last = (quantize_dropout_last(self.quantize_dropout_cutoff_index, self.num_quantizers,
                                      self.quantize_dropout_multiple_of, rand_quantize_dropout_fixed_seed)
                if dropout else self.num_quantizers - 1)
        out, residual, all_indices, all_losses = 0.0, x, [], []
        with torch.autocast(device_type=x.device.type, enabled=False):
            for q, layer in enumerate(self.layers):
                if q > last:
                    all_indices.append(torch.full(x.shape[:2], -1, dtype=torch.long, device=x.device))
                    all_losses.append(x.new_zeros(()))
                    continue
                quantized, indices, loss = layer(residual, mask=mask)
                residual = residual - quantized.detach()
                out = out + quantized
                all_indices.append(indices)
                all_losses.append(loss)
        out = self.project_out(out)
        result = (out, torch.stack(all_indices, dim=-1), torch.stack(all_losses, dim=-1))
        return (*result, self.get_codes_from_indices(result[1])) if return_all_codes else result


class GroupedResidualLFQ(GroupedResidual):
    """``groups`` :class:`ResidualLFQ` on equal slices of the features, as
    ``vector_quantize_pytorch.GroupedResidualLFQ`` (see :class:`~.grouped.GroupedResidual`).

    Args:
        dim: feature size, divisible by ``groups``. groups: G >= 1. accept_image_fmap: features in
            dimension 1. **kwargs: :class:`ResidualLFQ` (``mask`` goes to ``forward``).

    Shapes: ``x: Tensor[B, N, dim]`` -> ``(quantized [B, N, dim], indices [G, B, N, Q], losses [G, Q])``.
    """

    def __init__(self, *, dim: int, groups: int = 1, accept_image_fmap: bool = False, **kwargs):
        super().__init__(dim, groups, accept_image_fmap, lambda d: ResidualLFQ(dim=d, **kwargs))

