"""Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple", section 3 and appendix A.1): each of d dimensions is bounded and rounded to one of
``levels[i]`` values, so the codebook is the implicit grid of ``prod(levels)`` points; no codebook
to learn, no commitment loss, no collapse.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .functional import BatchUsage, check_residual_args, quantize_dropout_last, to_rows
from .grouped import GroupedResidual


def round_ste(z: torch.Tensor) -> torch.Tensor:
    """``round(z)`` with the straight-through gradient (identity)."""
    return z + (z.round() - z).detach()


def floor_ste(z: torch.Tensor) -> torch.Tensor:
    """``floor(z)`` with the straight-through gradient (identity)."""
    return z + (z.floor() - z).detach()


class FiniteScalarQuantizer(BatchUsage, nn.Module):
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
    ``[-1, 1]``. ``perplexity`` / ``fraction_used``: code usage of the last training batch (all
    codebooks pooled).

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
        if self.codebook_size <= 1 << 24:  # every index and partial sum is an exact float32 integer
            index = (level * self._basis.to(level.dtype)).sum(-1)
            return torch.where(torch.isnan(index), -1.0, index).to(torch.int32)
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

    # ---------------------------------------------------------------- forward
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantise ``z``; see the class docstring for shapes. Returns ``(quantized, indices)``."""
        move = z.dim() >= 4 or self.channel_first
        z, spatial = to_rows(z, move, self.dim, "z")
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
                self._count_codes(indices)  # rows with NaN (index -1) are not counted
            codes = codes.flatten(-2).to(orig)
        out = self.project_out(codes)
        if move:
            out = out.transpose(1, 2).reshape(B, out.shape[-1], *spatial)
            if indices is not None:
                indices = indices.view(B, *spatial, self.num_codebooks)
        if indices is not None and not self.keep_num_codebooks_dim:
            indices = indices.squeeze(-1)
        return out, indices


