"""Shared fixtures: the device grid (CUDA cases skip cleanly without a GPU), and every built CUDA
kernel switched on (``TSVQ_CUDA_KERNELS=all``) so that the CUDA cases test tsvq's kernels rather
than the library paths the ops take by default; tests marked ``cuda_defaults`` keep the defaults."""
from __future__ import annotations

import pytest
import torch
from helpers import CUDA

from tsvq.ops import _cuda_defaults

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=[CUDA, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _all_cuda_kernels(request, monkeypatch):
    if request.node.get_closest_marker("cuda_defaults") is None:
        monkeypatch.setattr(_cuda_defaults, "ALL_KERNELS", True)
