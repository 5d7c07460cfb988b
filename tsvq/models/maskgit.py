"""MaskGIT prior over the stage-1 token grid (Chang et al., "MaskGIT: Masked Generative Image
Transformer", CVPR 2022; as used by TimeVQVAE, Lee et al. AISTATS 2023, section 3.2).

A bidirectional transformer predicts every masked token of the flattened ``F' x T'`` grid from
the visible ones and a class token. Training (:meth:`MaskGIT.loss`): per sample a ratio
``r ~ U(0, 1)``, ``ceil(gamma(r) N)`` random tokens masked (at least one) with the cosine
schedule ``gamma(r) = cos(pi r / 2)`` (the masked fraction), cross-entropy on the masked
positions, the class replaced by the "unconditional" entry with probability ``class_dropout``
(classifier-free guidance, Ho & Salimans 2022). Sampling (:meth:`MaskGIT.sample`): iterative
decoding in ``n_steps`` steps; each step samples every masked token from the (guided,
temperature-scaled) logits and re-masks the ``floor(gamma((t + 1) / T) N)`` least confident ones,
confidence = log-probability + annealed Gumbel noise ``choice_temperature (1 - (t + 1) / T)``.
Guidance: ``logits = uncond + s (cond - uncond)``.

For the TimeVQVAE two-branch tokenizer there is one transformer per branch: LF tokens first,
then HF tokens conditioned on the (given) LF tokens, which are prepended to the HF sequence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _random
from .registry import register_model


@dataclass
class MaskGITConfig:
    """Prior settings (SPEC section 4 "Prior"; TimeVQVAE defaults).

    Attributes:
        hidden: transformer width (256). n_layers (4), n_heads (2), ff_mult (feed-forward width
        = ff_mult x hidden), dropout (0.1). class_dropout: probability of training a sample as
        unconditional (0.2). n_steps: iterative-decoding steps T (10). choice_temperature: scale
        of the Gumbel noise on the confidence (4, annealed to 0). temperature: sampling
        temperature of the logits (1). guidance_scale: classifier-free guidance s (1 = plain
        conditional sampling).
    """

    hidden: int = 256
    n_layers: int = 4
    n_heads: int = 2
    ff_mult: int = 4
    dropout: float = 0.1
    class_dropout: float = 0.2
    n_steps: int = 10
    choice_temperature: float = 4.0
    temperature: float = 1.0
    guidance_scale: float = 1.0


def gamma(r: torch.Tensor | float) -> torch.Tensor | float:
    """Cosine mask schedule: fraction of masked tokens at progress ``r`` in [0, 1] (1 at r = 0, 0 at r = 1)."""
    if isinstance(r, torch.Tensor):
        return torch.cos(r * (math.pi / 2))
    return math.cos(r * math.pi / 2)


def n_masked_for_training(r: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Tokens to mask for training ratios ``r: Tensor[B]``: ``clamp(ceil(gamma(r) N), 1, N)`` (int64)."""
    return torch.ceil(gamma(r) * n_tokens).long().clamp(1, n_tokens)


