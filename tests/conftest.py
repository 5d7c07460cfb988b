"""Shared fixtures: the device grid (CUDA cases skip cleanly without a GPU)."""
from __future__ import annotations

import pytest
import torch
from helpers import CUDA

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=[CUDA, pytest.mark.cuda])]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
