"""Host-side input checks shared by the op wrappers and the references.

They look at shapes, dtypes and devices only (no data), so they never synchronise with a GPU.
Each message names the argument and what was expected.
"""
from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_tensor(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def check_float(t: torch.Tensor, name: str) -> None:
    check_tensor(t, name)
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, float16 or bfloat16, got {t.dtype}")


def check_rank(t: torch.Tensor, rank: int, name: str, shape: str) -> None:
    if t.dim() != rank:
        raise ValueError(f"{name} must be {shape}, got shape {list(t.shape)}")


def check_same_device(a: torch.Tensor, an: str, b: torch.Tensor, bn: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{an} and {bn} must be on the same device, got {a.device} and {b.device}")


def check_nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> None:
    check_float(x, "x")
    check_float(codebook, "codebook")
    check_rank(x, 2, "x", "Tensor[N, D]")
    check_rank(codebook, 2, "codebook", "Tensor[K, D]")
    if x.dtype != codebook.dtype:
        raise TypeError(f"x and codebook must have the same dtype, got {x.dtype} and {codebook.dtype}")
    check_same_device(x, "x", codebook, "codebook")
    if codebook.shape[0] < 1:
        raise ValueError(f"codebook must have K >= 1 codes, got shape {list(codebook.shape)}")
    if codebook.shape[1] != x.shape[1]:
        raise ValueError(f"codebook must be Tensor[K, D] with D == x.size(1) == {x.shape[1]}, "
                         f"got {list(codebook.shape)}")


def check_nearest_code_topk(x: torch.Tensor, codebook: torch.Tensor, k: int) -> None:
    check_nearest_code(x, codebook)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= codebook.shape[0]:
        raise ValueError(f"k must be in [1, K = {codebook.shape[0]}] (the codebook's size), got {k}")


def check_code_stats(x: torch.Tensor, indices: torch.Tensor, K: int) -> None:
    check_float(x, "x")
    check_rank(x, 2, "x", "Tensor[N, D]")
    check_tensor(indices, "indices")
    if indices.dtype != torch.int64:
        raise TypeError(f"indices must be int64, got {indices.dtype}")
    if indices.dim() != 1 or indices.shape[0] != x.shape[0]:
        raise ValueError(f"indices must be int64[N] with N == x.size(0) == {x.shape[0]}, "
                         f"got shape {list(indices.shape)}")
    check_same_device(x, "x", indices, "indices")
    if not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise ValueError(f"K (codebook size) must be an int >= 1, got {K!r}")


def _check_ema_codebook_state(cluster_size, embed_sum, codebook, decay, eps) -> None:
    for name, t in (("cluster_size", cluster_size), ("embed_sum", embed_sum), ("codebook", codebook)):
        check_tensor(t, name)
        if t.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
        if t.dtype != codebook.dtype:
            raise TypeError("cluster_size, embed_sum and codebook must share one dtype, got "
                            f"{cluster_size.dtype}, {embed_sum.dtype}, {codebook.dtype}")
    if codebook.dim() != 2 or codebook.shape[0] < 1:
        raise ValueError(f"codebook must be Tensor[K, D] with K >= 1, got shape {list(codebook.shape)}")
    K = codebook.shape[0]
    if cluster_size.shape != (K,):
        raise ValueError(f"cluster_size must be Tensor[K] with K == codebook.size(0) == {K}, "
                         f"got shape {list(cluster_size.shape)}")
    if embed_sum.shape != codebook.shape:
        raise ValueError(f"embed_sum must be Tensor[K, D] like codebook {list(codebook.shape)}, "
                         f"got shape {list(embed_sum.shape)}")
    if not 0.0 <= float(decay) <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if float(eps) < 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def check_ema_state(cluster_size, embed_sum, codebook, x, indices, decay, eps) -> None:
    _check_ema_codebook_state(cluster_size, embed_sum, codebook, decay, eps)
    K, D = codebook.shape
    check_code_stats(x, indices, K)
    if x.shape[1] != D:
        raise ValueError(f"x must be Tensor[N, D] with D == codebook.size(1) == {D}, "
                         f"got shape {list(x.shape)}")
    for name, t in (("cluster_size", cluster_size), ("embed_sum", embed_sum), ("codebook", codebook)):
        check_same_device(t, name, x, "x")


def check_ema_apply(cluster_size, embed_sum, codebook, counts, sums, decay, eps) -> None:
    _check_ema_codebook_state(cluster_size, embed_sum, codebook, decay, eps)
    check_float(counts, "counts")
    check_float(sums, "sums")
    K = codebook.shape[0]
    if counts.shape != (K,):
        raise ValueError(f"counts must be Tensor[K] with K == codebook.size(0) == {K}, "
                         f"got shape {list(counts.shape)}")
    if sums.shape != codebook.shape:
        raise ValueError(f"sums must be Tensor[K, D] like codebook {list(codebook.shape)}, "
                         f"got shape {list(sums.shape)}")
    for name, t in (("cluster_size", cluster_size), ("embed_sum", embed_sum), ("counts", counts), ("sums", sums)):
        check_same_device(t, name, codebook, "codebook")


def check_barlow_twins(z1, z2, lambd, eps) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        check_float(z, name)
        check_rank(z, 2, name, "Tensor[N, D]")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape [N, D], got {list(z1.shape)} and {list(z2.shape)}")
    if z1.dtype != z2.dtype:
        raise TypeError(f"z1 and z2 must have the same dtype, got {z1.dtype} and {z2.dtype}")
    check_same_device(z1, "z1", z2, "z2")
    if z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 need a batch of N >= 2 rows to standardise columns, got N = {z1.shape[0]}")
    if z1.shape[1] < 1:
        raise ValueError("z1 and z2 need D >= 1 columns")
    if float(lambd) < 0:
        raise ValueError(f"lambd must be >= 0, got {lambd}")
    if not 0.0 <= float(eps) < math.inf:
        raise ValueError(f"eps must be a finite float >= 0, got {eps}")


def check_finite_on_cpu(x: torch.Tensor, codebook: torch.Tensor, names: tuple[str, ...] = ("codebook", "x"),
                        squared_norms: bool = True) -> None:
    """The CPU kernel's NaN/inf errors, raised in Python first (same words): with some toolchains an
    exception thrown inside a C++ kernel ends the process instead of reaching Python
    (``benchmarks/check_cpp_errors.py``), and a diverging model's NaN is the one such error the
    public API can reach. With ``squared_norms``, finite inputs whose squared row norms overflow
    the dtype (so every distance would be inf) get their own message.

    One vectorised reduction per tensor: a sum of squares is finite only if every element is and
    no squared norm overflows, so the usual case costs one read of each tensor (a small fraction
    of the search), where ``isfinite(x).all(1)`` costs more than the search itself on CPUs. Only a
    non-finite sum takes the elementwise pass, which finds the first bad row for the message."""
    for name, t, what in (("codebook", codebook, "code"), ("x", x, "row")):
        if name not in names or t.numel() == 0:
            continue
        flat = t.reshape(-1)
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.float()
        if math.isfinite(float(torch.dot(flat, flat) if squared_norms else flat.sum())):
            continue
        bad = ~torch.isfinite(t).all(1)
        if bool(bad.any()):
            suffix = "" if name == "codebook" or not squared_norms else ": the nearest codeword of a non-finite vector is undefined"
            raise ValueError(f"{name} contains NaN or inf (first at {what} {int(bad.nonzero()[0, 0])}){suffix}")
        if squared_norms:
            acc = torch.float64 if t.dtype == torch.float64 else torch.float32  # the kernels' accumulator
            norms = t.double().square().sum(1)
            over = norms >= torch.finfo(acc).max
            if bool(over.any()):
                raise ValueError(f"{name} is finite, but the squared norm of {what} {int(over.nonzero()[0, 0])} "
                                 f"({float(norms.max()):.3g}) overflows {acc}, so every distance would be "
                                 "inf: rescale the inputs or use float64")
