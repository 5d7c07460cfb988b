"""Neural-network layers of tsvq: the vector quantizers (:mod:`.quantize`), the SSL losses and
projector, STFT modules and SSIM."""
from .losses import BarlowTwinsLoss, IterNorm, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from .quantize import (FiniteScalarQuantizer, GroupedResidualFSQ, GroupedResidualVectorQuantizer, LFQLossBreakdown, LookupFreeQuantizer, LossBreakdown,
                       ResidualFSQ, ResidualLFQ, ResidualVectorQuantizer, SimVQ, VectorQuantizer, kmeans)
from .stft import ISTFT, STFT

__all__ = ["VectorQuantizer", "FiniteScalarQuantizer", "ResidualFSQ", "SimVQ", "LookupFreeQuantizer", "ResidualLFQ", "LFQLossBreakdown", "GroupedResidualFSQ", "LossBreakdown", "ResidualVectorQuantizer", "GroupedResidualVectorQuantizer", "STFT", "ISTFT",
           "kmeans", "BarlowTwinsLoss", "VICRegLoss", "VIbCRegLoss", "NTXentLoss", "IterNorm", "Projector"]
