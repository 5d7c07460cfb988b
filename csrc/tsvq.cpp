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

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "tsvq build information; the ops live in torch.ops.tsvq";
  m.def("has_cuda", &has_cuda, "whether the CUDA kernels were compiled");
  m.def("cuda_arch_list", &cuda_arch_list, "CUDA architectures compiled (e.g. '800,900')");
  m.def("cuda_version", &cuda_version, "CUDA toolkit version compiled against, -1 without CUDA");
  m.def("has_openmp", &has_openmp, "whether the CPU kernels use OpenMP");
  m.attr("torch_version") = TORCH_VERSION_MAJOR * 10000 + TORCH_VERSION_MINOR * 100 + TORCH_VERSION_PATCH;
}
