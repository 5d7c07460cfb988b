// Schema of the nearest-codeword search.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // x: Tensor[N, D], codebook: Tensor[K, D] -> (indices: int64[N], dist: Tensor[N] squared L2).
  m.def("nearest_code(Tensor x, Tensor codebook) -> (Tensor indices, Tensor dist)");
  // The register-tiled CUDA candidate (nearest_code_tiled.cuh): same contract, float32, CUDA only;
  // not dispatched by nearest_code until a GPU run has timed it.
  m.def("_nearest_code_tiled(Tensor x, Tensor codebook) -> (Tensor indices, Tensor dist)");
}
