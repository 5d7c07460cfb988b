// Schemas of the nearest-codeword searches.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // x: Tensor[N, D], codebook: Tensor[K, D] -> (indices: int64[N], dist: Tensor[N] squared L2).
  m.def("nearest_code(Tensor x, Tensor codebook) -> (Tensor indices, Tensor dist)");
  // The k nearest codes of every row, nearest first (ties to the lower index):
  // (indices: int64[N, k], dist: Tensor[N, k] squared L2), 1 <= k <= K.
  m.def("nearest_code_topk(Tensor x, Tensor codebook, int k) -> (Tensor indices, Tensor dist)");
}
