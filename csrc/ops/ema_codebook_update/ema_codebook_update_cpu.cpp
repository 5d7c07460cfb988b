// CPU EMA codebook update: the code statistics (code_stats_cpu), then one pass over the state.
// The total sum_j n_j is accumulated in double in code order, so the result does not depend on
// the thread count.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../code_stats/code_stats.h"
#include "ema_codebook_update.h"

namespace tsvq {
namespace {

template <typename T>
void ema_apply_kernel(T* n, T* m, T* e, const T* c, const T* s, int64_t K, int64_t D, T decay,
                      T keep_new, T eps) {
  double acc = 0;
  for (int64_t k = 0; k < K; ++k) {
    n[k] = decay * n[k] + keep_new * c[k];
    acc += static_cast<double>(n[k]);
  }
  const T total = static_cast<T>(acc);
  const T denom = total + static_cast<T>(K) * eps;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(D, 1));
  at::parallel_for(0, K, grain, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const T smoothed = (n[k] + eps) / denom * total;
      T* mk = m + k * D;
      T* ek = e + k * D;
      const T* sk = s + k * D;
      for (int64_t d = 0; d < D; ++d) {
        const T v = decay * mk[d] + keep_new * sk[d];
        mk[d] = v;
        ek[d] = v / smoothed;
      }
    }
  });
}


}  // namespace

void ema_apply_cpu(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                   const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  const int64_t K = codebook.size(0), D = codebook.size(1);
  const auto dt = codebook.scalar_type();
  const auto c = counts.to(dt).contiguous(), s = sums.to(dt).contiguous();
  auto n = cluster_size.contiguous(), m = embed_sum.contiguous(), e = codebook.contiguous();
  AT_DISPATCH_FLOATING_TYPES(dt, "ema_apply_cpu", [&] {
    ema_apply_kernel<scalar_t>(n.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(),
                               e.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(),
                               s.data_ptr<scalar_t>(), K, D, static_cast<scalar_t>(decay),
                               static_cast<scalar_t>(1.0 - decay), static_cast<scalar_t>(eps));
  });
  write_back(cluster_size, n);
  write_back(embed_sum, m);
  write_back(codebook, e);
}

namespace {

at::Tensor ema_codebook_update_cpu(at::Tensor& cluster_size, at::Tensor& embed_sum,
                                   at::Tensor& codebook, const at::Tensor& x,
                                   const at::Tensor& indices, double decay, double eps) {
  return ema_codebook_update_impl(cluster_size, embed_sum, codebook, x, indices, decay, eps,
                                  code_stats_cpu_into, ema_apply_cpu);
}

void ema_apply_cpu_op(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                      const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  ema_apply_impl(cluster_size, embed_sum, codebook, counts, sums, decay, eps, ema_apply_cpu);
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("ema_codebook_update_", &ema_codebook_update_cpu);
  m.impl("_ema_apply_", &ema_apply_cpu_op);
}

}  // namespace tsvq
