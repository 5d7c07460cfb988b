"""``ResidualVectorQuantizer`` and ``GroupedResidualVectorQuantizer``: residual vector quantisation
on :class:`VectorQuantizer` layers."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ...ops import nearest_code_topk
from . import compat
from .functional import is_distributed
from .vector_quantizer import VectorQuantizer


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantisation (RVQ; Zeghidour et al. 2021, "SoundStream", algorithm 1).

    ``num_quantizers`` quantisers in sequence, each quantising what the previous ones left:
    ``r_0 = z``, ``q_i = VQ_i(r_i)``, ``r_{i+1} = r_i - sg(q_i)``, output ``sum_i q_i``. Every
    layer is a :class:`VectorQuantizer` with its own codebook, EMA update (or loss-trained
    codebook), commitment loss and straight-through or rotation-trick gradient, so the
    quantisers' kernels do all the searching (no N x K matrix at any depth).

    With ``quantize_dropout`` (SoundStream sec. 3.3, "quantizer dropout"), each training step
    quantises with the first ``d + 1`` layers only, d drawn uniformly from
    ``[quantize_dropout_cutoff_index, Q - 1]`` (rounded up so that ``d + 1`` is a multiple of
    ``quantize_dropout_multiple_of``, EnCodec's structured dropout): one model then serves every
    bitrate, decoding from the first q codes of each vector (the dropped layers' indices are -1
    and :meth:`indices_to_codes` reads them as 0). d is drawn on the host from torch's CPU
    generator (seeded by ``torch.manual_seed``; no device synchronisation) and, under
    ``torch.distributed``, broadcast from rank 0 (one small host synchronisation per step).

    With ``shared_codebook`` every depth quantises with one codebook (one :class:`VectorQuantizer`
    at every depth). All depths search it as it was at the start of the step; then, with an EMA
    codebook, it takes one EMA step on the union of the depths' vectors (each vector counts once
    in its code's cluster size and sum) and restarts dead codes from them. ``ResidualVQ``
    instead applies the decay once per depth (Q decays per step, weighting the deepest, smallest
    residuals most) and restarts after each depth as well as at the end. So the two agree on the
    codes, outputs and losses of a step and in eval mode, not on the codebook's EMA.

    With ``beam_size`` = b > 1 (``eval_beam_size`` in eval mode), the codes are chosen by beam
    search instead of greedily, layer by layer (as ``ResidualVQ``'s beam search): each of b partial
    code paths per vector proposes its b nearest codes at the next layer
    (:func:`tsvq.ops.nearest_code_topk`, no N x K matrix), and the b paths of smallest score
    ``sum_q w_q ||r_q - c_q||^2`` (``w`` = ``beam_score_quantizer_weights``, default 1 per layer)
    survive; the last layer keeps the best path. The search runs without gradient in float32 (or
    float64) on the codebooks as they are at the start of the step, then each layer quantises with
    its chosen codes as usual (straight-through gradient, commitment loss and EMA update on the
    chosen path's residuals). The score sums every layer's error, not only the last one's, and the
    greedy path can be pruned on the way, so beam search lowers the final residual error on most
    vectors, not on each (with more beams than paths it finds the best-scoring path). k-means
    initialisation of an uninitialised layer uses the residuals of every surviving path. Not with
    ``use_cosine_sim``, ``stochastic_sample_codes`` or ``commitment_use_cross_entropy_loss``
    (``ResidualVQ`` refuses the last too).

    A drop-in for ``vector_quantize_pytorch.ResidualVQ`` in its common configuration (same
    ``dim``, ``num_quantizers``, ``codebook_size``, ``shared_codebook``, ``quantize_dropout*``,
    ``beam_size`` and per-layer keyword names, same ``(quantized, indices, losses)`` return; tested
    step for step against it). Not provided: implicit neural codebooks and multi-head layers
    (``ResidualVQ`` refuses ``heads`` too).

    Args:
        dim: D of the input vectors.
        num_quantizers: Q, number of residual layers, >= 1.
        codebook_size: K of every layer, or one K per layer (a sequence of Q sizes, as
            ``ResidualVQ``; ``num_quantizers`` may then be omitted).
        codebook_dim: as ``ResidualVQ``: when it differs from ``dim``, one linear layer projects the
            input to ``codebook_dim`` before the first quantiser and one projects the sum of the
            codes back (the channel dimension of channel-first input); every layer quantises in
            ``codebook_dim``. Default ``dim``.
        shared_codebook: one codebook for every depth (above). Default False.
        quantize_dropout: in training, use a random number of leading layers per step (above).
            Default False; ignored when Q = 1 (as ``ResidualVQ``).
        quantize_dropout_cutoff_index: the fewest layers kept is this + 1, in [0, Q). Default 0.
        quantize_dropout_multiple_of: keep a multiple of this many layers, >= 1. Default 1.
        quant_grad_frac: the fraction of a layer's output gradient that also flows back through
            the residual it leaves to the next layer, ``r_{q+1} = r_q - (f q + (1 - f) sg(q))``
            (as ``ResidualVQ``'s keyword), in [0, 1]. Default 0: the next layer quantises
            ``r_q - sg(q)`` (SoundStream).
        beam_size: beams of the code search in training (above), an int >= 1 or None. Default
            None: greedy (as 1).
        eval_beam_size: beams in eval mode, >= 1; needs ``beam_size``. Default ``beam_size``.
        beam_score_quantizer_weights: w, one float >= 0 per layer weighting its squared error in a
            path's score. Default 1 for every layer.
        **kwargs: ``ResidualVQ`` keywords at the values that ask for what tsvq does
            (``implicit_neural_codebook=False``, ...), and
            the rest passed to every :class:`VectorQuantizer` (``decay``, ``commitment_weight``,
            ``kmeans_init``, ``threshold_ema_dead_code``, ``use_cosine_sim``, ``rotation_trick``,
            ``channel_last``, ``accept_image_fmap``, ...), with the same defaults.

    Shapes:
        input: as :class:`VectorQuantizer` (``[B, D]``, ``[B, N, D]`` or channel-first
            ``[B, D, *S]``); ``mask`` (optional): bool ``[B, N]`` for sequences, as there.
        quantized: same shape and dtype as the input.
        indices: int64, the layer's index shape with Q last (``[B, Q]``, ``[B, N, Q]`` or
            ``[B, *S, Q]``); -1 at padding.
        losses: Tensor[Q], each layer's loss (commitment, plus codebook loss when
            ``decay=None``; 0 for layers dropped by quantize dropout); their sum is the term to
            add to a training loss.

    Raises:
        ValueError: ``num_quantizers`` < 1 (or missing with one ``codebook_size``), a
            ``codebook_size`` sequence of another length, different sizes with ``shared_codebook``,
            ``codebook_dim`` < 1, ``heads`` != 1, a
            quantize-dropout setting or ``quant_grad_frac`` out of range, ``orthogonal_reg_weight`` > 0 with
            ``shared_codebook``, a beam setting out of range or beam search with a layer option it does not
            support, or what :class:`VectorQuantizer` raises.
    """

    def __init__(self, dim: int, num_quantizers: int | None = None, codebook_size: int | Sequence[int] | None = None,
                 codebook_dim: int | None = None, shared_codebook: bool = False, quantize_dropout: bool = False,
                 quantize_dropout_cutoff_index: int = 0, quantize_dropout_multiple_of: int = 1,
                 quant_grad_frac: float = 0.0, beam_size: int | None = None, eval_beam_size: int | None = None,
                 beam_score_quantizer_weights: Sequence[float] | None = None, **kwargs):
        super().__init__()
        compat.check(type(self).__name__, {k: kwargs.pop(k) for k in list(kwargs) if k in compat.RESIDUAL_VQ},
                      compat.RESIDUAL_VQ)
        if codebook_size is None:
            raise ValueError("codebook_size is required: one K for every layer, or a sequence of one K per layer")
        if isinstance(codebook_size, int):
            if num_quantizers is None:
                raise ValueError("num_quantizers is required when codebook_size is a single int")
            sizes = (codebook_size,) * max(num_quantizers, 0)
        else:
            sizes = tuple(int(k) for k in codebook_size)
            num_quantizers = len(sizes) if num_quantizers is None else num_quantizers
            if len(sizes) != num_quantizers:
                raise ValueError(f"codebook_size must have one size per layer (num_quantizers = {num_quantizers}), "
                                 f"got {len(sizes)}: {list(sizes)}")
        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be >= 1, got {num_quantizers}")
        if shared_codebook and len(set(sizes)) != 1:
            raise ValueError(f"shared_codebook=True needs one codebook_size for every layer, got {list(sizes)}")
        codebook_dim = dim if codebook_dim is None else codebook_dim
        if codebook_dim < 1:
            raise ValueError(f"codebook_dim must be >= 1, got {codebook_dim}")
        if kwargs.get("heads", 1) != 1:
            raise ValueError(f"heads must be 1 in a residual quantiser (as ResidualVQ), got {kwargs['heads']}")
        if not 0 <= quantize_dropout_cutoff_index < num_quantizers:
            raise ValueError(f"quantize_dropout_cutoff_index must be in [0, num_quantizers = {num_quantizers}), "
                             f"got {quantize_dropout_cutoff_index}")
        if shared_codebook and kwargs.get("orthogonal_reg_weight", 0) > 0:
            raise ValueError("orthogonal_reg_weight > 0 is not supported with shared_codebook=True")
        if quantize_dropout_multiple_of < 1:
            raise ValueError(f"quantize_dropout_multiple_of must be >= 1, got {quantize_dropout_multiple_of}")
        if not 0.0 <= quant_grad_frac <= 1.0:
            raise ValueError(f"quant_grad_frac must be in [0, 1], got {quant_grad_frac}")
        self.beam_size = _check_beam("beam_size", beam_size)
        if eval_beam_size is not None and beam_size is None:
            raise ValueError("eval_beam_size needs beam_size (as ResidualVQ): pass beam_size=1 for a greedy search "
                             "in training")
        self.eval_beam_size = _check_beam("eval_beam_size", eval_beam_size if eval_beam_size is not None else beam_size)
        weights = (1.0,) * num_quantizers if beam_score_quantizer_weights is None else \
            tuple(float(w) for w in beam_score_quantizer_weights)
        if len(weights) != num_quantizers or not all(0.0 <= w < float("inf") for w in weights):
            raise ValueError(f"beam_score_quantizer_weights must be {num_quantizers} finite floats >= 0 (one per "
                             f"layer), got {list(beam_score_quantizer_weights)}")
        self.beam_score_quantizer_weights = weights
        if max(self.beam_size or 1, self.eval_beam_size or 1) > 1:
            _check_beam_layer_options(kwargs)
        self.codebook_dim = codebook_dim
        needs_projection = codebook_dim != dim
        self.project_in = nn.Linear(dim, codebook_dim) if needs_projection else nn.Identity()
        self.project_out = nn.Linear(codebook_dim, dim) if needs_projection else nn.Identity()
        if shared_codebook:  # one layer at every depth (its state_dict entries repeat per depth, as ResidualVQ's)
            self.layers = nn.ModuleList([VectorQuantizer(codebook_dim, sizes[0], **kwargs)] * num_quantizers)
        else:
            self.layers = nn.ModuleList(VectorQuantizer(codebook_dim, k, **kwargs) for k in sizes)
        self.codebook_sizes = sizes
        self.shared_codebook = bool(shared_codebook)
        self.quantize_dropout = bool(quantize_dropout) and num_quantizers > 1
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        self.quantize_dropout_multiple_of = quantize_dropout_multiple_of
        self.quant_grad_frac = float(quant_grad_frac)

    @property
    def num_quantizers(self) -> int:
        return len(self.layers)

    @property
    def codebooks(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Tensor[Q, K, codebook_dim]: the codebooks of the layers (cosine layers: as stored); a
        tuple of ``[K_i, codebook_dim]`` when the layers' sizes differ (as ``ResidualVQ``)."""
        codebooks = tuple(layer.codebook.detach() for layer in self.layers)
        return torch.stack(codebooks) if len(set(self.codebook_sizes)) == 1 else codebooks

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, lens: torch.Tensor | None = None, *,
                freeze_codebook: bool | None = None, sample_codebook_temp: float | None = None,
                return_all_codes: bool = False, beam_size: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``x`` with every layer in turn; see the class docstring for shapes. ``mask``
        (bool ``[B, N]``) or ``lens`` (int ``[B]``) mark padding as in :class:`VectorQuantizer`;
        ``freeze_codebook`` (default None: each layer's attribute) freezes every layer's codebook
        for this call, and ``sample_codebook_temp`` (default None: each layer's attribute) sets
        every layer's sampling temperature for this call (with ``stochastic_sample_codes``), as there.
        ``beam_size`` (default None: ``beam_size`` in training, ``eval_beam_size`` in eval mode)
        sets the beams of this call's code search, as ``ResidualVQ``'s keyword.

        Returns:
            (quantized, indices, losses), or with ``return_all_codes`` (as ``ResidualVQ``)
            (quantized, indices, losses, all_codes), ``all_codes`` = :meth:`get_codes_from_indices`
            of the indices: ``Tensor[Q, ...]``, each layer's codes (0 where dropped or padding), read
            from the codebooks as they are after this call (in training, after its EMA update), as
            ``ResidualVQ`` does.
        """
        if beam_size is None:
            beam_size = self.beam_size if self.training else self.eval_beam_size
        else:
            beam_size = _check_beam("beam_size", beam_size)
            if beam_size > 1:
                _check_beam_layer_options(vars(self.layers[0]))
        last = self._last_layer(x.device) if self.training and self.quantize_dropout else self.num_quantizers - 1
        return self._forward(x, mask, lens, freeze_codebook, return_all_codes, last, sample_codebook_temp,
                             beam_size or 1)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None, lens: torch.Tensor | None,
                 freeze_codebook: bool | None, return_all_codes: bool, last: int,
                 sample_codebook_temp: float | None = None, beam_size: int = 1):
        """``forward`` with the index of the last layer to use given (quantize dropout's d)."""
        residual = self._project(self.project_in, x)
        paths = self._beam_search(residual, mask, lens, last, beam_size) if beam_size > 1 else None
        quantized_out = None
        all_indices, losses, deferred = [], [], []
        for q, layer in enumerate(self.layers):
            if q > last:  # dropped: no search, no codebook update
                all_indices.append(torch.full_like(all_indices[0], -1))
                losses.append(torch.zeros_like(losses[0]))
                continue
            quantized, indices, loss, _, rows = layer._forward(residual, mask, lens, layer._frozen(freeze_codebook),
                                                               defer_update=self.shared_codebook,
                                                               sample_codebook_temp=sample_codebook_temp,
                                                               codes=None if paths is None else paths[:, q])
            if rows is not None:
                deferred.append(rows)
            frac = self.quant_grad_frac  # the next residual is r - sg(q), or with a fraction of q's gradient
            residual = residual - (quantized.detach() if frac == 0 else frac * quantized + (1 - frac) * quantized.detach())
            quantized_out = quantized if quantized_out is None else quantized_out + quantized
            all_indices.append(indices)
            losses.append(loss)
        if deferred:  # the shared codebook: one EMA step on every depth's vectors together
            self._update_shared_codebook(deferred)
        indices = torch.stack(all_indices, dim=-1)
        quantized_out = self._out(quantized_out, indices, padded=mask is not None or lens is not None)
        if return_all_codes:
            return quantized_out, indices, torch.stack(losses), self.get_codes_from_indices(indices)
        return quantized_out, indices, torch.stack(losses)

    @torch.no_grad()
    def _beam_search(self, residual: torch.Tensor, mask: torch.Tensor | None, lens: torch.Tensor | None, last: int,
                     beam_size: int) -> torch.Tensor:
        """The codes of layers 0..``last`` for every vector, by beam search (see the class
        docstring): int64 ``[R, last + 1]``, R the layers' rows (``B * N``; padding rows are
        searched like the others and set to -1 by the layers). Never more than ``R * b * b``
        candidates at a time."""
        first = self.layers[0]
        vectors, _, valid = first._input_vectors(residual, mask, lens)
        work = torch.float64 if torch.float64 in (vectors.dtype, first.codebook.dtype) else torch.float32
        with torch.autocast(device_type=vectors.device.type, enabled=False):
            r = first._rows(first.project_in(vectors), valid, work)  # [R, D]
            R, D = r.shape
            r = r.unsqueeze(1)  # [R, b, D]: the residuals of the b paths
            scores = r.new_zeros(R, 1)
            paths = torch.empty(R, 1, 0, dtype=torch.long, device=r.device)
            for q in range(last + 1):
                layer = self.layers[q]
                b = r.shape[1]
                if self.training and not layer._initted:
                    layer._kmeans_init(r.reshape(-1, D), None if valid is None else valid.repeat_interleave(b))
                codebook = layer._state()[2].to(work)
                k = min(beam_size, codebook.shape[0])
                codes, dist = nearest_code_topk(r.reshape(-1, D), codebook, k)  # [R*b, k]
                candidates = (scores.unsqueeze(2) + self.beam_score_quantizer_weights[q] * dist.view(R, b, k)).view(R, b * k)
                keep = beam_size if q < last else 1
                if b * k > keep:
                    scores, chosen = candidates.topk(keep, dim=1, largest=False)  # [R, keep], best first
                else:
                    scores, chosen = candidates, torch.arange(b * k, device=r.device).expand(R, -1)
                parent = chosen // k
                code = codes.view(R, b * k).gather(1, chosen)
                paths = torch.cat([paths.gather(1, parent.unsqueeze(2).expand(-1, -1, q)), code.unsqueeze(2)], 2)
                r = r.gather(1, parent.unsqueeze(2).expand(-1, -1, D)) - F.embedding(code, codebook)
        return paths[:, 0]

    @torch.no_grad()
    def _update_shared_codebook(self, deferred: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> None:
        """The shared codebook's update after all depths searched it: one EMA step (and dead-code
        restart) on the union of the depths' vectors, and its usage statistics over them."""
        layer = self.layers[0]
        rows, idx, valid = zip(*deferred)
        valid = None if valid[0] is None else torch.cat(valid)
        counts = layer._update_codebook(torch.cat(rows), torch.cat(idx), valid)
        layer.batch_counts.copy_(counts.view_as(layer.batch_counts))

    def _out(self, codes_sum: torch.Tensor, indices: torch.Tensor, padded: bool = True) -> torch.Tensor:
        """The sum of the layers' codes in the input space: ``project_out`` when there is one, and
        then 0 at padding (where the first layer's index is -1, not the projection's bias)."""
        if isinstance(self.project_out, nn.Identity):
            return codes_sum
        out = self._project(self.project_out, codes_sum)
        return self._zero_where(indices[..., 0] < 0, out) if padded else out

    def _channel_first(self, t: torch.Tensor) -> bool:
        return self.layers[0]._channel_first(t)  # every layer has the same layout

    def _project(self, linear: nn.Module, t: torch.Tensor) -> torch.Tensor:
        """``linear`` on the channel dimension of ``t`` (last, or 1 for channel-first input)."""
        if isinstance(linear, nn.Identity):
            return t
        return linear(t.movedim(1, -1)).movedim(-1, 1) if self._channel_first(t) else linear(t)

    def _zero_where(self, where: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``t`` with the vectors at positions ``where`` (its shape without the channels) set to 0."""
        return torch.where(where.unsqueeze(1 if self._channel_first(t) else -1), 0.0, t)

    def _last_layer(self, device: torch.device) -> int:
        """Quantize dropout's d: the index of the last layer used this step (see the class docstring)."""
        d = int(torch.randint(self.quantize_dropout_cutoff_index, self.num_quantizers, ()))
        m = self.quantize_dropout_multiple_of
        d = -(-(d + 1) // m) * m - 1  # d + 1 rounded up to a multiple of m
        if is_distributed():
            t = torch.tensor(d, device=device)
            dist.broadcast(t, src=0)
            d = int(t)
        return d

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Every layer's codes for ``indices`` (``[..., q]`` as ``forward`` returns them, q <= Q: the
        first q layers' indices, the rest read as dropped): ``Tensor[Q, *out]`` where ``out`` is the
        layers' output shape (channels ``codebook_dim``: before ``project_out``), 0 wherever an
        index is -1 (padding, quantize dropout, missing layers).

        Raises:
            TypeError: non-integer indices.
            ValueError: no last dimension of 1 to Q entries.
        """
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be an integer tensor, got {getattr(indices, 'dtype', type(indices))}")
        if indices.dim() < 2 or not 1 <= indices.shape[-1] <= self.num_quantizers:
            raise ValueError(f"indices must be Tensor[..., q] with 1 <= q <= num_quantizers = {self.num_quantizers}, "
                             f"got shape {list(indices.shape)}")
        missing = self.num_quantizers - indices.shape[-1]
        if missing:
            indices = torch.cat([indices, indices.new_full((*indices.shape[:-1], missing), -1)], -1)
        out = []
        for layer, idx in zip(self.layers, indices.unbind(-1)):
            out.append(self._zero_where(idx < 0, layer.indices_to_codes(idx.clamp_min(0))))
        return torch.stack(out)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """The ``quantized`` of ``forward`` for these ``indices`` (``[..., q]``, q <= Q, as
        returned; -1 entries and missing layers contribute 0): the sum of the layers' codes, in
        the layers' layout, after ``project_out`` (0 at padding: where the first index is -1).
        Decoding from the first q < Q codes is what quantize dropout trains for. Raises as
        :meth:`get_codes_from_indices`."""
        return self._out(self.get_codes_from_indices(indices).sum(0), indices)

    get_output_from_indices = indices_to_codes


def _check_beam(name: str, value: int | None) -> int | None:
    """A beam size: None or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value


def _check_beam_layer_options(options: dict) -> None:
    """Refuse beam search with the layer options it does not support (see the class docstring)."""
    for name in ("use_cosine_sim", "stochastic_sample_codes", "commitment_use_cross_entropy_loss"):
        if options.get(name, False):
            raise ValueError(f"beam search (beam_size > 1) does not support {name}=True: the search scores squared "
                             "L2 distances to the nearest codes")


class GroupedResidualVectorQuantizer(nn.Module):
    """Grouped residual vector quantisation (Yang et al. 2023, "HiFi-Codec", group-residual VQ):
    the channels are cut into ``groups`` equal groups and each is quantised by its own
    :class:`ResidualVectorQuantizer`; the outputs are concatenated back.

    A drop-in for ``vector_quantize_pytorch.GroupedResidualVQ`` (same ``dim``, ``groups`` and
    residual-quantiser keyword names, same ``(quantized, indices, losses)`` return). Under quantize
    dropout all groups keep the same number of layers in a step (one draw, as ``GroupedResidualVQ``),
    so the first q codes of every group decode together.

    Args:
        dim: D of the input vectors, a multiple of ``groups``.
        groups: G, number of channel groups, >= 1. Default 1.
        num_quantizers: Q, residual layers per group.
        codebook_size: K of every layer, or one K per layer (as :class:`ResidualVectorQuantizer`).
        **kwargs: passed to every :class:`ResidualVectorQuantizer` (``codebook_dim`` per group,
            ``shared_codebook``, ``quantize_dropout*``, and the :class:`VectorQuantizer` keywords).

    Shapes:
        input: as :class:`VectorQuantizer` (``[B, D]``, ``[B, N, D]`` or channel-first
            ``[B, D, *S]``, the groups cut along D); ``mask`` / ``lens`` as there.
        quantized: same shape and dtype as the input.
        indices: int64 ``Tensor[G, ..., Q]``, each group's residual indices.
        losses: ``Tensor[G, Q]``.
        all_codes (``return_all_codes=True``): ``Tensor[G, Q, ...]``, each group's
            :meth:`ResidualVectorQuantizer.get_codes_from_indices`.

    Raises:
        ValueError: ``groups`` < 1, ``dim`` not a multiple of it, input whose channel dimension
            is not ``dim``, or what :class:`ResidualVectorQuantizer` raises.
    """

    def __init__(self, dim: int, groups: int = 1, num_quantizers: int | None = None,
                 codebook_size: int | Sequence[int] | None = None, **kwargs):
        super().__init__()
        if groups < 1 or dim % groups:
            raise ValueError(f"groups must be >= 1 and divide dim = {dim}, got {groups}")
        self.dim, self.groups = dim, groups
        self.rvqs = nn.ModuleList(ResidualVectorQuantizer(dim // groups, num_quantizers, codebook_size, **kwargs)
                                  for _ in range(groups))

    @property
    def codebooks(self) -> torch.Tensor | tuple:
        """Tensor[G, Q, K, codebook_dim] (a tuple of the groups' tuples when layer sizes differ)."""
        codebooks = tuple(rvq.codebooks for rvq in self.rvqs)
        return torch.stack(codebooks) if isinstance(codebooks[0], torch.Tensor) else codebooks

    def _split_dim(self, x: torch.Tensor) -> int:
        return 1 if self.rvqs[0]._channel_first(x) else -1

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, lens: torch.Tensor | None = None, *,
                freeze_codebook: bool | None = None, sample_codebook_temp: float | None = None,
                return_all_codes: bool = False):
        """Quantise each channel group with its residual quantiser; see the class docstring
        (``freeze_codebook`` and ``sample_codebook_temp`` as :meth:`ResidualVectorQuantizer.forward`).

        Returns:
            (quantized, indices, losses), or (quantized, indices, losses, all_codes) with
            ``return_all_codes``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"x must be a tensor with a channel dimension, got {getattr(x, 'shape', type(x))}")
        split = self._split_dim(x)
        if x.shape[split] != self.dim:
            raise ValueError(f"x must have dim == {self.dim} channels in dim {split}, got shape {list(x.shape)}")
        first = self.rvqs[0]
        last = (first._last_layer(x.device) if self.training and first.quantize_dropout
                else first.num_quantizers - 1)  # one draw for every group
        outs = [rvq._forward(chunk, mask, lens, freeze_codebook, return_all_codes, last, sample_codebook_temp)
                for rvq, chunk in zip(self.rvqs, x.chunk(self.groups, dim=split))]
        quantized = torch.cat([o[0] for o in outs], dim=split)
        rest = [torch.stack([o[i] for o in outs]) for i in range(1, len(outs[0]))]
        return (quantized, *rest)

    def get_codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """``Tensor[G, Q, ...]``: each group's :meth:`ResidualVectorQuantizer.get_codes_from_indices`
        for ``indices: Tensor[G, ..., q]``."""
        return torch.stack([rvq.get_codes_from_indices(i) for rvq, i in zip(self.rvqs, self._groups_of(indices))])

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """The ``quantized`` of ``forward`` for ``indices: Tensor[G, ..., q]``: the groups' outputs
        concatenated on the channel dimension."""
        outs = [rvq.indices_to_codes(i) for rvq, i in zip(self.rvqs, self._groups_of(indices))]
        return torch.cat(outs, dim=self._split_dim(outs[0]))

    get_output_from_indices = indices_to_codes

    def _groups_of(self, indices: torch.Tensor):
        if not isinstance(indices, torch.Tensor) or indices.dim() < 1 or indices.shape[0] != self.groups:
            raise ValueError(f"indices must be Tensor[G, ..., q] with G = groups = {self.groups}, "
                             f"got {getattr(indices, 'shape', type(indices))}")
        return indices.unbind(0)
