"""EMA codebook update in place: ``torch.ops.tsvq.ema_codebook_update_``."""
from __future__ import annotations

import torch

from .. import _extension
from . import _checks, _cuda_defaults, reference
from .code_stats import code_stats


def ema_codebook_update_(
    cluster_size: torch.Tensor,
    embed_sum: torch.Tensor,
    codebook: torch.Tensor,
    x: torch.Tensor,
    indices: torch.Tensor,
    decay: float,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Exponential-moving-average codebook update, in place, without a host synchronisation.

    van den Oord et al. 2017, "Neural Discrete Representation Learning", appendix A.1
    (eqs. 6-8), with Laplace smoothing of the cluster sizes::

        n_k <- decay n_k + (1 - decay) #{i : indices_i = k}
        m_k <- decay m_k + (1 - decay) sum_{i : indices_i = k} x_i
        e_k <- m_k / ((n_k + eps) / (sum_j n_j + K eps) * sum_j n_j)

    Args:
        cluster_size: Tensor[K] (n), float32 or float64; updated in place.
        embed_sum: Tensor[K, D] (m), same dtype; updated in place.
        codebook: Tensor[K, D] (e), same dtype; overwritten in place.
        x: Tensor[N, D], any float dtype (statistics accumulated in float32, float64 for float64).
        indices: int64 Tensor[N] in ``[0, K)``, usually from :func:`nearest_code`.
        decay: EMA decay in [0, 1] (gamma; 0.99 in the paper, 0.8-0.9 for TimeVQVAE).
        eps: Laplace smoothing, default 1e-5.

    Returns:
        The batch's counts, Tensor[K] (float32, float64 for float64 ``x``), e.g. for perplexity.

    Raises:
        ValueError, TypeError, IndexError: as :func:`code_stats`, plus state shapes/dtypes,
        ``decay`` outside [0, 1], ``eps`` < 0, and (on CPUs, before anything is written) NaN or
        inf in ``x``. On GPUs ``x`` is not checked: that would synchronise with the host.

    Under ``torch.compile`` this runs :func:`code_stats` and then the update in ATen ops, which
    Inductor fuses, instead of the in-place op: with torch 2.13's Inductor, a read of the codebook
    placed before the in-place op (the layer's ``z_q = codebook[indices]``) can be fused into a kernel
    that runs after it and see the updated codebook, a silently wrong result (see
    ``tests/nn/test_vector_quantizer.py::test_inductor_compiled_layer_matches_eager``). With the
    update in ATen ops the same layer compiles to the eager result (that test).
    """
    _checks.check_ema_state(cluster_size, embed_sum, codebook, x, indices, decay, eps)
    if torch.compiler.is_compiling() or (codebook.is_cuda and not _cuda_defaults.use_cuda_kernel("ema_codebook_update_")):
        # see the docstring's last paragraph; on CUDA the code_stats kernel plus ATen ops by default
        counts, sums = code_stats(x, indices, codebook.shape[0])
        reference.ema_apply_(cluster_size, embed_sum, codebook, counts, sums, float(decay), float(eps))
        return counts
    if x.device.type == "cpu":
        _checks.check_finite_on_cpu(x, codebook, names=("x",), squared_norms=False)
    if _extension.has_ops(codebook.device):
        return torch.ops.tsvq.ema_codebook_update_(cluster_size, embed_sum, codebook, x, indices,
                                                   float(decay), float(eps))
    _extension.warn_if_missing(codebook.device)
    return reference.ema_codebook_update_(cluster_size, embed_sum, codebook, x, indices, decay, eps)


def ema_apply_(cluster_size: torch.Tensor, embed_sum: torch.Tensor, codebook: torch.Tensor,
               counts: torch.Tensor, sums: torch.Tensor, decay: float, eps: float = 1e-5) -> None:
    """The O(K D) part of :func:`ema_codebook_update_` from given statistics, in place.

    What a data-parallel layer runs after all-reducing the batch's :func:`code_stats` across
    ranks (``tsvq.nn.VectorQuantizer`` under ``torch.distributed``), so that single-process and
    data-parallel training share one update (``torch.ops.tsvq._ema_apply_``: two kernels on
    CUDA, one pass on the CPU).

    Args:
        cluster_size, embed_sum, codebook: the state, as in :func:`ema_codebook_update_`.
        counts: Tensor[K], any float dtype (converted to the state's).
        sums: Tensor[K, D], any float dtype.
        decay, eps: as in :func:`ema_codebook_update_`.

    Raises:
        ValueError, TypeError: state as in :func:`ema_codebook_update_`; ``counts`` / ``sums``
            of the wrong shape, dtype or device.

    Under ``torch.compile``, ATen ops instead of the in-place op, as :func:`ema_codebook_update_`.
    """
    _checks.check_ema_apply(cluster_size, embed_sum, codebook, counts, sums, decay, eps)
    if torch.compiler.is_compiling() or (codebook.is_cuda and not _cuda_defaults.use_cuda_kernel("ema_apply_")):
        reference.ema_apply_(cluster_size, embed_sum, codebook, counts, sums, float(decay), float(eps))
        return
    if _extension.has_ops(codebook.device):
        torch.ops.tsvq._ema_apply_(cluster_size, embed_sum, codebook, counts, sums, float(decay), float(eps))
        return
    _extension.warn_if_missing(codebook.device)
    reference.ema_apply_(cluster_size, embed_sum, codebook, counts, sums, float(decay), float(eps))


if _extension.built():

    @torch.library.register_fake("tsvq::ema_codebook_update_")
    def _(cluster_size, embed_sum, codebook, x, indices, decay, eps):
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        return x.new_empty(codebook.shape[0], dtype=acc)

    @torch.library.register_fake("tsvq::_ema_apply_")
    def _(cluster_size, embed_sum, codebook, counts, sums, decay, eps):
        return None
