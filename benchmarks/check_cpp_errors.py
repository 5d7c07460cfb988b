"""Does an error raised inside a C++ kernel reach Python as an exception, or crash the process?

The first GPU session (2026-11-30, H200, torch 2.11.0+cu130, Python 3.12) saw the test suite die
with a segmentation fault at the first CPU kernel error it provoked (nearest_code on NaN input,
which raises ValueError from C++), right after the torch.compile tests; on the CPU machines
(torch 2.13, Python 3.11) the same sequence passes. This runs each suspect sequence in a fresh
process and prints one line per case, so that a session lent that machine can tell a tsvq bug
from an environment one:

    python benchmarks/check_cpp_errors.py        # exit 1 when any case crashed
"""
from __future__ import annotations

import subprocess
import sys

NAN_KERNEL = """
import torch, tsvq
from tsvq.ops import nearest_code
assert tsvq.has_ops(), "tsvq._C not built"
try:
    torch.ops.tsvq.nearest_code(torch.full((2, 4), float("nan")), torch.randn(3, 4))
except ValueError as e:
    print("ValueError:", str(e)[:60])
"""
TORCH_ERROR = """
import torch
try:
    torch.ones(2) @ torch.ones(3)
except RuntimeError as e:
    print("RuntimeError:", str(e)[:60])
"""
COMPILE_FIRST = """
import torch
from tsvq.nn import VectorQuantizer
vq = VectorQuantizer(4, 8)
torch.compile(vq, fullgraph=True)(torch.randn(16, 4))
"""
NUMBA_FIRST = """
import numba
numba.njit(lambda a: a + 1)(1)
"""
CASES = {
    "tsvq kernel error": NAN_KERNEL,
    "torch kernel error": TORCH_ERROR,
    "torch.compile, then tsvq kernel error": COMPILE_FIRST + NAN_KERNEL,
    "torch.compile, then torch kernel error": COMPILE_FIRST + TORCH_ERROR,
    "numba JIT, then tsvq kernel error": NUMBA_FIRST + NAN_KERNEL,
}


def main() -> int:
    crashed = 0
    for name, code in CASES.items():
        try:
            r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                               timeout=180)
            ok = r.returncode == 0 and ("Error:" in r.stdout)
            what = r.stdout.strip().splitlines()[-1] if ok else (
                f"exit {r.returncode}: " + (r.stderr.strip().splitlines() or ["(no output)"])[0][:100])
        except subprocess.TimeoutExpired:
            ok, what = False, "timed out"
        crashed += not ok
        print(f"{'ok     ' if ok else 'FAILED '} {name}: {what}", flush=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
