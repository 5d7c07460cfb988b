"""SimVQ (Zhu et al. 2024, "Addressing Representation Collapse in Vector Quantized Models with One
Linear Layer"): the codebook is a learned linear map of a frozen random basis, ``C = W B``, so
every code moves with every update of W and none is left behind (section 3, eq. 6)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import nearest_code
from .functional import BatchUsage, RotationTrick, check_residual_args, quantize_dropout_last


class SimVQ(BatchUsage, nn.Module):
    """SimVQ layer, a drop-in for ``vector_quantize_pytorch.SimVQ``.

    The frozen basis ``B: Tensor[K, D_b]`` is drawn ``N(0, 1 / D_b)`` at construction (then
    ``init_fn(B)``); the codebook is ``codebook_transform(B)`` (default ``Linear(D_b, dim,
    bias=False)``). The search is the fused nearest-codeword op on the current codebook (never an
    N x K matrix). Loss: ``commitment_weight * (||sg(z) - c||^2 + input_to_quantize_commit_loss_weight
    * ||z - sg(c)||^2)`` (means); the first term is what trains W. The gradient to the input is
    the rotation trick (default) or straight-through.

    Args:
        dim: feature size D. codebook_size: K >= 1. codebook_transform: the module mapping the
            basis to codewords (default a bias-free Linear). init_fn: applied to the basis once.
        channel_first: input ``Tensor[B, D, *S]``. rotation_trick: rotation-trick gradient (True)
            or straight-through (False). input_to_quantize_commit_loss_weight: 0.25.
        commitment_weight: 1.0. frozen_codebook_dim: D_b (default ``dim``).

    ``perplexity`` / ``fraction_used``: code usage of the last training batch.

    Shapes: ``x: Tensor[B, N, D]`` (or ``[B, D, *S]``) -> ``(quantized`` of the same shape,
    ``indices: int64 Tensor[B, N]`` (``[B, *S]``), ``loss`` scalar).

    Raises:
        ValueError: ``dim`` / ``codebook_size`` / ``frozen_codebook_dim`` < 1; input whose
            feature size is not ``dim``.
    """

    def __init__(self, dim: int, codebook_size: int, codebook_transform: nn.Module | None = None,
                 init_fn: Callable[[torch.Tensor], torch.Tensor] | None = None, channel_first: bool = False,
                 rotation_trick: bool = True, input_to_quantize_commit_loss_weight: float = 0.25,
                 commitment_weight: float = 1.0, frozen_codebook_dim: int | None = None):
        super().__init__()
        frozen_codebook_dim = dim if frozen_codebook_dim is None else frozen_codebook_dim
        for name, v in (("dim", dim), ("codebook_size", codebook_size), ("frozen_codebook_dim", frozen_codebook_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.dim, self.codebook_size, self.channel_first = dim, codebook_size, channel_first
        self.rotation_trick, self.commitment_weight = rotation_trick, commitment_weight
        self.input_to_quantize_commit_loss_weight = input_to_quantize_commit_loss_weight
        basis = torch.randn(codebook_size, frozen_codebook_dim) * frozen_codebook_dim ** -0.5
        if init_fn is not None:
            basis = init_fn(basis)
        self.code_transform = codebook_transform or nn.Linear(frozen_codebook_dim, dim, bias=False)
        self.register_buffer("frozen_codebook", basis)
        self.register_buffer("batch_counts", torch.zeros(codebook_size), persistent=False)

    @property
    def codebook(self) -> torch.Tensor:
        """The current codewords ``Tensor[K, D]`` (differentiable in the transform's parameters)."""
        return self.code_transform(self.frozen_codebook)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Codewords of ``indices: int Tensor[B, ...]``: ``Tensor[B, ..., D]`` (channel-first: ``[B, D, ...]``)."""
        quantized = self.code_transform(self.frozen_codebook[indices])
        return quantized.movedim(-1, 1) if self.channel_first else quantized

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.channel_first:
            x = x.movedim(1, -1)
        if x.shape[-1] != self.dim or x.dim() < 2:
            raise ValueError(f"x must end in dim = {self.dim} features (channel-first: dimension 1), got {list(x.shape)}")
        shape = x.shape
        flat = x.reshape(-1, self.dim)
        codebook = self.codebook
        with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
            work = torch.float64 if flat.dtype == torch.float64 else torch.float32
            indices, _ = nearest_code(flat.detach().to(work), codebook.detach().to(work))
        quantized = codebook[indices].to(flat.dtype)
        commit = (F.mse_loss(flat.detach(), quantized)
                  + F.mse_loss(flat, quantized.detach()) * self.input_to_quantize_commit_loss_weight)
        if self.training:
            self._count_codes(indices)
        if self.rotation_trick:
            quantized = RotationTrick.apply(flat, quantized)
        else:
            quantized = flat + (quantized - flat).detach()
        quantized, indices = quantized.view(shape), indices.view(shape[:-1])
        if self.channel_first:
            quantized = quantized.movedim(-1, 1)
        return quantized, indices, commit * self.commitment_weight


class ResidualSimVQ(nn.Module):
    """Residual SimVQ: ``num_quantizers`` :class:`SimVQ` layers, each quantising what the previous
    ones left (SoundStream algorithm 1), as ``vector_quantize_pytorch.ResidualSimVQ``; quantize
    dropout drawn on the CPU, or from ``rand_quantize_dropout_fixed_seed``.

    Args:
        dim, codebook_size, channel_first, rotation_trick (True), **sim_vq_kwargs: per layer, as
            :class:`SimVQ`. num_quantizers: Q >= 1. quantize_dropout, quantize_dropout_cutoff_index,
            quantize_dropout_multiple_of: as :class:`ResidualFSQ`.

    Shapes: ``x: Tensor[B, N, dim]`` (or channel-first) -> ``(quantized`` same shape, ``indices``
    int64 ``[B, N, Q]`` (channel-first ``[B, *S, Q]``), ``losses [Q]``).

    Raises:
        ValueError: Q < 1, a cutoff outside ``[0, Q)``, and what :class:`SimVQ` raises.
    """

    def __init__(self, *, dim: int, num_quantizers: int, codebook_size: int, quantize_dropout: bool = False,
                 quantize_dropout_cutoff_index: int = 0, quantize_dropout_multiple_of: int = 1,
                 channel_first: bool = False, rotation_trick: bool = True, **sim_vq_kwargs):
        super().__init__()
        check_residual_args(num_quantizers, quantize_dropout_cutoff_index, quantize_dropout_multiple_of)
        self.layers = nn.ModuleList(SimVQ(dim, codebook_size, channel_first=channel_first, rotation_trick=rotation_trick,
                                          **sim_vq_kwargs) for _ in range(num_quantizers))
        self.num_quantizers, self.codebook_size, self.channel_first = num_quantizers, codebook_size, channel_first
        self.quantize_dropout = bool(quantize_dropout) and num_quantizers > 1
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.quantize_dropout_multiple_of = quantize_dropout_multiple_of

    @property
    def codebooks(self) -> torch.Tensor:
        """Every layer's codewords, ``Tensor[Q, K, dim]``."""
        return torch.stack([layer.codebook for layer in self.layers])

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Codewords of each layer, ``Tensor[Q, B, ..., dim]`` (channel-first: ``[Q, B, dim, ...]``)
        from ``indices: Tensor[B, ..., q]`` (q <= Q; missing layers and -1 give 0)."""
        q = indices.shape[-1]
        if q < self.num_quantizers:
            indices = F.pad(indices, (0, self.num_quantizers - q), value=-1)
        books = self.codebooks
        codes = torch.stack([books[i][indices[..., i].clamp_min(0)].masked_fill((indices[..., i] < 0).unsqueeze(-1), 0.0)
                             for i in range(self.num_quantizers)])
        return codes.movedim(-1, 2) if self.channel_first else codes

    def get_output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.get_codes_from_indices(indices).sum(0)

    def forward(self, x: torch.Tensor, return_all_codes: bool = False, rand_quantize_dropout_fixed_seed: int | None = None):
        last = (quantize_dropout_last(self.quantize_dropout_cutoff_index, self.num_quantizers,
                                      self.quantize_dropout_multiple_of, rand_quantize_dropout_fixed_seed)
                if self.training and self.quantize_dropout else self.num_quantizers - 1)
        null_shape = (x.shape[0], *x.shape[2:]) if self.channel_first else tuple(x.shape[:-1])
        out, residual, all_indices, all_losses = 0.0, x, [], []
        for q, layer in enumerate(self.layers):
            if q > last:
                all_indices.append(torch.full(null_shape, -1, dtype=torch.long, device=x.device))
                all_losses.append(x.new_zeros(()))
                continue
            quantized, indices, loss = layer(residual)
            residual = residual - quantized.detach()
            out = out + quantized
            all_indices.append(indices)
            all_losses.append(loss)
        result = (out, torch.stack(all_indices, dim=-1), torch.stack(all_losses, dim=-1))
        return (*result, self.get_codes_from_indices(result[1])) if return_all_codes else result
