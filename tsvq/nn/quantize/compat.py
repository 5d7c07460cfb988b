"""``vector_quantize_pytorch`` keywords that tsvq's quantisers take only at the values that ask for
what tsvq does anyway, so that a ``VectorQuantize`` / ``ResidualVQ`` configuration that spells out
those settings runs unchanged. Any other value is refused with what to use instead; a name that is
neither tsvq's nor in these tables is a ``TypeError`` as usual."""
from __future__ import annotations

from typing import Any, Callable

_Rule = tuple[Callable[[Any, dict], bool], str]


def _off(v, ctx) -> bool:
    return not v


def _any(v, ctx) -> bool:
    return True


_BY_DECAY = ("tsvq trains the codebook by EMA when decay is a float and by gradient when decay=None (the "
             "codebook loss of VQ-VAE eq. 3, weight 1): pass decay=None for learnable_codebook=True, "
             "ema_update=False")

VECTOR_QUANTIZE: dict[str, _Rule] = {
    "sync_kmeans": (lambda v, ctx: bool(v), "k-means runs over all ranks whenever the codebook is synchronised "
                                             "(sync_codebook)"),
    "ema_update": (lambda v, ctx: v is None or bool(v) == (ctx["decay"] is not None), _BY_DECAY),
    "learnable_codebook": (lambda v, ctx: v is None or bool(v) == (ctx["decay"] is None), _BY_DECAY),
    "accept_3d_fmap": (_off, "accept_image_fmap=True takes channel-first input with any number of spatial "
                             "dimensions, [B, D, T, H, W] included"),
    "layernorm_after_project_in": (_off, "not provided: put the LayerNorm in the model, before the quantiser"),
    "straight_through": (_off, "not provided: the Gumbel-softmax gradient needs the N x K soft assignments "
                               "in the backward pass; stochastic_sample_codes=True samples codes with the "
                               "straight-through estimator (or rotation_trick=True)"),
    "directional_reparam": (_off, "not provided"),
    "directional_reparam_variance": (_any, ""),
    "affine_param": (_off, "not provided"),
    "sync_affine_param": (_off, "not provided (no affine parameters)"),
    "affine_param_batch_decay": (_any, ""),
    "affine_param_codebook_decay": (_any, ""),
    "manual_ema_update": (_off, "not provided: the EMA update runs in forward (ResidualVectorQuantizer's "
                                "shared_codebook defers it itself)"),
    "in_place_codebook_optimizer": (lambda v, ctx: v is None, "not provided: with decay=None the codebook is an "
                                                             "nn.Parameter for the model's own optimiser"),
    "manual_in_place_optimizer_update": (_off, "not provided"),
    "vq_bridge": (lambda v, ctx: v is None, "not provided"),
    "sync_update_v": (lambda v, ctx: v == 0, "not provided"),
    "return_zeros_for_masked_padding": (lambda v, ctx: bool(v), "padding always comes back as 0 (index -1)"),
    "route_gradients_to_input": (lambda v, ctx: bool(v), "not provided"),
}

RESIDUAL_VQ: dict[str, _Rule] = {
    "implicit_neural_codebook": (_off, "not provided"),
    "mlp_kwargs": (_any, ""),  # used only with implicit neural codebooks
    "diveq": (_off, "not provided"),
}


def check(owner: str, kwargs: dict[str, Any], table: dict[str, _Rule], **ctx) -> None:
    """Raise unless every ``name=value`` of ``kwargs`` is in ``table`` at an accepted value.

    Raises:
        TypeError: a name that is not in ``table``.
        ValueError: a value other than what tsvq does, with the tsvq way (or "not provided").
    """
    for name, value in kwargs.items():
        if name not in table:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
        accepted, hint = table[name]
        if not accepted(value, ctx):
            raise ValueError(f"{owner}: {name}={value!r} (vector_quantize_pytorch) is not supported: {hint}")
