"""The model registry: ``@register_model(name, config_class)`` on a model class adds it.

``MODELS`` maps each name to ``(model class, config class)``; ``TRAINABLE`` lists the models
``tsvq train`` trains on a dataset and ``TOKENIZERS`` the stage-1 tokenizers a prior can sit on,
in registration order. (timm's ``register_model``, torchvision's model registration.)
"""
from __future__ import annotations

import dataclasses

from torch import nn

MODELS: dict[str, tuple[type[nn.Module], type]] = {}
TRAINABLE: list[str] = []
TOKENIZERS: list[str] = []


def register_model(name: str, config: type, *, trainable: bool = False, tokenizer: bool = False):
    """Class decorator registering a model under ``name`` with its config dataclass ``config``
    (``trainable``: ``tsvq train`` can train it; ``tokenizer``: a stage-1 tokenizer for the prior).
    Stackable, to register one class under several names with different configs.

    Raises:
        ValueError: ``name`` is taken, or ``config`` is not a dataclass.
    """
    if name in MODELS:
        raise ValueError(f"model name {name!r} is already registered (by {MODELS[name][0].__name__})")
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"config of model {name!r} must be a dataclass, got {config!r}")

    def add(cls):
        MODELS[name] = (cls, config)
        if trainable:
            TRAINABLE.append(name)
        if tokenizer:
            TOKENIZERS.append(name)
        return cls

    return add


def make_config(name: str, **overrides):
    """The config dataclass of model ``name`` with ``overrides`` applied.

    Raises:
        ValueError: unknown model name or unknown config field (the message lists the valid ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    cfg_cls = MODELS[name][1]
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {name} config field(s) {unknown}; valid: {sorted(fields)}")
    return cfg_cls(**overrides)


def create_model(name: str, *args, **overrides) -> nn.Module:
    """Build model ``name`` with config ``overrides``, e.g.
    ``create_model("ncvqvae", length=150, ssl_loss="vibcreg", augmentation="gauss")`` or
    ``create_model("fcn", n_classes=3)``. Positional ``args`` go to the model after the config:
    ``create_model("maskgit", codebooks, token_shapes, n_classes, hidden=128)``.

    Raises:
        ValueError: unknown model name or config field.
    """
    cfg = make_config(name, **overrides)
    return MODELS[name][0](cfg, *args)
