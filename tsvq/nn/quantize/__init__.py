"""The vector quantizers.

- :mod:`.vector_quantizer`: :class:`VectorQuantizer`, the layer's forward as a short pipeline
  (layout, projection, search or sampling, losses, codebook update, gradient estimator);
- :mod:`.codebook`: its codebook state (EMA update, k-means initialisation, dead-code restarts,
  data-parallel synchronisation, usage statistics);
- :mod:`.functional`: stateless pieces (chunked logits for the cross-entropy commitment loss,
  Gumbel sampling and the diversity loss; the orthogonal regulariser; the rotation trick);
- :mod:`.residual`: residual and grouped residual quantizers;
- :mod:`.fsq`: :class:`FiniteScalarQuantizer` (FSQ: an implicit grid codebook, no codebook state)
  and its residual and grouped residual forms; :mod:`.simvq`: :class:`SimVQ` (a linear map of a
  frozen random codebook); :mod:`.lfq`: :class:`LookupFreeQuantizer` (LFQ and BSQ, the entropy
  penalty in chunks of codes);
- :mod:`.kmeans`: k-means on the tsvq kernels; :mod:`.compat`: ``vector_quantize_pytorch``
  keywords that tsvq accepts at their default values.
"""
from .fsq import FiniteScalarQuantizer, GroupedResidualFSQ, ResidualFSQ
from .kmeans import kmeans
from .lfq import GroupedResidualLFQ, LFQLossBreakdown, LookupFreeQuantizer, ResidualLFQ
from .simvq import ResidualSimVQ, SimVQ
from .residual import GroupedResidualVectorQuantizer, ResidualVectorQuantizer
from .vector_quantizer import LossBreakdown, VectorQuantizer

__all__ = ["LookupFreeQuantizer", "ResidualLFQ", "GroupedResidualLFQ", "LFQLossBreakdown", "SimVQ", "ResidualSimVQ", "FiniteScalarQuantizer", "ResidualFSQ", "GroupedResidualFSQ", "VectorQuantizer", "LossBreakdown", "ResidualVectorQuantizer", "GroupedResidualVectorQuantizer", "kmeans"]
