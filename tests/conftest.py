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


def pytest_terminal_summary(terminalreporter):
    """One line per reason tests were skipped (no GPU, an optional package, data not here), with
    the count, instead of one line per test (``-rs``)."""
    import re
    from collections import Counter

    reasons = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reason = re.sub(r"^Skipped: ", "", str(report.longrepr[2]))
            reasons[reason] += 1
    if reasons:
        terminalreporter.write_sep("-", f"why {sum(reasons.values())} tests were skipped")
        for reason, n in reasons.most_common():
            terminalreporter.write_line(f"{n:5d}  {reason}")
