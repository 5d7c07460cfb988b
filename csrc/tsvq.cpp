// The _C module: build information only. Every tensor op is registered with TORCH_LIBRARY in
// csrc/ops/<op>/ and reached as torch.ops.tsvq.<op>.
#include <torch/extension.h>
#include <torch/version.h>

#include <string>

#if TSVQ_WITH_CUDA
namespace tsvq {
std::string cuda_arch_list();  // csrc/common/build_info.cu
int cuda_runtime_version();
}  // namespace tsvq
#endif

namespace {

bool has_cuda() { return TSVQ_WITH_CUDA != 0; }

std::string cuda_arch_list() {
#if TSVQ_WITH_CUDA
  return tsvq::cuda_arch_list();
#else
  return "";
#endif
}

int cuda_version() {
#if TSVQ_WITH_CUDA
  return tsvq::cuda_runtime_version();
#else
  return -1;
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Which clone of the CPU kernels compiled with target_clones (x86-64-v4 / v3 / default, GCC on
// x86-64) this CPU runs; the fused STFT loops have no v4 clone and run their v3 one there.
std::string cpu_kernels() {
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "x86-64-v4 (AVX-512; the fused STFT loops: AVX2)";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return "x86-64-v3 (AVX2, FMA)";
  return "x86-64 baseline (SSE2)";
#else
  return "compiler default (no runtime CPU dispatch in this build)";
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "tsvq build information; the ops live in torch.ops.tsvq";
  m.def("has_cuda", &has_cuda, "whether the CUDA kernels were compiled");
  m.def("cuda_arch_list", &cuda_arch_list, "CUDA architectures compiled (e.g. '800,900')");
  m.def("cuda_version", &cuda_version, "CUDA toolkit version compiled against, -1 without CUDA");
  m.def("has_openmp", &has_openmp, "whether the CPU kernels use OpenMP");
  m.def("cpu_kernels", &cpu_kernels, "which CPU kernel clones this CPU runs");
  m.attr("torch_version") = TORCH_VERSION_MAJOR * 10000 + TORCH_VERSION_MINOR * 100 + TORCH_VERSION_PATCH;
}
