"""Grouped residual quantisers: G residual quantisers on equal slices of the features (as
``vector_quantize_pytorch``'s ``GroupedResidualFSQ`` / ``GroupedResidualLFQ``)."""
from __future__ import annotations

import torch
from torch import nn


class GroupedResidual(nn.Module):
    """``groups`` residual quantisers built by ``make(dim // groups)``, one per feature slice. With
    quantize dropout every group keeps the same layers in a step: one seed is drawn on the CPU
    (``torch.randint(0, 10000, ())``, the draw ``vector_quantize_pytorch`` makes on a CPU) and given
    to every group.

    Shapes: ``x: Tensor[B, N, dim]`` (``accept_image_fmap``: ``[B, dim, *S]``) -> the groups' outputs
    concatenated along the features, their indices (and losses, all codes) stacked in front:
    ``indices [G, B, N, Q]``.

    Raises:
        ValueError: ``dim`` not divisible by ``groups`` (an int >= 1); input without ``dim`` features.
    """

    def __init__(self, dim: int, groups: int, accept_image_fmap: bool, make):
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or dim % groups:
            raise ValueError(f"dim ({dim}) must be divisible by groups (an int >= 1), got groups={groups!r}")
        self.dim, self.groups, self.accept_image_fmap = dim, groups, accept_image_fmap
        self.rvqs = nn.ModuleList(make(dim // groups) for _ in range(groups))
        self.codebook_size = self.rvqs[0].codebook_size

    @property
    def split_dim(self) -> int:
        return 1 if self.accept_image_fmap else -1

    @property
    def codebooks(self) -> torch.Tensor:
        return torch.stack([rvq.codebooks for rvq in self.rvqs])

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.stack([rvq.get_codes_from_indices(i) for rvq, i in zip(self.rvqs, indices)])

    def get_output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.cat([rvq.get_output_from_indices(i) for rvq, i in zip(self.rvqs, indices)], dim=self.split_dim)

    def forward(self, x: torch.Tensor, return_all_codes: bool = False, **kwargs):
        if x.shape[self.split_dim] != self.dim:
            raise ValueError(f"x must have {self.dim} features in dimension {self.split_dim}, got shape {list(x.shape)}")
        seed = int(torch.randint(0, 10_000, ())) if self.training else None
        outs = [rvq(chunk, return_all_codes=return_all_codes, rand_quantize_dropout_fixed_seed=seed, **kwargs)
                for rvq, chunk in zip(self.rvqs, x.chunk(self.groups, dim=self.split_dim))]
        quantized, *rest = zip(*outs)
        return (torch.cat(quantized, dim=self.split_dim), *(torch.stack(r) for r in rest))
