"""Neural-network layers of tsvq: the vector quantizers (:mod:`.quantize`), the SSL losses and
projector, STFT modules and SSIM."""
from .losses import BarlowTwinsLoss, IterNorm, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from .quantize import (FiniteScalarQuantizer, GroupedResidualFSQ, GroupedResidualLFQ, GroupedResidualVectorQuantizer,
                       LFQLossBreakdown, LookupFreeQuantizer, LossBreakdown, ResidualFSQ, ResidualLFQ, ResidualSimVQ,
                       ResidualVectorQuantizer, SimVQ, VectorQuantizer, kmeans)
from .stft import ISTFT, STFT

__all__ = ["VectorQuantizer", "LossBreakdown", "ResidualVectorQuantizer", "GroupedResidualVectorQuantizer",
           "FiniteScalarQuantizer", "ResidualFSQ", "GroupedResidualFSQ", "LookupFreeQuantizer", "LFQLossBreakdown",
           "ResidualLFQ", "GroupedResidualLFQ", "SimVQ", "ResidualSimVQ", "STFT", "ISTFT",
           "kmeans", "BarlowTwinsLoss", "VICRegLoss", "VIbCRegLoss", "NTXentLoss", "IterNorm", "Projector"]
