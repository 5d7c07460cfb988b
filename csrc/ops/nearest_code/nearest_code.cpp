// Schema of the nearest-codeword search.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // x: Tensor[N, D], codebook: Tensor[K, D] -> (indices: int64[N], dist: Tensor[N] squared L2).
  m.def("nearest_code(Tensor x, Tensor codebook) -> (Tensor indices, Tensor dist)");
}
