"""Neural-network layers of tsvq: the vector quantizer and the SSL losses/projector."""
from .kmeans import kmeans
from .losses import BarlowTwinsLoss, IterNorm, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from .residual_vq import GroupedResidualVectorQuantizer, ResidualVectorQuantizer
from .stft import ISTFT, STFT
from .vector_quantizer import LossBreakdown, VectorQuantizer

__all__ = ["VectorQuantizer", "LossBreakdown", "ResidualVectorQuantizer", "GroupedResidualVectorQuantizer", "STFT", "ISTFT", "kmeans", "BarlowTwinsLoss", "VICRegLoss", "VIbCRegLoss", "NTXentLoss",
           "IterNorm", "Projector"]
