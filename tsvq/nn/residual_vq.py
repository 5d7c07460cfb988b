"""``ResidualVectorQuantizer``: residual vector quantisation on :class:`VectorQuantizer` layers."""
from __future__ import annotations

import torch
import torch.nn as nn

from .vector_quantizer import VectorQuantizer


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantisation (RVQ; Zeghidour et al. 2021, "SoundStream", algorithm 1).

    ``num_quantizers`` quantisers in sequence, each quantising what the previous ones left:
    ``r_0 = z``, ``q_i = VQ_i(r_i)``, ``r_{i+1} = r_i - sg(q_i)``, output ``sum_i q_i``. Every
    layer is a :class:`VectorQuantizer` with its own codebook, EMA update (or loss-trained
    codebook), commitment loss and straight-through or rotation-trick gradient, so the
    quantisers' kernels do all the searching (no N x K matrix at any depth).

    A drop-in for ``vector_quantize_pytorch.ResidualVQ`` in its common configuration (same
    ``dim``, ``num_quantizers``, ``codebook_size`` and per-layer keyword names, same
    ``(quantized, indices, losses)`` return; tested step for step against it). Not provided:
    quantize dropout, shared codebooks, beam search, implicit neural codebooks, and a
    ``codebook_dim`` different from ``dim``.

    Args:
        dim: D of the input vectors.
        num_quantizers: Q, number of residual layers, >= 1.
        codebook_size: K of every layer.
        **kwargs: passed to every :class:`VectorQuantizer` (``decay``, ``commitment_weight``,
            ``kmeans_init``, ``threshold_ema_dead_code``, ``use_cosine_sim``, ``rotation_trick``,
            ``channel_last``, ``accept_image_fmap``, ...), with the same defaults.

    Shapes:
        input: as :class:`VectorQuantizer` (``[B, D]``, ``[B, N, D]`` or channel-first
            ``[B, D, *S]``); ``mask`` (optional): bool ``[B, N]`` for sequences, as there.
        quantized: same shape and dtype as the input.
        indices: int64, the layer's index shape with Q last (``[B, Q]``, ``[B, N, Q]`` or
            ``[B, *S, Q]``); -1 at padding.
        losses: Tensor[Q], each layer's loss (commitment, plus codebook loss when
            ``decay=None``); their sum is the term to add to a training loss.

    Raises:
        ValueError: ``num_quantizers`` < 1, ``codebook_dim`` given, or what
            :class:`VectorQuantizer` raises.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, **kwargs):
        super().__init__()
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {num_quantizers}")
        if kwargs.get("codebook_dim", dim) != dim:
            raise ValueError("codebook_dim: every residual layer quantises in the input space (codebook_dim == dim); "
                             "project the input before the quantiser instead")
        self.layers = nn.ModuleList(VectorQuantizer(dim, codebook_size, **kwargs) for _ in range(num_quantizers))

    @property
    def num_quantizers(self) -> int:
        return len(self.layers)

    @property
    def codebooks(self) -> torch.Tensor:
        """Tensor[Q, K, D]: the codebooks of the layers (cosine layers: as stored)."""
        return torch.stack([layer.codebook.detach() for layer in self.layers])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``x`` with every layer in turn; see the class docstring for shapes.

        Returns:
            (quantized, indices, losses).
        """
        residual = x
        quantized_out = None
        all_indices, losses = [], []
        for layer in self.layers:
            quantized, indices, loss = layer(residual, mask=mask)
            residual = residual - quantized.detach()
            quantized_out = quantized if quantized_out is None else quantized_out + quantized
            all_indices.append(indices)
            losses.append(loss)
        return quantized_out, torch.stack(all_indices, dim=-1), torch.stack(losses)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """The ``quantized`` of ``forward`` for these ``indices`` (``[..., Q]``, as returned;
        -1 entries contribute 0): the sum of every layer's codes, in the layers' layout."""
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be an integer tensor, got {getattr(indices, 'dtype', type(indices))}")
        if indices.dim() < 2 or indices.shape[-1] != self.num_quantizers:
            raise ValueError(f"indices must be Tensor[..., Q] with Q = num_quantizers = {self.num_quantizers}, "
                             f"got shape {list(indices.shape)}")
        out = None
        for layer, idx in zip(self.layers, indices.unbind(-1)):
            codes = layer.indices_to_codes(idx.clamp_min(0))
            channel_first = idx.dim() >= 2 and (layer.accept_image_fmap or not layer.channel_last)
            codes = codes * (idx >= 0).unsqueeze(1 if channel_first else -1).to(codes.dtype)
            out = codes if out is None else out + codes
        return out
