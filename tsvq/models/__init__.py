"""Model zoo: a registry of named models built from dataclass configs.

``create_model(name, **overrides)`` builds the model from its config class with the given
fields replaced; ``MODELS`` maps each name to ``(model class, config class)``.
"""
from __future__ import annotations

import dataclasses

from torch import nn

from .fcn import FCN, FCNConfig
from .maskgit import MaskGIT, MaskGITConfig
from .ncvqvae import NCVQVAE, NCVQVAEConfig
from .ssl import BYOL, BarlowTwins, SimCLR, SSLConfig, VIbCReg, VICReg
from .vae import VAE, MSSIMVAEConfig, VAEConfig
from .vqvae import VQVAE, VQVAEConfig

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "vqvae": (VQVAE, VQVAEConfig),
    "ncvqvae": (NCVQVAE, NCVQVAEConfig),
    "vae": (VAE, VAEConfig),
    "mssim_vae": (VAE, MSSIMVAEConfig),
    "simclr": (SimCLR, SSLConfig),
    "byol": (BYOL, SSLConfig),
    "barlow_twins": (BarlowTwins, SSLConfig),
    "vicreg": (VICReg, SSLConfig),
    "vibcreg": (VIbCReg, SSLConfig),
    "maskgit": (MaskGIT, MaskGITConfig),
    "fcn": (FCN, FCNConfig),
}
# Stage-1 tokenizers (codebook, prior) and every model that ``tsvq train`` trains on a dataset.
TOKENIZERS = ("vqvae", "ncvqvae")
TRAINABLE = TOKENIZERS + ("vae", "mssim_vae", "simclr", "byol", "barlow_twins", "vicreg", "vibcreg")


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


__all__ = ["MODELS", "TOKENIZERS", "TRAINABLE", "VAE", "VAEConfig", "MSSIMVAEConfig", "SimCLR", "BYOL",
           "BarlowTwins", "VICReg", "VIbCReg", "SSLConfig", "create_model", "make_config", "VQVAE", "VQVAEConfig", "NCVQVAE",
           "NCVQVAEConfig", "MaskGIT", "MaskGITConfig", "FCN", "FCNConfig"]
