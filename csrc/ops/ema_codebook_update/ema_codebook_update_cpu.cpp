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

// t itself when contiguous, else a contiguous copy whose result write_back copies into t.
at::Tensor writable(const at::Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }
void write_back(at::Tensor& t, const at::Tensor& work) {
  if (!work.is_same(t)) t.copy_(work);
}

}  // namespace

void ema_apply_cpu(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                   const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  const int64_t K = codebook.size(0), D = codebook.size(1);
  const auto dt = codebook.scalar_type();
  const auto c = counts.to(dt).contiguous(), s = sums.to(dt).contiguous();
  auto n = writable(cluster_size), m = writable(embed_sum), e = writable(codebook);
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
  check_ema_state(cluster_size, embed_sum, codebook, decay, eps);
  check_rank(x, 2, "x", "Tensor[N, D]");
  TORCH_CHECK_VALUE(x.size(1) == codebook.size(1),
                    "x must be Tensor[N, D] with D == codebook.size(1) == ", codebook.size(1),
                    ", got shape ", x.sizes());
  check_same_device(codebook, "codebook state", x, "x");
  const int64_t K = codebook.size(0), D = codebook.size(1);
  check_code_stats_inputs(x, indices, K);
  // counts and sums in one buffer, as on CUDA (one fill there instead of two)
  auto stats = at::zeros({K * (D + 1)}, x.options().dtype(acc_dtype(x.scalar_type())));
  auto counts = stats.narrow(0, 0, K);
  auto sums = stats.narrow(0, K, K * D).view({K, D});
  code_stats_cpu_into(x, indices, K, counts, sums);
  ema_apply_cpu(cluster_size, embed_sum, codebook, counts, sums, decay, eps);
  return counts;
}

void ema_apply_cpu_op(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                      const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  check_ema_state(cluster_size, embed_sum, codebook, decay, eps);
  check_ema_stats(counts, sums, codebook);
  ema_apply_cpu(cluster_size, embed_sum, codebook, counts, sums, decay, eps);
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("ema_codebook_update_", &ema_codebook_update_cpu);
  m.impl("_ema_apply_", &ema_apply_cpu_op);
}

}  // namespace tsvq
