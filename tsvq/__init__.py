"""tsvq: vector-quantized representation learning and generation for time series.

``tsvq.nn.VectorQuantizer`` is a drop-in, faster vector-quantizer layer backed by the fused
kernels in ``torch.ops.tsvq`` (registered when ``tsvq.ops`` is imported, as ``tsvq.nn`` and
``tsvq.models`` do); ``tsvq.info()`` says what was built. Importing ``tsvq`` alone does not import
torch, so that the command line answers ``--help`` and bad arguments at once.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["info", "has_ops", "ops", "__version__"]


def __getattr__(name: str):
    if name in ("info", "has_ops"):
        return getattr(importlib.import_module("._extension", __name__), name)
    if name == "ops":
        return importlib.import_module(".ops", __name__)
    raise AttributeError(f"module 'tsvq' has no attribute {name!r}")
