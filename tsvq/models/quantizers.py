"""The quantiser choices of the tokenizers (``VQVAEConfig.quantizer``): every one behind the
interface of :class:`tsvq.nn.VectorQuantizer` on channel-first latents, so the tokenizers, the
metrics and the MaskGIT prior treat them alike:

- ``forward(z: Tensor[B, d, F, T]) -> (z_q` same shape, ``codes: int64 [B, F, T]``, ``loss`` scalar)``;
- ``get_codes_from_indices(codes) -> Tensor[B, d, F, T]``;
- ``codebook: Tensor[K, d]``, every codeword in latent space (the prior's embedding init);
- ``codebook_size`` K and ``perplexity`` (last training batch).

"vq" is the EMA :class:`~tsvq.nn.VectorQuantizer` itself; "fsq", "lfq" and "simvq" wrap
:class:`~tsvq.nn.FiniteScalarQuantizer` (K = prod(levels)), :class:`~tsvq.nn.LookupFreeQuantizer`
(K = 2^bits) and :class:`~tsvq.nn.SimVQ`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn import FiniteScalarQuantizer, LookupFreeQuantizer, SimVQ

QUANTIZERS = ("vq", "fsq", "lfq", "simvq")


class FSQTokens(nn.Module):
    """FSQ on ``[B, d, F, T]`` latents (projections d -> len(levels) -> d); no loss."""

    def __init__(self, d: int, levels: tuple[int, ...]):
        super().__init__()
        self.fsq = FiniteScalarQuantizer(list(levels), dim=d, channel_first=True)
        self.codebook_size = self.fsq.codebook_size

    def forward(self, z: torch.Tensor):
        z_q, codes = self.fsq(z)
        return z_q, codes.long(), z.new_zeros(())

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.fsq.indices_to_codes(indices)

    @property
    def codebook(self) -> torch.Tensor:
        return self.fsq.project_out(self.fsq.implicit_codebook.to(self.fsq._levels.device))

    @property
    def perplexity(self) -> torch.Tensor:
        return self.fsq.perplexity


class LFQTokens(nn.Module):
    """LFQ on ``[B, d, F, T]`` latents (projections d -> bits -> d); loss: its entropy (and
    commitment) penalty."""

    def __init__(self, d: int, bits: int, entropy_loss_weight: float, commitment_loss_weight: float):
        super().__init__()
        self.lfq = LookupFreeQuantizer(dim=d, codebook_size=2 ** bits, entropy_loss_weight=entropy_loss_weight,
                                       commitment_loss_weight=commitment_loss_weight, channel_first=True)
        self.codebook_size = self.lfq.codebook_size

    def forward(self, z: torch.Tensor):
        z_q, codes, loss = self.lfq(z)
        return z_q, codes, loss

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.lfq.indices_to_codes(indices)

    @property
    def codebook(self) -> torch.Tensor:
        every = torch.arange(self.codebook_size, device=self.lfq.mask.device)
        return self.lfq.indices_to_codes(every)  # [K, d]: a flat index list has no channel axis to move

    @property
    def perplexity(self) -> torch.Tensor:
        return self.lfq.perplexity


class SimVQTokens(nn.Module):
    """SimVQ on ``[B, d, F, T]`` latents."""

    def __init__(self, d: int, codebook_size: int, commitment_weight: float):
        super().__init__()
        self.sim = SimVQ(dim=d, codebook_size=codebook_size, channel_first=True, commitment_weight=commitment_weight)
        self.codebook_size = codebook_size

    def forward(self, z: torch.Tensor):
        return self.sim(z)

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.sim.indices_to_codes(indices)

    @property
    def codebook(self) -> torch.Tensor:
        return self.sim.codebook

    @property
    def perplexity(self) -> torch.Tensor:
        return self.sim.perplexity
