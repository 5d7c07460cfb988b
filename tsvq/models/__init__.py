"""Model zoo: a registry of named models built from dataclass configs.

``create_model(name, **overrides)`` builds the model from its config class with the given
fields replaced; ``MODELS`` maps each name to ``(model class, config class)``. A model joins the
registry with the ``@register_model`` decorator (:mod:`tsvq.models.registry`).
"""
from __future__ import annotations

# Importing the model modules registers them: tokenizers first, then the zoo (the CLI's order).
from .vqvae import VQVAE, VQVAEConfig
from .ncvqvae import NCVQVAE, NCVQVAEConfig
from .vae import VAE, MSSIMVAEConfig, VAEConfig
from .ssl import BYOL, BarlowTwins, SimCLR, SSLConfig, VIbCReg, VICReg
from .maskgit import MaskGIT, MaskGITConfig
from .fcn import FCN, FCNConfig
from .registry import MODELS, TOKENIZERS, TRAINABLE, create_model, make_config, register_model

__all__ = ["MODELS", "TOKENIZERS", "TRAINABLE", "VAE", "VAEConfig", "MSSIMVAEConfig", "SimCLR", "BYOL",
           "BarlowTwins", "VICReg", "VIbCReg", "SSLConfig", "create_model", "make_config", "register_model", "VQVAE",
           "VQVAEConfig", "NCVQVAE", "NCVQVAEConfig", "MaskGIT", "MaskGITConfig", "FCN", "FCNConfig"]
