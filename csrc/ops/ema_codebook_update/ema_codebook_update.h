// Checks and device kernels shared by tsvq::ema_codebook_update_ and tsvq::_ema_apply_ (the
// O(K D) part alone, from statistics that may have been all-reduced across ranks). Notation:
//   n = cluster_size[K], m = embed_sum[K, D], e = codebook[K, D], c = counts[K], s = sums[K, D];
//   n_k <- decay n_k + (1 - decay) c_k,  m_k <- decay m_k + (1 - decay) s_k,
//   e_k <- m_k / ((n_k + eps) / (sum_j n_j + K eps) sum_j n_j)
// (van den Oord et al. 2017, appendix A.1, eqs. 6-8, with Laplace-smoothed cluster sizes).
#pragma once

#include "../../common/checks.h"
#include "../code_stats/code_stats.h"

namespace tsvq {

// The state (n, m, e) and the scalars: shapes, one float32/float64 dtype, decay, eps.
inline void check_ema_state(const at::Tensor& cluster_size, const at::Tensor& embed_sum,
                            const at::Tensor& codebook, double decay, double eps) {
  TORCH_CHECK_VALUE(codebook.dim() == 2 && codebook.size(0) >= 1,
                    "codebook must be Tensor[K, D] with K >= 1, got shape ", codebook.sizes());
  const int64_t K = codebook.size(0);
  TORCH_CHECK_VALUE(cluster_size.dim() == 1 && cluster_size.size(0) == K,
                    "cluster_size must be Tensor[K] with K == codebook.size(0) == ", K,
                    ", got shape ", cluster_size.sizes());
  TORCH_CHECK_VALUE(embed_sum.sizes() == codebook.sizes(),
                    "embed_sum must be Tensor[K, D] like codebook ", codebook.sizes(),
                    ", got shape ", embed_sum.sizes());
  for (const auto* t : {&cluster_size, &embed_sum, &codebook}) {
    TORCH_CHECK_TYPE(t->scalar_type() == at::kFloat || t->scalar_type() == at::kDouble,
                     "cluster_size, embed_sum and codebook must be float32 or float64, got ",
                     t->scalar_type());
    TORCH_CHECK_TYPE(t->scalar_type() == codebook.scalar_type(),
                     "cluster_size, embed_sum and codebook must share one dtype, got ",
                     cluster_size.scalar_type(), ", ", embed_sum.scalar_type(), ", ",
                     codebook.scalar_type());
  }
  check_same_device(cluster_size, "cluster_size", codebook, "codebook");
  check_same_device(embed_sum, "embed_sum", codebook, "codebook");
  TORCH_CHECK_VALUE(decay >= 0.0 && decay <= 1.0, "decay must be in [0, 1], got ", decay);
  TORCH_CHECK_VALUE(eps >= 0.0, "eps must be >= 0, got ", eps);
}

// counts[K] and sums[K, D] for the state of codebook: shapes, float dtype, device.
inline void check_ema_stats(const at::Tensor& counts, const at::Tensor& sums,
                            const at::Tensor& codebook) {
  const int64_t K = codebook.size(0);
  check_float(counts, "counts");
  check_float(sums, "sums");
  TORCH_CHECK_VALUE(counts.dim() == 1 && counts.size(0) == K,
                    "counts must be Tensor[K] with K == codebook.size(0) == ", K, ", got shape ",
                    counts.sizes());
  TORCH_CHECK_VALUE(sums.sizes() == codebook.sizes(), "sums must be Tensor[K, D] like codebook ",
                    codebook.sizes(), ", got shape ", sums.sizes());
  check_same_device(counts, "counts", codebook, "codebook");
  check_same_device(sums, "sums", codebook, "codebook");
}

// The result computed in work = t.contiguous() (t itself when contiguous) back into t.
inline void write_back(at::Tensor& t, const at::Tensor& work) {
  if (!work.is_same(t)) t.copy_(work);
}

// The O(K D) update in place from statistics of any float dtype (converted to the state's
// dtype first when they differ). ema_codebook_update_cpu.cpp / ema_codebook_update_cuda.cu.
void ema_apply_cpu(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                   const at::Tensor& counts, const at::Tensor& sums, double decay, double eps);
void ema_apply_cuda(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                    const at::Tensor& counts, const at::Tensor& sums, double decay, double eps);

// The two ops on one device, given its statistics-into-buffer and update functions.
template <typename StatsInto, typename Apply>
at::Tensor ema_codebook_update_impl(at::Tensor& cluster_size, at::Tensor& embed_sum,
                                    at::Tensor& codebook, const at::Tensor& x,
                                    const at::Tensor& indices, double decay, double eps,
                                    StatsInto stats_into, Apply apply) {
  check_ema_state(cluster_size, embed_sum, codebook, decay, eps);
  const int64_t K = codebook.size(0), D = codebook.size(1);
  check_code_stats_inputs(x, indices, K);  // x: Tensor[N, D'], float; indices: int64[N]
  TORCH_CHECK_VALUE(x.size(1) == D, "x must be Tensor[N, D] with D == codebook.size(1) == ", D,
                    ", got shape ", x.sizes());
  check_same_device(codebook, "codebook state", x, "x");
  // counts and sums in one buffer: one fill (one kernel on CUDA) instead of two
  auto stats = at::zeros({K * (D + 1)}, x.options().dtype(acc_dtype(x.scalar_type())));
  auto counts = stats.narrow(0, 0, K);
  auto sums = stats.narrow(0, K, K * D).view({K, D});
  stats_into(x, indices, K, counts, sums);
  apply(cluster_size, embed_sum, codebook, counts, sums, decay, eps);
  return counts;
}

template <typename Apply>
void ema_apply_impl(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                    const at::Tensor& counts, const at::Tensor& sums, double decay, double eps,
                    Apply apply) {
  check_ema_state(cluster_size, embed_sum, codebook, decay, eps);
  check_ema_stats(counts, sums, codebook);
  apply(cluster_size, embed_sum, codebook, counts, sums, decay, eps);
}

}  // namespace tsvq
