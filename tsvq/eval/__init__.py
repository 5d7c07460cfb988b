"""Evaluators the field reports: pure functions on arrays/tensors.

Stage 1 (:mod:`tsvq.eval.stage1`): linear probe, KNN, silhouette, PCA dimension, reconstruction
MSE, codebook statistics. Generation (:mod:`tsvq.eval.generation`): FID, IS, CAS.
"""
from .generation import cas, fid, inception_score
from .stage1 import (codebook_stats, intrinsic_dimension, knn_probe, linear_probe, reconstruction_mse,
                     silhouette)

__all__ = ["linear_probe", "knn_probe", "silhouette", "intrinsic_dimension", "reconstruction_mse",
           "codebook_stats", "fid", "inception_score", "cas"]
