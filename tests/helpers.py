"""Helpers shared by the tests (imported as `helpers`: pytest's pythonpath includes tests/)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TSVQ_SHARED_DIR", REPO.parent / "shared"))
UCR_DIR = SHARED / "data" / "UCRArchive_2018"
FCN_DIR = SHARED / "fcn" / "supervised_fcn_v1"

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """Same values, non-contiguous storage (every other column of a wider tensor)."""
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    out = wide[..., ::2]
    assert not out.is_contiguous() or t.shape[-1] <= 1
    return out


# Tolerance of the nearest-codeword searches against their references, per dtype.
SEARCH_TOL = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def search_inputs(n: int, K: int, D: int, device, dtype=torch.float32, contiguous: bool = True, seed: int = 0):
    """Random ``x: [n, D]`` and ``codebook: [K, D]`` for the search ops (non-contiguous on request)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g).to(device, dtype)
    cb = torch.randn(K, D, generator=g).to(device, dtype)
    return (x, cb) if contiguous else (noncontiguous(x), noncontiguous(cb))


def requires_ucr(name: str):
    return pytest.mark.skipif(not (UCR_DIR / name).exists(), reason=f"{UCR_DIR / name} not found")


def compiled_twin(make, **compile_kwargs):
    """(compiled, model, eager): ``torch.compile(**compile_kwargs)`` of ``model``, one module from
    ``make()``, and an eager one from ``make()`` with the same state (parameters and buffers), after
    resetting Dynamo."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = make().train()
    model = make().train()
    model.load_state_dict(eager.state_dict())
    return torch.compile(model, **compile_kwargs), model, eager


class LockHolder:
    """Another process holding a run directory's lock (as a second ``tsvq train --out`` would):
    ``with LockHolder(path) as pid: ...``; the process ends on exit."""

    def __init__(self, path):
        self.path = path

    def __enter__(self) -> int:
        import subprocess
        import sys

        code = ("import sys, time; from tsvq.engine.run_dir import RunDir; RunDir(sys.argv[1]).lock(); "
                "print('locked', flush=True); time.sleep(120)")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.path)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"
        return self.proc.pid

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
