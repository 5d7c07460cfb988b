"""Loads the compiled ``tsvq._C`` extension and reports what was built.

If the extension is missing or fails to load (e.g. built against another torch), tsvq still
works: every op falls back to its pure-PyTorch reference in :mod:`tsvq.ops.reference`, and a
single warning names the fix.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings

import torch

_C = None
_LOAD_ERROR: str | None = None

if os.environ.get("TSVQ_DISABLE_EXTENSION", "0") not in ("", "0"):
    _LOAD_ERROR = "disabled by TSVQ_DISABLE_EXTENSION"
else:
    try:
        from . import _C  # noqa: F811  (registers torch.ops.tsvq.* as a side effect)
    except (ImportError, OSError) as err:  # pragma: no cover - depends on the build
        _LOAD_ERROR = f"{type(err).__name__}: {err}"

_WARNED = False
_WARNED_CUDA = False
_REFERENCE = threading.local()  # .depth > 0 inside reference_ops() on this thread


def built() -> bool:
    """Whether ``tsvq._C`` loaded, i.e. ``torch.ops.tsvq.*`` exist (whatever :func:`reference_ops`
    says); the ops modules register their fake and autograd kernels on this."""
    return _C is not None


def has_ops(device: torch.device | str | None = None) -> bool:
    """Whether the compiled ``torch.ops.tsvq`` kernels are available (and not switched off on
    this thread by :func:`reference_ops`); with ``device``, also for tensors on that device: a
    build without CUDA kernels (no nvcc at install time) has none for CUDA tensors, which then
    take the pure-PyTorch reference (:func:`warn_if_missing` says so once)."""
    if _C is None or getattr(_REFERENCE, "depth", 0) != 0:
        return False
    return device is None or torch.device(device).type != "cuda" or bool(_C.has_cuda())


@contextlib.contextmanager
def reference_ops():
    """Run every tsvq op on this thread on its pure-PyTorch reference (:mod:`tsvq.ops.reference`)
    inside the block, as if the extension were not built, but without the missing-extension
    warning. For like-for-like comparisons of a whole model (``benchmarks/bench_model_step.py``,
    ``tests/models/test_reference_ops.py``); nests; other threads are unaffected."""
    _REFERENCE.depth = getattr(_REFERENCE, "depth", 0) + 1
    try:
        yield
    finally:
        _REFERENCE.depth -= 1


def warn_if_missing(device: torch.device | str | None = None) -> None:
    """Warn once that the pure-PyTorch fallback is in use: the extension is missing, or (with a
    CUDA ``device``) it was built without CUDA kernels."""
    global _WARNED, _WARNED_CUDA
    if (_C is not None and device is not None and torch.device(device).type == "cuda" and not _C.has_cuda()
            and not _WARNED_CUDA):
        _WARNED_CUDA = True
        warnings.warn(
            "tsvq._C was built without CUDA kernels (torch had no CUDA, or nvcc was not found at install "
            "time: see `tsvq info`); CUDA tensors use the pure-PyTorch reference ops, which are slower. "
            "Fix: reinstall with nvcc on PATH (or CUDA_HOME set), `TSVQ_FORCE_CUDA=1 pip install "
            "--no-build-isolation .`.",
            RuntimeWarning,
            stacklevel=3,
        )
    if _C is None and not _WARNED:
        _WARNED = True
        warnings.warn(
            f"tsvq._C is not available ({_LOAD_ERROR}); using the pure-PyTorch reference ops, "
            "which are slower and use O(N*K) memory. Fix: reinstall with "
            "`pip install --no-build-isolation .` against the torch you run with.",
            RuntimeWarning,
            stacklevel=3,
        )


def info() -> dict:
    """What was built: torch version, extension status, CPU kernel clones, CUDA kernels, arch list,
    OpenMP, and the public ops.

    Returns:
        dict with keys ``torch``, ``extension`` (bool), ``extension_error`` (str or None),
        ``built_against_torch``, ``cpu_kernels`` (which instruction-set clone this CPU runs),
        ``openmp`` (bool), ``cuda_kernels`` (bool), ``cuda_arch_list`` (str), ``cuda_version``
        (int, -1 if none), ``torch_cuda_available`` (bool), ``ops`` (public ``torch.ops.tsvq``
        names; the ``_``-prefixed helper ops are left out).
    """
    ops = sorted({name.split("::", 1)[1].split(".")[0]
                  for name in torch._C._dispatch_get_all_op_names() if name.startswith("tsvq::")})
    ops = [op for op in ops if not op.startswith("_")]
    return {
        "torch": torch.__version__,
        "extension": _C is not None,
        "extension_error": _LOAD_ERROR,
        "built_against_torch": (
            "{}.{}.{}".format(_C.torch_version // 10000, _C.torch_version // 100 % 100,
                              _C.torch_version % 100) if _C is not None else None),
        "cpu_kernels": _C.cpu_kernels() if _C is not None else "none (pure-PyTorch reference ops)",
        "openmp": bool(_C.has_openmp()) if _C is not None else False,
        "cuda_kernels": bool(_C.has_cuda()) if _C is not None else False,
        "cuda_arch_list": _C.cuda_arch_list() if _C is not None else "",
        "cuda_version": _C.cuda_version() if _C is not None else -1,
        "torch_cuda_available": torch.cuda.is_available(),
        "ops": ops,
    }
