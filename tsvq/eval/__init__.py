"""Evaluators the field reports for stage-1 tokenizers: pure functions on arrays/tensors."""
from .stage1 import (codebook_stats, intrinsic_dimension, knn_probe, linear_probe, reconstruction_mse,
                     silhouette)

__all__ = ["linear_probe", "knn_probe", "silhouette", "intrinsic_dimension", "reconstruction_mse",
           "codebook_stats"]