class ResidualFSQ(nn.Module):
    """Residual FSQ: ``num_quantizers`` FSQ layers quantise what the previous ones left, layer q
    at the scale ``levels ** -q`` (symmetric levels, ``FSQ(preserve_symmetry=True)``), as
    ``vector_quantize_pytorch.ResidualFSQ`` (SoundStream's residual scheme, Zeghidour et al. 2021,
    algorithm 1, with FSQ layers). The input is first squashed to the levels' range: ``tanh(x / c) c``
    with ``c = 1 + 1 / (L - 1)`` when ``bound_hard_clamp`` (default), or ``soft_clamp_input_value``.

    With ``quantize_dropout`` each training step keeps the first ``d + 1`` layers, d drawn uniformly
    from ``[quantize_dropout_cutoff_index, Q - 1]`` (rounded up so that ``d + 1`` is a multiple of
    ``quantize_dropout_multiple_of``) on the CPU, so no device synchronisation; dropped layers get
    index -1. ``rand_quantize_dropout_fixed_seed`` draws d as ``ResidualFSQ`` does for that seed.

    Args:
        levels: FSQ levels per dimension (each >= 2). num_quantizers: Q >= 1.
        dim: input feature size (default ``len(levels)``; otherwise Linear projections in and out).
        is_channel_first: input ``Tensor[B, dim, *S]``.
        quantize_dropout, quantize_dropout_cutoff_index, quantize_dropout_multiple_of: see above.
        soft_clamp_input_value: the clamp ``c`` (float, list per dimension, or None) when
            ``bound_hard_clamp`` is False.
        bound_hard_clamp: hard-clamp inside the layers after the soft clamp (default True).
        **kwargs: further :class:`FiniteScalarQuantizer` keywords.

    Shapes: ``x: Tensor[B, N, dim]`` -> ``(quantized Tensor[B, N, dim], indices Tensor[B, N, Q])``
    (channel-first: ``[B, dim, *S]`` and ``[B, Q, *S]``, as ``ResidualFSQ``).

    Raises:
        ValueError: Q < 1, a cutoff outside ``[0, Q)``, ``quantize_dropout_multiple_of`` < 1, a
            soft clamp given with ``bound_hard_clamp``, and what :class:`FiniteScalarQuantizer` raises.
    """

    def __init__(self, *, levels: list[int], num_quantizers: int, dim: int | None = None,
                 is_channel_first: bool = False, quantize_dropout: bool = False, quantize_dropout_cutoff_index: int = 0,
                 quantize_dropout_multiple_of: int = 1, soft_clamp_input_value=None, bound_hard_clamp: bool = True,
                 **kwargs):
        super().__init__()
        check_residual_args(num_quantizers, quantize_dropout_cutoff_index, quantize_dropout_multiple_of)
        if bound_hard_clamp and soft_clamp_input_value is not None:
            raise ValueError("soft_clamp_input_value is set by bound_hard_clamp=True; pass one of them")
        levels = list(levels)
        d = len(levels)
        self.levels, self.num_quantizers, self.is_channel_first = levels, num_quantizers, is_channel_first
        self.dim = d if dim is None else dim
        self.has_projections = self.dim != d
        self.project_in = nn.Linear(self.dim, d) if self.has_projections else nn.Identity()
        self.project_out = nn.Linear(d, self.dim) if self.has_projections else nn.Identity()
        self.layers = nn.ModuleList(
            FiniteScalarQuantizer(levels, dim=d, preserve_symmetry=True, bound_hard_clamp=bound_hard_clamp, **kwargs)
            for _ in range(num_quantizers))
        self.codebook_size = self.layers[0].codebook_size
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("scales", torch.stack([lv ** -q for q in range(num_quantizers)]), persistent=False)
        self.quantize_dropout = bool(quantize_dropout) and num_quantizers > 1
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.quantize_dropout_multiple_of = quantize_dropout_multiple_of
        if bound_hard_clamp:
            soft_clamp_input_value = 1 + 1 / (lv - 1)
        elif isinstance(soft_clamp_input_value, (list, tuple, float, int)):
            soft_clamp_input_value = torch.tensor(soft_clamp_input_value, dtype=torch.float32)
        self.register_buffer("soft_clamp_input_value", soft_clamp_input_value, persistent=False)

    @property
    def codebooks(self) -> torch.Tensor:
        """Every layer's implicit codebook, ``Tensor[Q, prod(levels), d]`` (unscaled)."""
        return torch.stack([layer.implicit_codebook for layer in self.layers])

    def _last_layer(self, seed: int | None) -> int:
        return quantize_dropout_last(self.quantize_dropout_cutoff_index, self.num_quantizers,
                                     self.quantize_dropout_multiple_of, seed)

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Scaled codes of each layer, ``Tensor[Q, B, N, d]`` from ``indices: Tensor[B, N, q]``
        (q <= Q: missing layers and -1 give 0)."""
        B, q = indices.shape[0], indices.shape[-1]
        flat = indices.reshape(B, -1, q)
        if q < self.num_quantizers:
            flat = torch.nn.functional.pad(flat, (0, self.num_quantizers - q), value=-1)
        dropped = flat < 0
        codes = torch.stack([self.codebooks[i][flat[..., i].clamp_min(0).long()] for i in range(self.num_quantizers)])
        codes = codes.masked_fill(dropped.permute(2, 0, 1).unsqueeze(-1), 0.0)
        codes = codes * self.scales.view(self.num_quantizers, 1, 1, -1)
        return codes.reshape(self.num_quantizers, *indices.shape[:-1], codes.shape[-1])

    def get_output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """The summed codes after ``project_out``: ``Tensor[B, N, dim]``."""
        return self.project_out(self.get_codes_from_indices(indices).sum(0))

    def forward(self, x: torch.Tensor, return_all_codes: bool = False, rand_quantize_dropout_fixed_seed: int | None = None):
        """Quantise ``x`` with every layer in turn; returns ``(quantized, indices)`` (and the scaled
        codes of every layer, ``Tensor[Q, B, N, d]``, with ``return_all_codes``)."""
        if self.is_channel_first:
            spatial = x.shape[2:]
            x = x.flatten(2).transpose(1, 2)
        x = self.project_in(x)
        if self.soft_clamp_input_value is not None:
            c = self.soft_clamp_input_value.to(x.dtype)
            x = torch.tanh(x / c) * c
        dropout = self.training and self.quantize_dropout and torch.is_grad_enabled()
        last = self._last_layer(rand_quantize_dropout_fixed_seed) if dropout else self.num_quantizers - 1
        out, residual, all_indices = 0.0, x, []
        with torch.autocast(device_type=x.device.type, enabled=False):
            for q, (layer, scale) in enumerate(zip(self.layers, self.scales)):
                if q > last:
                    all_indices.append(torch.full(x.shape[:2], -1, dtype=torch.long, device=x.device))
                    continue
                quantized, indices = layer(residual / scale)
                quantized = quantized * scale
                residual = residual - quantized.detach()
                out = out + quantized
                all_indices.append(indices)
        out = self.project_out(out)
        indices = torch.stack(all_indices, dim=-1)
        if self.is_channel_first:
            out = out.transpose(1, 2).reshape(out.shape[0], out.shape[-1], *spatial)
            indices = indices.transpose(1, 2).reshape(indices.shape[0], indices.shape[-1], *spatial)
        if not return_all_codes:
            return out, indices
        return out, indices, self.get_codes_from_indices(indices)


class GroupedResidualFSQ(GroupedResidual):
    """``groups`` :class:`ResidualFSQ` on equal slices of the features, as
    ``vector_quantize_pytorch.GroupedResidualFSQ`` (see :class:`~.grouped.GroupedResidual`).

    Args:
        dim: feature size, divisible by ``groups``. groups: G >= 1. accept_image_fmap: the features
            are dimension 1 (``Tensor[B, dim, *S]``) instead of the last. **kwargs: :class:`ResidualFSQ`.

    Shapes: ``x: Tensor[B, N, dim]`` -> ``(quantized Tensor[B, N, dim], indices Tensor[G, B, N, Q])``.
    """

    def __init__(self, *, dim: int, groups: int = 1, accept_image_fmap: bool = False, **kwargs):
        super().__init__(dim, groups, accept_image_fmap, lambda d: ResidualFSQ(dim=d, **kwargs))
