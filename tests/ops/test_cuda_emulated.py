"""CUDA kernel headers run on the CPU (tests/cuda_emulation/emu.h): CI has no GPU, so this is
where a kernel's index arithmetic, edge handling and reductions run on every change. Each driver
compiles with the host C++ compiler (C++20 for <barrier>) and checks the kernel against a brute
force; the GPU run itself is still the CUDA tests (pytest -m cuda)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent / "cuda_emulation"
CXX = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


@pytest.mark.skipif(CXX is None, reason="no C++ compiler")
@pytest.mark.parametrize("driver", ["nearest_code", "nearest_code_topk", "code_stats", "stft_framing", "stft_fft_small", "barlow_twins", "ema_apply"])
def test_kernel_header_on_emulated_cuda(driver, tmp_path):
    exe = tmp_path / driver
    build = subprocess.run([CXX, "-std=c++20", "-O1", f"-I{HERE / 'stub'}", "-o", str(exe), str(HERE / f"{driver}.cpp"),
                            "-pthread"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-1000:]
    results = [line for line in run.stdout.splitlines() if " wrong " in line]
    assert results and all(": 0 wrong " in line for line in results), run.stdout
