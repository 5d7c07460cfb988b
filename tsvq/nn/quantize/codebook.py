"""Codebook state of :class:`~tsvq.nn.quantize.VectorQuantizer`: usage statistics, the EMA update
(fused op, or all-reduced statistics under ``torch.distributed``), k-means initialisation and
dead-code restarts. A mixin over the layer's buffers (``codebook``, ``cluster_size``,
``embed_sum``, ``initted``, ``batch_counts``), so that state dicts keep their keys."""
from __future__ import annotations

import functools

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ...ops import code_stats, ema_codebook_update_
from ...ops.ema_codebook_update import ema_apply_
from . import functional as fq
from .kmeans import kmeans


class CodebookState(fq.BatchUsage):
    """The codebook half of the layer (see the module docstring). ``perplexity`` and
    ``fraction_used`` (per codebook with ``separate_codebook_per_head``) come from
    :class:`~.functional.BatchUsage`."""

    # ------------------------------------------------------------------ statistics
    @property
    def code_usage(self) -> torch.Tensor:
        """Tensor[K] (``[h, K]`` with separate codebooks): EMA cluster sizes (vectors per code
        per batch, smoothed)."""
        return self.cluster_size

    @property
    def _num_codebooks(self) -> int:
        return self.heads if self.separate_codebook_per_head else 1

    def _state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cluster_size, embed_sum, codebook) as one codebook of G * K codes: ``[G*K]``,
        ``[G*K, Dc]``, ``[G*K, Dc]``; views of the buffers (the buffers themselves when G = 1)."""
        if not self.separate_codebook_per_head:
            return self.cluster_size, self.embed_sum, self.codebook
        Dc = self.codebook_dim
        return self.cluster_size.view(-1), self.embed_sum.view(-1, Dc), self.codebook.view(-1, Dc)

    # ------------------------------------------------------------------ codebook updates
    def _sync(self) -> bool:
        return fq.is_distributed() if self.sync_codebook is None else bool(self.sync_codebook and fq.is_distributed())

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor, valid: torch.Tensor | None) -> None:
        """k-means on the rows with ``valid`` True (all when None); per head with separate
        codebooks (head j's rows are ``flat[j::h]``). A batch with no valid row leaves the layer
        uninitialised (the next batch with vectors initialises it); a batch with NaN or inf raises
        before the codebook is touched."""
        rows = flat if valid is None else flat[valid]
        if rows.shape[0] == 0:
            return
        bad = ~torch.isfinite(rows).all(1)
        if bool(bad.any()):
            raise ValueError(f"x contains NaN or inf (first at vector {int(bad.nonzero()[0, 0])} of the batch): "
                             "k-means initialisation of the codebook needs finite vectors")
        run = functools.partial(kmeans, num_clusters=self.codebook_size, num_iters=self.kmeans_iters,
                                use_cosine_sim=self.use_cosine_sim, sync=self._sync())
        if self.separate_codebook_per_head:
            h = self.heads
            per_head = flat.view(-1, h, flat.shape[1])
            valid = None if valid is None else valid.view(-1, h)[:, 0]
            results = [run(per_head[:, j] if valid is None else per_head[valid, j]) for j in range(h)]
            means, counts = (torch.stack(r) for r in zip(*results))
        else:
            means, counts = run(flat if valid is None else flat[valid])
        means = means.to(self.codebook.dtype)
        counts = counts.to(self.cluster_size.dtype)
        self.codebook.copy_(means)
        self.embed_sum.copy_(means * counts.unsqueeze(-1))
        self.cluster_size.copy_(counts)
        self.initted.fill_(True)
        self._initted = True

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, indices: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
        """EMA update (or usage tracking for a loss-trained codebook) from the rows with ``valid``
        True (all rows when None; the others are zero); returns the batch counts."""
        sync = self._sync()
        cluster_size, embed_sum, codebook = self._state()
        K = cluster_size.shape[0]  # G * K
        if self.decay is None:
            counts = fq.counts(indices, valid, K, cluster_size.dtype)
            if sync:
                dist.all_reduce(counts)
            cluster_size.mul_(fq.USAGE_DECAY).add_(counts, alpha=1 - fq.USAGE_DECAY)
        elif sync or valid is not None:
            # Padding rows are zero, so they add nothing to the sums; the counts skip them.
            counts, sums = code_stats(flat, indices, K)
            if valid is not None:
                counts = fq.counts(indices, valid, K, counts.dtype)
            if sync:
                dist.all_reduce(counts)
                dist.all_reduce(sums)
            ema_apply_(cluster_size, embed_sum, codebook, counts, sums, self.decay, self.eps)
        else:
            counts = ema_codebook_update_(cluster_size, embed_sum, codebook, flat, indices, self.decay, self.eps)
        if self.decay is not None and self.use_cosine_sim:
            self.codebook.copy_(F.normalize(self.codebook, dim=-1))
        if self.threshold_ema_dead_code > 0:
            self._restart_dead_codes(flat, sync, valid)
        return counts

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, sync: bool, valid: torch.Tensor | None = None) -> None:
        """Replace codes whose EMA cluster size < threshold by random rows of the batch (rows
        with ``valid`` True only; a head's own rows with separate codebooks).

        Device-side selection with ``torch.where``: no ``.item()``, no host synchronisation.
        Under ``torch.distributed`` the replacement rows come from rank 0.
        """
        thr = self.threshold_ema_dead_code
        dead = self.cluster_size < thr  # [K] or [h, K]
        if self.separate_codebook_per_head:
            h = self.heads
            pick, any_valid = fq.random_rows(flat.shape[0] // h, None if valid is None else valid.view(-1, h)[:, 0],
                                           dead.shape, flat.device)
            pick = pick * h + torch.arange(h, device=flat.device).unsqueeze(1)  # head j's rows are j::h
        else:
            pick, any_valid = fq.random_rows(flat.shape[0], valid, dead.shape, flat.device)
        if any_valid is not None:
            dead = dead & any_valid  # a batch of padding only restarts nothing
        samples = flat[pick].to(self.codebook.dtype)
        if sync:
            dist.broadcast(samples, src=0)
        self.codebook.copy_(torch.where(dead.unsqueeze(-1), samples, self.codebook))
        self.embed_sum.copy_(torch.where(dead.unsqueeze(-1), samples * thr, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, torch.full_like(self.cluster_size, thr), self.cluster_size))