def _check_sampling(guidance_scale: float | None, temperature: float | None, prefix: str = "") -> None:
    if guidance_scale is not None and not math.isfinite(float(guidance_scale)):
        raise ValueError(f"{prefix}guidance_scale must be a finite float, got {guidance_scale}")
    if temperature is not None and not 0.0 <= float(temperature) < math.inf:
        raise ValueError(f"{prefix}temperature must be a finite float >= 0 (0 = most likely token), got {temperature}")


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)`` (scale 1 = conditional)."""
    return uncond + scale * (cond - uncond)


class _TokenTransformer(nn.Module):
    """One bidirectional transformer over ``n_tokens`` tokens of a codebook ``[K, D]`` (+ an
    optional prefix of ``n_context`` given tokens from another codebook)."""

    def __init__(self, cfg: MaskGITConfig, codebook: torch.Tensor, n_tokens: int, n_classes: int,
                 context_codebook: torch.Tensor | None = None, n_context: int = 0):
        super().__init__()
        K, D = codebook.shape
        self.K, self.mask_id, self.n_tokens, self.n_context = K, K, n_tokens, n_context
        self.tok_emb = nn.Embedding(K + 1, D)  # row K = [MASK]
        with torch.no_grad():
            self.tok_emb.weight[:K].copy_(codebook)
            self.tok_emb.weight[K].normal_(0.0, float(codebook.std()) if K * D > 1 else 1.0)
        self.in_proj = nn.Linear(D, cfg.hidden)
        if n_context:
            self.ctx_emb = nn.Embedding.from_pretrained(context_codebook.clone(), freeze=False)
            self.ctx_proj = nn.Linear(context_codebook.shape[1], cfg.hidden)
        self.cls_emb = nn.Embedding(n_classes + 1, cfg.hidden)  # row n_classes = unconditional
        self.pos = nn.Parameter(torch.randn(1, 1 + n_context + n_tokens, cfg.hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.n_heads, cfg.ff_mult * cfg.hidden, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.out_proj = nn.Sequential(nn.Linear(cfg.hidden, D), nn.GELU(), nn.LayerNorm(D))
        self.bias = nn.Parameter(torch.zeros(K))

    def forward(self, tokens: torch.Tensor, classes: torch.Tensor, context: torch.Tensor | None = None):
        """``tokens: int64[B, N]`` (``mask_id`` where masked), ``classes: int64[B]`` -> logits ``[B, N, K]``."""
        parts = [self.cls_emb(classes)[:, None]]
        if self.n_context:
            parts.append(self.ctx_proj(self.ctx_emb(context)))
        parts.append(self.in_proj(self.tok_emb(tokens)))
        h = torch.cat(parts, 1) + self.pos
        h = self.norm(self.encoder(h))[:, -self.n_tokens:]
        # weight-tied head: similarity to the (learned) token embeddings of the K codewords
        return self.out_proj(h) @ self.tok_emb.weight[:self.K].t() + self.bias


@register_model("maskgit", MaskGITConfig)
class MaskGIT(nn.Module):
    """Class-conditional MaskGIT prior over the tokens of a frozen stage-1 tokenizer.

    Args:
        cfg: :class:`MaskGITConfig`.
        codebooks: one ``Tensor[K, D]`` per tokenizer branch (1, or 2 for LF/HF); the token
            embeddings are initialised from them.
        token_shapes: the ``(F', T')`` token grid of each branch.
        n_classes: number of classes (>= 1); class index ``n_classes`` means unconditional.

    Raises:
        ValueError: mismatched codebooks / shapes, n_classes < 1, bad config values.
    """

    name = "maskgit"

    def __init__(self, cfg: MaskGITConfig, codebooks: list[torch.Tensor], token_shapes: list[tuple[int, int]],
                 n_classes: int):
        super().__init__()
        if len(codebooks) != len(token_shapes) or not 1 <= len(codebooks) <= 2:
            raise ValueError("codebooks and token_shapes: one or two branches, the same number of each")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if cfg.hidden % cfg.n_heads:
            raise ValueError(f"hidden ({cfg.hidden}) must be divisible by n_heads ({cfg.n_heads})")
        if cfg.n_steps < 1 or not 0.0 <= cfg.class_dropout <= 1.0:
            raise ValueError("n_steps must be >= 1 and class_dropout in [0, 1]")
        _check_sampling(cfg.guidance_scale, cfg.temperature, "cfg.")
        if not 0.0 <= cfg.choice_temperature < math.inf:
            raise ValueError(f"cfg.choice_temperature must be a finite float >= 0, got {cfg.choice_temperature}")
        self.cfg, self.n_classes = cfg, n_classes
        self.token_shapes = [tuple(int(v) for v in s) for s in token_shapes]
        stages = []
        for i, (cb, (h, w)) in enumerate(zip(codebooks, self.token_shapes)):
            ctx = codebooks[i - 1].detach().float() if i else None
            n_ctx = math.prod(self.token_shapes[i - 1]) if i else 0
            stages.append(_TokenTransformer(cfg, cb.detach().float(), h * w, n_classes, ctx, n_ctx))
        self.stages = nn.ModuleList(stages)

    # ----------------------------------------------------------------- training
    def _check_tokens(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(tokens) != len(self.stages):
            raise ValueError(f"tokens: expected {len(self.stages)} token grid(s), got {len(tokens)}")
        flat = []
        for t, shape, st in zip(tokens, self.token_shapes, self.stages):
            if t.dim() != 3 or tuple(t.shape[1:]) != shape:
                raise ValueError(f"tokens must be int64[B, {shape[0]}, {shape[1]}], got {list(t.shape)}")
            if t.is_floating_point():
                raise TypeError("tokens must be an integer tensor")
            flat.append(t.flatten(1).long())
        return flat

    def loss(self, tokens: list[torch.Tensor], classes: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Masked-token cross-entropy for a batch of token grids (one ``int64[B, F', T']`` per branch).

        Args:
            classes: ``int64[B]`` class indices, or None to train unconditionally.
            generator: seeds the mask ratios, positions and class dropout.

        Returns:
            dict with ``loss`` (sum over branches), ``loss_<i>`` and ``accuracy_<i>`` (masked-token accuracy).
        """
        flat = self._check_tokens(tokens)
        B, device = flat[0].shape[0], flat[0].device
        if B == 0:
            raise ValueError("tokens: empty batch")
        if classes is None:
            classes = torch.full((B,), self.n_classes, dtype=torch.long, device=device)
        else:
            classes = classes.to(device).long()
            drop = _random.rand(B, generator=generator, device=device) < self.cfg.class_dropout
            classes = torch.where(drop, torch.full_like(classes, self.n_classes), classes)
        out, total = {}, 0.0
        for i, (stage, t) in enumerate(zip(self.stages, flat)):
            N = t.shape[1]
            n_mask = n_masked_for_training(_random.rand(B, generator=generator, device=device), N)
            rank = _random.rand(B, N, generator=generator, device=device).argsort(1).argsort(1)
            masked = rank < n_mask[:, None]
            inp = torch.where(masked, torch.full_like(t, stage.mask_id), t)
            logits = stage(inp, classes, flat[i - 1] if i else None)
            ce = F.cross_entropy(logits[masked], t[masked])
            out[f"loss_{i}"] = ce
            out[f"accuracy_{i}"] = (logits[masked].argmax(-1) == t[masked]).float().mean().detach()
            total = total + ce
        out["loss"] = total
        return out

    # ----------------------------------------------------------------- sampling
    def _logits(self, stage, tokens, classes, context, guidance_scale):
        if guidance_scale == 1.0 or bool((classes == self.n_classes).all()):
            return stage(tokens, classes, context)
        uncond_cls = torch.full_like(classes, self.n_classes)
        both = stage(torch.cat([tokens, tokens]), torch.cat([classes, uncond_cls]),
                     None if context is None else torch.cat([context, context]))
        cond, uncond = both.chunk(2)
        return guided_logits(cond, uncond, guidance_scale)

    def _decode_stage(self, stage, classes, context, generator, guidance_scale, temperature):
        n, N, T = classes.shape[0], stage.n_tokens, self.cfg.n_steps
        device = classes.device
        tokens = torch.full((n, N), stage.mask_id, dtype=torch.long, device=device)
        for t in range(T):
            logits = self._logits(stage, tokens, classes, context, guidance_scale).float()
            probs = torch.softmax(logits / max(temperature, 1e-6), -1)
            sampled = _random.multinomial(probs.reshape(-1, stage.K), 1, generator=generator).view(n, N)
            unknown = tokens == stage.mask_id
            sampled = torch.where(unknown, sampled, tokens)
            if t == T - 1:
                return sampled
            ratio = (t + 1) / T
            n_mask = torch.full((n,), math.floor(gamma(ratio) * N), dtype=torch.long, device=device)
            n_mask = torch.minimum(n_mask.clamp(min=1), unknown.sum(1) - 1).clamp(min=0)
            logp = torch.log(torch.gather(probs, -1, sampled[..., None]).squeeze(-1).clamp_min(1e-30))
            u = _random.rand(n, N, generator=generator, device=device).clamp(1e-20, 1 - 1e-7)
            confidence = logp + self.cfg.choice_temperature * (1.0 - ratio) * -torch.log(-torch.log(u))
            confidence = torch.where(unknown, confidence, torch.full_like(confidence, math.inf))
            rank = confidence.argsort(1).argsort(1)
            tokens = torch.where(rank < n_mask[:, None], torch.full_like(sampled, stage.mask_id), sampled)
        return tokens

    @torch.no_grad()
    def sample(self, n: int, classes: int | torch.Tensor | None = None, guidance_scale: float | None = None,
               temperature: float | None = None, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Iterative decoding of ``n`` token grids.

        Args:
            n: number of samples (>= 1).
            classes: None (unconditional), one class index for all, or ``int64[n]``.
            guidance_scale / temperature: default from the config.
            generator: makes sampling reproducible; any device (drawn there, see :mod:`tsvq._random`).

        Returns:
            one ``int64[n, F', T']`` grid per branch (feed to the tokenizer's ``decode_indices``).

        Raises:
            ValueError: n < 1, a class index outside ``[0, n_classes]``, a non-finite guidance
                scale, or a temperature that is negative or not finite.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        _check_sampling(guidance_scale, temperature)
        device = self.stages[0].pos.device
        if classes is None:
            cls = torch.full((n,), self.n_classes, dtype=torch.long, device=device)
        else:
            cls = torch.as_tensor(classes, dtype=torch.long, device=device).expand(n).clone()
            if int(cls.min()) < 0 or int(cls.max()) > self.n_classes:
                raise ValueError(f"classes must be in [0, {self.n_classes - 1}] (or {self.n_classes} = "
                                 f"unconditional), got range [{int(cls.min())}, {int(cls.max())}]")
        s = self.cfg.guidance_scale if guidance_scale is None else float(guidance_scale)
        temp = self.cfg.temperature if temperature is None else float(temperature)
        was_training = self.training
        self.eval()
        grids, context = [], None
        for stage, shape in zip(self.stages, self.token_shapes):
            flat = self._decode_stage(stage, cls, context, generator, s, temp)
            grids.append(flat.view(n, *shape))
            context = flat
        self.train(was_training)
        return grids
