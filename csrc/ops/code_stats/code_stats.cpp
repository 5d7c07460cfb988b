// Schema of the per-code statistics used by the EMA codebook update and k-means.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // x: Tensor[N, D], indices: int64[N] in [0, K) -> (counts: Tensor[K], sums: Tensor[K, D]),
  // counts[k] = #{n : indices[n] == k}, sums[k] = sum of those rows; float64 for float64 x,
  // float32 otherwise. One pass over x, no one-hot matrix.
  m.def("code_stats(Tensor x, Tensor indices, int K) -> (Tensor counts, Tensor sums)");
}
