"""Per-code counts and sums: ``torch.ops.tsvq.code_stats``."""
from __future__ import annotations

import torch

from .. import _extension
from . import _checks, reference


def code_stats(x: torch.Tensor, indices: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How many rows of ``x`` each code got, and their sum, in one pass (no one-hot matrix).

    The statistics behind the EMA codebook update (van den Oord et al. 2017, appendix A.1) and
    k-means; under ``torch.distributed`` they are what gets all-reduced.

    Args:
        x: Tensor[N, D], float32/float64/float16/bfloat16.
        indices: int64 Tensor[N], values in ``[0, K)``.
        K: codebook size, >= 1.

    Returns:
        counts: Tensor[K]; sums: Tensor[K, D]. float64 for float64 ``x``, float32 otherwise.

    Raises:
        ValueError: wrong ranks, N mismatch, devices, K < 1.
        TypeError: non-float ``x`` or non-int64 ``indices``.
        IndexError: (CPU) an index outside ``[0, K)``. On CUDA such rows are skipped, since
            the kernel cannot raise without a host synchronisation.

    Note:
        The CUDA kernel uses float atomics (run-to-run differences in the last bits); with
        ``torch.use_deterministic_algorithms(True)`` it sorts rows by code and sums each
        segment in order instead (bitwise reproducible, somewhat slower). The CPU kernel is
        always deterministic.
    """
    _checks.check_code_stats(x, indices, K)
    if _extension.has_ops(x.device):
        return torch.ops.tsvq.code_stats(x, indices, K)
    _extension.warn_if_missing(x.device)
    return reference.code_stats(x, indices, K)


if _extension.built():

    @torch.library.register_fake("tsvq::code_stats")
    def _(x, indices, K):
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        return x.new_empty(K, dtype=acc), x.new_empty(K, x.shape[1], dtype=acc)
