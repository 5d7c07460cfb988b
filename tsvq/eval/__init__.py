"""Evaluators the field reports: pure functions on arrays/tensors.

Stage 1 (:mod:`tsvq.eval.stage1`): linear probe, KNN, silhouette, PCA dimension, reconstruction
MSE, codebook statistics. Generation (:mod:`tsvq.eval.generation`): FID, IS, classification
accuracy (CAS trains its classifier in :mod:`tsvq.recipes.generation`). 1-D SSIM / MS-SSIM, a
loss as much as a metric, live in :mod:`tsvq.nn.ssim`.

The submodules load on first use (PEP 562), so importing the package does not import
scikit-learn and SciPy (about a second of every ``tsvq`` command).
"""
from __future__ import annotations

import importlib

_SOURCES = {"linear_probe": "stage1", "knn_probe": "stage1", "silhouette": "stage1", "intrinsic_dimension": "stage1",
            "reconstruction_mse": "stage1", "codebook_stats": "stage1", "fid": "generation",
            "inception_score": "generation", "accuracy": "generation"}

__all__ = list(_SOURCES)


def __getattr__(name: str):
    if name in _SOURCES:
        value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SOURCES))
