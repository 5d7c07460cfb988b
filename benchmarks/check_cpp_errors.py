"""Does an error raised inside a C++ kernel reach Python as an exception, or crash the process?

The first GPU session (2026-11-30, H200, torch 2.11.0+cu130, Python 3.12) saw the test suite die
with a segmentation fault at the first CPU kernel error it provoked (nearest_code on NaN input,
which raises ValueError from C++), right after the torch.compile tests; on the CPU machines
(torch 2.13, Python 3.11) the same sequence passes. This runs each suspect sequence in a fresh
process and prints one line per case, so that a session lent that machine can tell a tsvq bug
from an environment one:

    python benchmarks/check_cpp_errors.py        # exit 1 when any case crashed

The cases separate the suspects: an error from a plain composite op (barlow_twins_loss's shape
check: no OpenMP region, no target_clones function on the stack) against one from the
nearest_code kernel (OpenMP, target_clones micro-kernel), that kernel with one OpenMP thread, and
torch's own errors. First it prints which C++ runtime libraries the process loaded next to
tsvq._C (libstdc++, libgcc_s, libgomp) and what _C links against, since the extension on that
machine is built by another GCC than torch was.
"""
from __future__ import annotations

import os
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
COMPOSITE_ERROR = """
import torch, tsvq
assert tsvq.has_ops(), "tsvq._C not built"
try:
    torch.ops.tsvq.barlow_twins_loss(torch.randn(4, 3), torch.randn(4, 2))
except ValueError as e:
    print("ValueError:", str(e)[:60])
"""
RUNTIME_LIBS = """
import os, re, subprocess, torch, tsvq, tsvq._C as C
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if re.search(r"lib(stdc\\+\\+|gcc_s|gomp|iomp)", l)})
print("loaded:", " ".join(libs))
ldd = subprocess.run(["ldd", C.__file__], capture_output=True, text=True).stdout
print("_C links:", " ".join(l.split()[0] + "=" + (l.split()[2] if "=>" in l else "") for l in ldd.splitlines()
                           if re.search(r"stdc|gcc_s|gomp", l)))
print("torch", torch.__version__, "built with", torch._C._show_config().split("GCC")[1].split()[0] if "GCC" in torch._C._show_config() else "?")
"""
# name -> (code, extra environment)
CASES = {
    "tsvq kernel error": (NAN_KERNEL, {}),
    "tsvq kernel error, OMP_NUM_THREADS=1": (NAN_KERNEL, {"OMP_NUM_THREADS": "1"}),
    "tsvq composite-op error (no OpenMP, no target_clones)": (COMPOSITE_ERROR, {}),
    "torch kernel error": (TORCH_ERROR, {}),
    "torch.compile, then tsvq kernel error": (COMPILE_FIRST + NAN_KERNEL, {}),
    "torch.compile, then torch kernel error": (COMPILE_FIRST + TORCH_ERROR, {}),
    "numba JIT, then tsvq kernel error": (NUMBA_FIRST + NAN_KERNEL, {}),
}


def main() -> int:
    r = subprocess.run([sys.executable, "-c", RUNTIME_LIBS], capture_output=True, text=True, timeout=120)
    print(r.stdout.strip() or f"runtime libraries: exit {r.returncode}: {r.stderr.strip()[-200:]}", flush=True)
    crashed = 0
    for name, (code, env) in CASES.items():
        try:
            r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                               timeout=180, env={**os.environ, **env})
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
