// Build information that only nvcc knows (compiled only in CUDA builds).
#include <cuda_runtime_api.h>

#include <string>

namespace tsvq {

std::string cuda_arch_list() {
#ifdef __CUDA_ARCH_LIST__
#define TSVQ_STR2(...) #__VA_ARGS__
#define TSVQ_STR(...) TSVQ_STR2(__VA_ARGS__)
  return TSVQ_STR(__CUDA_ARCH_LIST__);
#else
  return "unknown";
#endif
}

int cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace tsvq
