// Schemas of the EMA codebook update (van den Oord et al. 2017, "Neural Discrete Representation
// Learning", appendix A.1, eqs. 6-8, with the Laplace smoothing of the cluster sizes used by
// Sonnet and vector-quantize-pytorch; notation in ema_codebook_update.h), in place on
// cluster_size (n), embed_sum (m) and codebook (e). Each device runs the code statistics (one
// pass over x, no one-hot matrix) and then the O(K D) update in its own kernels
// (ema_codebook_update_cpu.cpp, ema_codebook_update_cuda.cu): nothing synchronises with the host.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // Mutates cluster_size[K], embed_sum[K, D], codebook[K, D]; returns the batch's counts[K].
  m.def(
      "ema_codebook_update_(Tensor(a!) cluster_size, Tensor(b!) embed_sum, Tensor(c!) codebook, "
      "Tensor x, Tensor indices, float decay, float eps) -> Tensor");
  // The O(K D) part alone, from counts[K] and sums[K, D] (under torch.distributed: all-reduced
  // across ranks first); private, used by tsvq.nn.VectorQuantizer.
  m.def(
      "_ema_apply_(Tensor(a!) cluster_size, Tensor(b!) embed_sum, Tensor(c!) codebook, "
      "Tensor counts, Tensor sums, float decay, float eps) -> ()");
}
