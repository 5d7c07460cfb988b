"""Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple", section 3 and appendix A.1): each of d dimensions is bounded and rounded to one of
``levels[i]`` values, so the codebook is the implicit grid of ``prod(levels)`` points; no codebook
to learn, no commitment loss, no collapse.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def round_ste(z: torch.Tensor) -> torch.Tensor:
    """``round(z)`` with the straight-through gradient (identity)."""
    return z + (z.round() - z).detach()


def floor_ste(z: torch.Tensor) -> torch.Tensor:
    """``floor(z)`` with the straight-through gradient (identity)."""
    return z + (z.floor() - z).detach()


class FiniteScalarQuantizer(nn.Module):
    """FSQ: ``z -> round(bound(z))`` per dimension, a drop-in for ``vector_quantize_pytorch.FSQ``.

    ``bound`` is ``tanh(z + shift) * (L - 1)(1 + 1e-3) / 2 - offset`` with the half-level
    ``offset`` 0.5 for even ``L`` (and ``shift = atanh(offset / half_l)`` so that 0 maps to a
    level), then the rounded value is divided by ``L // 2`` (paper, appendix A.1). With
    ``preserve_symmetry`` the levels are ``2 floor((L - 1)(tanh z + 1) / 2 + 1/2) / (L - 1) - 1``
    (symmetric about 0; arXiv:2411.19842, section 3.2, as ``FSQ(preserve_symmetry=True)``), which
    allows ``L = 2``. The rounding
    runs in float32 (float64 input stays float64) with autocast off, so bf16 / fp16 training
    keeps every level; the output returns in the input's dtype.

    Args:
        levels: levels per dimension, each an int >= 2 (>= 3 unless ``preserve_symmetry``);
            codebook size ``prod(levels)``. d = ``len(levels)``.
        dim: input feature size (default ``d * num_codebooks``); otherwise Linear layers project
            ``dim -> d * num_codebooks`` and back (with bias when ``projection_has_bias``).
        num_codebooks: independent FSQ groups per vector, each with its own index.
        keep_num_codebooks_dim: keep the codebook axis in ``indices`` (default: when
            ``num_codebooks > 1``; required then).
        channel_first: input ``Tensor[B, dim, N]`` (always so for 4-D and larger input).
        preserve_symmetry: the symmetric levels above.
        bound_hard_clamp: ``clamp(-1, 1)`` instead of tanh (for input already soft-clamped).
        return_indices: compute ``indices`` (None otherwise).

    Shapes: ``x: Tensor[B, N, dim]`` (or ``Tensor[B, dim, *S]`` channel-first) -> ``(quantized`` of
    the same shape, ``indices: int32 Tensor[B, N]`` or ``[B, N, num_codebooks]`` (``[B, *S, ...]``
    for channel-first input); -1 for a vector holding NaN (its output stays NaN). Codes live in
    ``[-1, 1]``.

    Raises:
        ValueError: ``levels`` empty, not ints, < 2 (< 3 without ``preserve_symmetry``), or a
            codebook size beyond int32 indices; ``dim`` / ``num_codebooks`` < 1; ``num_codebooks > 1``
            with ``keep_num_codebooks_dim=False``; input whose feature size is not ``dim``.
    """

    def __init__(self, levels: list[int] | tuple[int, ...], dim: int | None = None, num_codebooks: int = 1,
                 keep_num_codebooks_dim: bool | None = None, scale: float | None = None,
                 channel_first: bool = False, projection_has_bias: bool = True, return_indices: bool = True,
                 force_quantization_f32: bool = True, preserve_symmetry: bool = False,
                 bound_hard_clamp: bool = False):
        super().__init__()
        levels = list(levels) if isinstance(levels, (list, tuple)) else levels
        if not isinstance(levels, list) or not levels or any(
                isinstance(v, bool) or not isinstance(v, int) for v in levels):
            raise ValueError(f"levels must be a non-empty list of ints, got {levels!r}")
        low = 2 if preserve_symmetry else 3
        if min(levels) < low:
            raise ValueError(f"levels must be >= {low}{' (level 2 needs preserve_symmetry=True)' if low == 3 else ''}, "
                             f"got {levels}")
        if math.prod(levels) > 2**31 - 1:
            raise ValueError(f"prod(levels) = {math.prod(levels)} does not fit int32 indices")
        if isinstance(num_codebooks, bool) or not isinstance(num_codebooks, int) or num_codebooks < 1:
            raise ValueError(f"num_codebooks must be an int >= 1, got {num_codebooks!r}")
        keep = num_codebooks > 1 if keep_num_codebooks_dim is None else bool(keep_num_codebooks_dim)
        if num_codebooks > 1 and not keep:
            raise ValueError("keep_num_codebooks_dim=False needs num_codebooks == 1")
        self.levels, self.codebook_dim, self.num_codebooks = levels, len(levels), num_codebooks
        self.keep_num_codebooks_dim, self.scale = keep, scale  # scale: accepted and unused, as in FSQ
        effective = self.codebook_dim * num_codebooks
        self.dim = effective if dim is None else dim
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {dim!r}")
        self.channel_first, self.return_indices = channel_first, return_indices
        self.force_quantization_f32, self.preserve_symmetry = force_quantization_f32, preserve_symmetry
        self.bound_hard_clamp = bound_hard_clamp
        self.has_projections = self.dim != effective
        self.project_in = nn.Linear(self.dim, effective, bias=projection_has_bias) if self.has_projections else nn.Identity()
        self.project_out = nn.Linear(effective, self.dim, bias=projection_has_bias) if self.has_projections else nn.Identity()
        self.codebook_size = math.prod(levels)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int32), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), 0).to(torch.int32)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("batch_counts", torch.zeros(self.codebook_size), persistent=False)

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
                f"codebook_size={self.codebook_size}, preserve_symmetry={self.preserve_symmetry}")

    # ---------------------------------------------------------------- the quantiser
    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """Quantised codes of ``z: Tensor[..., d]`` in ``[-1, 1]`` (straight-through rounding)."""
        levels = self._levels.to(z.dtype)
        if self.preserve_symmetry:
            squashed = z.clamp(-1.0, 1.0) if self.bound_hard_clamp else torch.tanh(z)
            bracket = floor_ste((levels - 1) * (squashed + 1) / 2 + 0.5)
            return 2.0 / (levels - 1) * bracket - 1.0
        half_l = (levels - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        if self.bound_hard_clamp:
            bounded = (z + offset / half_l).clamp(-1.0, 1.0) * half_l - offset
        else:
            bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
        return round_ste(bounded) / (self._levels // 2).to(z.dtype)

    def _scale_and_shift(self, codes: torch.Tensor) -> torch.Tensor:
        levels = self._levels.to(codes.dtype)
        if self.preserve_symmetry:
            return (codes + 1.0) * (levels - 1) / 2.0
        half = (self._levels // 2).to(codes.dtype)
        return codes * half + half

    def _scale_and_shift_inverse(self, level_indices: torch.Tensor) -> torch.Tensor:
        levels = self._levels.to(torch.float32)
        if self.preserve_symmetry:
            return level_indices * (2.0 / (levels - 1)) - 1.0
        half = (self._levels // 2).to(torch.float32)
        return (level_indices - half) / half

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``Tensor[..., d]`` (values on the grid) -> int32 indices ``Tensor[...]``; -1 where a
        code holds NaN. The level of each dimension is rounded in float32 (or float64) and the
        index summed in integers, so it stays exact for bf16 / fp16 codes and any codebook size."""
        if codes.shape[-1] != self.codebook_dim:
            raise ValueError(f"codes must end in d = {self.codebook_dim}, got shape {list(codes.shape)}")
        if codes.dtype not in (torch.float32, torch.float64):
            codes = codes.float()
        level = self._scale_and_shift(codes).round()
        nan = torch.isnan(level).any(-1)
        index = (torch.nan_to_num(level).long() * self._basis).sum(-1)
        return torch.where(nan, -1, index).to(torch.int32)

    def indices_to_level_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """int indices ``Tensor[...]`` -> the level of each dimension, ``Tensor[..., d]``."""
        return (indices.unsqueeze(-1) // self._basis) % self._levels

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices as ``forward`` returns them -> the quantised output (after ``project_out``, in
        the layout of ``forward``'s input: channel-first for 3-D-and-larger index grids or with
        ``channel_first``)."""
        codes = self._scale_and_shift_inverse(self.indices_to_level_indices(indices).to(torch.float32))
        if self.keep_num_codebooks_dim:
            codes = codes.flatten(-2)
        out = self.project_out(codes.to(self._param_dtype()))
        grid = indices.dim() >= 3 + int(self.keep_num_codebooks_dim)
        if grid or self.channel_first:
            out = out.movedim(-1, 1)
        return out

    @property
    def implicit_codebook(self) -> torch.Tensor:
        """Every code, ``Tensor[prod(levels), d]`` (float32), index order."""
        return self._scale_and_shift_inverse(
            self.indices_to_level_indices(torch.arange(self.codebook_size, device=self._levels.device)).float())

    def _param_dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.float32

    # ---------------------------------------------------------------- usage statistics
    @property
    def perplexity(self) -> torch.Tensor:
        """``exp(entropy)`` of the code usage in the last training batch (all codebooks pooled)."""
        p = self.batch_counts / self.batch_counts.sum().clamp_min(1)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())

    @property
    def fraction_used(self) -> torch.Tensor:
        """Fraction of the ``prod(levels)`` codes used in the last training batch."""
        return (self.batch_counts > 0).float().mean()

    # ---------------------------------------------------------------- forward
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantise ``z``; see the class docstring for shapes. Returns ``(quantized, indices)``."""
        grid = z.dim() >= 4
        move = grid or self.channel_first
        if move:
            spatial = z.shape[2:]
            z = z.flatten(2).transpose(1, 2)
        if z.dim() != 3 or z.shape[-1] != self.dim:
            raise ValueError(f"z must be Tensor[B, N, {self.dim}] (or channel-first Tensor[B, {self.dim}, *S]), "
                             f"got shape {list(z.shape)}")
        z = self.project_in(z)
        B, N = z.shape[:2]
        z = z.view(B, N, self.num_codebooks, self.codebook_dim)
        with torch.autocast(device_type=z.device.type, enabled=not self.force_quantization_f32):
            orig = z.dtype
            if self.force_quantization_f32 and orig not in (torch.float32, torch.float64):
                z = z.float()
            codes = self.bound(z)
            indices = self.codes_to_indices(codes) if self.return_indices else None
            if indices is not None and self.training:
                with torch.no_grad():  # rows with NaN (index -1) are not counted
                    flat = indices.flatten().long()
                    self.batch_counts.zero_().index_add_(0, flat.clamp_min(0), (flat >= 0).to(self.batch_counts.dtype))
            codes = codes.flatten(-2).to(orig)
        out = self.project_out(codes)
        if move:
            out = out.transpose(1, 2).reshape(B, out.shape[-1], *spatial)
            if indices is not None:
                indices = indices.view(B, *spatial, self.num_codebooks)
        if indices is not None and not self.keep_num_codebooks_dim:
            indices = indices.squeeze(-1)
        return out, indices
