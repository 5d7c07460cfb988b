"""Neural-network layers of tsvq."""
from .kmeans import kmeans
from .vector_quantizer import VectorQuantizer

__all__ = ["VectorQuantizer", "kmeans"]
