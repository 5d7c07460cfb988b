"""Loads the compiled ``tsvq._C`` extension and reports what was built.

If the extension is missing or fails to load (e.g. built against another torch), tsvq still
works: every op falls back to its pure-PyTorch reference in :mod:`tsvq.ops.reference`, and a
single warning names the fix.
"""
from __future__ import annotations

import os
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


def has_ops() -> bool:
    """Whether the compiled ``torch.ops.tsvq`` kernels are available."""
    return _C is not None


def warn_if_missing() -> None:
    """Warn once that the pure-PyTorch fallback is in use."""
    global _WARNED
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
    """What was built: torch version, extension status, CUDA kernels, arch list, OpenMP.

    Returns:
        dict with keys ``torch``, ``extension`` (bool), ``extension_error`` (str or None),
        ``cuda_kernels`` (bool), ``cuda_arch_list`` (str), ``cuda_version`` (int, -1 if none),
        ``openmp`` (bool), ``torch_cuda_available`` (bool), ``ops`` (list of op names).
    """
    ops = sorted({name.split("::", 1)[1].split(".")[0]
                  for name in torch._C._dispatch_get_all_op_names() if name.startswith("tsvq::")})
    return {
        "torch": torch.__version__,
        "extension": _C is not None,
        "extension_error": _LOAD_ERROR,
        "built_against_torch": (
            "{}.{}.{}".format(_C.torch_version // 10000, _C.torch_version // 100 % 100,
                              _C.torch_version % 100) if _C is not None else None),
        "cuda_kernels": bool(_C.has_cuda()) if _C is not None else False,
        "cuda_arch_list": _C.cuda_arch_list() if _C is not None else "",
        "cuda_version": _C.cuda_version() if _C is not None else -1,
        "openmp": bool(_C.has_openmp()) if _C is not None else False,
        "torch_cuda_available": torch.cuda.is_available(),
        "ops": ops,
    }
