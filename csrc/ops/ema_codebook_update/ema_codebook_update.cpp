// EMA codebook update (van den Oord et al. 2017, "Neural Discrete Representation Learning",
// appendix A.1, eqs. 6-8, with the Laplace smoothing of the cluster sizes used by Sonnet and
// vector-quantize-pytorch):
//   n_k      <- decay * n_k + (1 - decay) * #{i : indices_i = k}
//   m_k      <- decay * m_k + (1 - decay) * sum_{i : indices_i = k} x_i
//   n~_k      = (n_k + eps) / (sum_j n_j + K eps) * sum_j n_j
//   e_k      <- m_k / n~_k
// in place on cluster_size (n), embed_sum (m) and codebook (e). The statistics come from the
// device's code_stats kernel (one pass over x, no one-hot matrix); the O(K D) update is a few
// ATen element-wise ops on the same device, so nothing synchronises with the host.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../code_stats/code_stats.h"

namespace tsvq {
namespace {

at::Tensor ema_codebook_update_(at::Tensor& cluster_size, at::Tensor& embed_sum,
                                at::Tensor& codebook, const at::Tensor& x,
                                const at::Tensor& indices, double decay, double eps) {
  TORCH_CHECK_VALUE(codebook.dim() == 2 && codebook.size(0) >= 1,
                    "codebook must be Tensor[K, D] with K >= 1, got shape ", codebook.sizes());
  const int64_t K = codebook.size(0), D = codebook.size(1);
  TORCH_CHECK_VALUE(cluster_size.dim() == 1 && cluster_size.size(0) == K,
                    "cluster_size must be Tensor[K] with K == codebook.size(0) == ", K,
                    ", got shape ", cluster_size.sizes());
  TORCH_CHECK_VALUE(embed_sum.sizes() == codebook.sizes(),
                    "embed_sum must be Tensor[K, D] like codebook ", codebook.sizes(),
                    ", got shape ", embed_sum.sizes());
  check_rank(x, 2, "x", "Tensor[N, D]");
  TORCH_CHECK_VALUE(x.size(1) == D, "x must be Tensor[N, D] with D == codebook.size(1) == ", D,
                    ", got shape ", x.sizes());
  for (const auto* t : {&cluster_size, &embed_sum, &codebook}) {
    TORCH_CHECK_TYPE(t->scalar_type() == at::kFloat || t->scalar_type() == at::kDouble,
                     "cluster_size, embed_sum and codebook must be float32 or float64, got ",
                     t->scalar_type());
    TORCH_CHECK_TYPE(t->scalar_type() == codebook.scalar_type(),
                     "cluster_size, embed_sum and codebook must share one dtype, got ",
                     cluster_size.scalar_type(), ", ", embed_sum.scalar_type(), ", ",
                     codebook.scalar_type());
    check_same_device(*t, "codebook state", x, "x");
  }
  TORCH_CHECK_VALUE(decay >= 0.0 && decay <= 1.0, "decay must be in [0, 1], got ", decay);
  TORCH_CHECK_VALUE(eps >= 0.0, "eps must be >= 0, got ", eps);

  static auto stats_op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("tsvq::code_stats", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&,
                                                                       const at::Tensor&, int64_t)>();
  auto [counts, sums] = stats_op.call(x, indices, K);
  const auto dt = codebook.scalar_type();
  cluster_size.mul_(decay).add_(counts.to(dt), 1.0 - decay);
  embed_sum.mul_(decay).add_(sums.to(dt), 1.0 - decay);
  auto total = cluster_size.sum();
  auto smoothed = (cluster_size + eps) / (total + static_cast<double>(K) * eps) * total;
  codebook.copy_(embed_sum / smoothed.unsqueeze(1));
  return counts;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // Mutates cluster_size[K], embed_sum[K, D], codebook[K, D]; returns the batch's counts[K].
  m.def(
      "ema_codebook_update_(Tensor(a!) cluster_size, Tensor(b!) embed_sum, Tensor(c!) codebook, "
      "Tensor x, Tensor indices, float decay, float eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(tsvq, CompositeExplicitAutograd, m) {
  m.impl("ema_codebook_update_", &ema_codebook_update_);
}

}  // namespace tsvq
