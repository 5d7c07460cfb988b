"""Builds ``tsvq._C``: CPU kernels always, CUDA kernels when torch has CUDA and nvcc is found.

Environment switches (read once, printed):
    TSVQ_FORCE_CUDA=1      build the CUDA kernels even when torch.cuda.is_available() is False
                           (e.g. on a build machine without a GPU); needs nvcc and a CUDA torch.
    TSVQ_FORCE_CPU=1       never build the CUDA kernels.
    TORCH_CUDA_ARCH_LIST   CUDA architectures, default "8.0;9.0".
    DEBUG=1                -O0 -g instead of -O3.
"""
import glob
import os
import shutil

from setuptools import setup

import torch
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _decide_cuda():
    if _flag("TSVQ_FORCE_CPU"):
        return False, "TSVQ_FORCE_CPU=1"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} has no CUDA"
    nvcc = shutil.which("nvcc") or (CUDA_HOME and os.path.join(CUDA_HOME, "bin", "nvcc"))
    if not nvcc or not os.path.exists(nvcc):
        return False, "nvcc not found (set CUDA_HOME)"
    if _flag("TSVQ_FORCE_CUDA"):
        return True, "TSVQ_FORCE_CUDA=1"
    if torch.cuda.is_available():
        return True, "torch has CUDA, a GPU is visible and nvcc was found"
    return False, "no GPU visible (set TSVQ_FORCE_CUDA=1 to build the CUDA kernels anyway)"


def _extension():
    with_cuda, why = _decide_cuda()
    debug = _flag("DEBUG")
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    cu = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + ["-std=c++17", "-fopenmp", "-DTSVQ_OPENMP=1"]
    link = ["-fopenmp"]
    print(f"[tsvq build] torch {torch.__version__}, CUDA kernels: {'yes' if with_cuda else 'no'} ({why})")
    print(f"[tsvq build] OpenMP: yes, DEBUG: {int(debug)}, "
          f"TORCH_CUDA_ARCH_LIST: {os.environ['TORCH_CUDA_ARCH_LIST'] if with_cuda else '-'}")
    macros = [("TSVQ_WITH_CUDA", "1" if with_cuda else "0")]
    if with_cuda:
        nvcc = opt + ["-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]
        return CUDAExtension("tsvq._C", cpp + cu, define_macros=macros,
                             extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=link)
    return CppExtension("tsvq._C", cpp, define_macros=macros,
                        extra_compile_args={"cxx": cxx}, extra_link_args=link)


class BuildExt(BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)):
    """Object files go to the clone's build/ folder (git-ignored) rather than pip's temporary one, so
    that a second install in the same clone (the README's test command after the main job)
    recompiles only the sources that changed: ninja tracks the sources, headers and flags."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "temp")


setup(ext_modules=[_extension()], cmdclass={"build_ext": BuildExt})
