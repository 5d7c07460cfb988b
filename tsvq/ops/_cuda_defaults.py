"""Which CUDA kernels the public ops run by default (the table and its measurements: docs/kernels.md).

On CUDA an op runs a tsvq kernel only where a committed GPU benchmark measured it at least as fast
as the torch path at the benchmark shapes; elsewhere it calls the library path directly (cuBLAS
through ``addmm``, cuFFT through ``torch.stft``). ``TSVQ_CUDA_KERNELS=all``, read once at import,
runs every built CUDA kernel instead, so that the unmeasured ones can be tested and timed
(``benchmarks/gpu_session.sh`` sets it). CPU kernels are always used.
"""
from __future__ import annotations

import os
import warnings

_SETTING = os.environ.get("TSVQ_CUDA_KERNELS", "measured").strip().lower()
if _SETTING not in ("measured", "all"):
    warnings.warn(f"TSVQ_CUDA_KERNELS must be 'measured' (default) or 'all', got {_SETTING!r}; using 'measured'",
                  stacklevel=2)
    _SETTING = "measured"
ALL_KERNELS = _SETTING == "all"

# nearest_code's kernel beat cdist + argmin at K x D = 32 x 64 and 1024 x 64 and lost at 8192 x 256,
# where cuBLAS's GEMM runs faster than the kernel's FMA loop.
NEAREST_CODE_MAX_KD = 1024 * 64
# code_stats' kernel is the statistics of the layer step measured faster than vector_quantize_pytorch.
_MEASURED = frozenset({"code_stats"})


def use_cuda_kernel(op: str, codebook_size: int = 0, dim: int = 0) -> bool:
    """Whether ``op`` runs its tsvq CUDA kernel by default (see the module docstring); for
    ``nearest_code`` the codebook size K and code dimension D decide."""
    if ALL_KERNELS:
        return True
    if op == "nearest_code":
        return codebook_size * dim <= NEAREST_CODE_MAX_KD
    return op in _MEASURED
