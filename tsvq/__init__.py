"""tsvq: vector-quantized representation learning and generation for time series.

``tsvq.nn.VectorQuantizer`` is a drop-in, faster vector-quantizer layer backed by the fused
kernels in ``torch.ops.tsvq``; ``tsvq.info()`` says what was built.
"""
from ._extension import has_ops, info
from . import ops

__version__ = "0.1.0"
__all__ = ["info", "has_ops", "ops", "__version__"]
