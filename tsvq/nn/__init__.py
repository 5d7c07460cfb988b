"""Neural-network layers of tsvq: the vector quantizer and the SSL losses/projector."""
from .kmeans import kmeans
from .losses import BarlowTwinsLoss, IterNorm, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from .vector_quantizer import VectorQuantizer

__all__ = ["VectorQuantizer", "kmeans", "BarlowTwinsLoss", "VICRegLoss", "VIbCRegLoss", "NTXentLoss",
           "IterNorm", "Projector"]
