// CPU passes of the Barlow Twins loss around its GEMMs (BarlowTwinsPasses in barlow_twins_loss.h)
// and the private ops' CPU registration. The algorithm of the CUDA kernels (barlow_twins_kernels.cuh)
// on strips of up to kMaxStrip columns, strips spread over threads by at::parallel_for; inside a
// strip the rows are walked in order and each row's run of columns is a unit-stride (vectorised)
// loop when the inputs are contiguous. Sums over rows are in row order and the per-dimension loss
// terms are added in column order after the parallel part, so results do not depend on the thread
// count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "barlow_twins_loss.h"

namespace tsvq {
namespace {

constexpr int64_t kMaxStrip = 256;

// Columns per strip: at most kMaxStrip (the per-column accumulators stay on the stack and each
// row's run is long enough to stream), at least 16, and small enough that every thread gets
// about four strips when D allows.
int64_t strip_width(int64_t D) {
  const int64_t want = (D + 4 * at::get_num_threads() - 1) / (4 * at::get_num_threads());
  return std::min(kMaxStrip, std::max<int64_t>(16, (want + 15) / 16 * 16));
}

// unit: both column strides are 1 (known at compile time, so the column loops vectorise).
template <typename in_t, typename acc_t, bool unit>
void standardize_rows(const in_t* z1, const in_t* z2, int64_t N, int64_t D, int64_t s1n, int64_t s1d_in,
                      int64_t s2n, int64_t s2d_in, acc_t eps, acc_t* a, acc_t* invstd, acc_t* r) {
  const int64_t s1d = unit ? 1 : s1d_in, s2d = unit ? 1 : s2d_in;
  const int64_t width = strip_width(D), strips = (D + width - 1) / width;
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(N);
  at::parallel_for(0, strips, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * width, w = std::min(width, D - j0);
      acc_t m1[kMaxStrip] = {}, m2[kMaxStrip] = {}, q1[kMaxStrip] = {}, q2[kMaxStrip] = {}, dot[kMaxStrip] = {};
      for (int64_t n = 0; n < N; ++n) {
        const in_t* x1 = z1 + n * s1n + j0 * s1d;
        const in_t* x2 = z2 + n * s2n + j0 * s2d;
        for (int64_t c = 0; c < w; ++c) {
          m1[c] += static_cast<acc_t>(x1[c * s1d]);
          m2[c] += static_cast<acc_t>(x2[c * s2d]);
        }
      }
      for (int64_t c = 0; c < w; ++c) {
        m1[c] *= inv_n;
        m2[c] *= inv_n;
      }
      for (int64_t n = 0; n < N; ++n) {
        const in_t* x1 = z1 + n * s1n + j0 * s1d;
        const in_t* x2 = z2 + n * s2n + j0 * s2d;
        for (int64_t c = 0; c < w; ++c) {
          const acc_t d1 = static_cast<acc_t>(x1[c * s1d]) - m1[c], d2 = static_cast<acc_t>(x2[c * s2d]) - m2[c];
          q1[c] += d1 * d1;
          q2[c] += d2 * d2;
        }
      }
      for (int64_t c = 0; c < w; ++c) {
        q1[c] = acc_t(1) / std::sqrt(q1[c] * inv_n + eps);
        q2[c] = acc_t(1) / std::sqrt(q2[c] * inv_n + eps);
      }
      for (int64_t n = 0; n < N; ++n) {
        const in_t* x1 = z1 + n * s1n + j0 * s1d;
        const in_t* x2 = z2 + n * s2n + j0 * s2d;
        acc_t* a1 = a + n * 2 * D + j0;
        acc_t* a2 = a1 + D;
        for (int64_t c = 0; c < w; ++c) {
          a1[c] = (static_cast<acc_t>(x1[c * s1d]) - m1[c]) * q1[c];
          a2[c] = (static_cast<acc_t>(x2[c * s2d]) - m2[c]) * q2[c];
          dot[c] += a1[c] * a2[c];
        }
      }
      for (int64_t c = 0; c < w; ++c) {
        invstd[j0 + c] = q1[c];
        invstd[D + j0 + c] = q2[c];
        r[j0 + c] = dot[c];
      }
    }
  });
}

template <typename acc_t, typename out_t>
void standardize_backward_rows(acc_t g0, const acc_t* a, const acc_t* invstd, const acc_t* r, const acc_t* p,
                               int64_t N, int64_t D, acc_t k, acc_t w1, acc_t w0, out_t* dz) {
  const int64_t width = strip_width(D), strips = (D + width - 1) / width;
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(N);
  at::parallel_for(0, strips, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * width, w = std::min(width, D - j0);
      acc_t wj[kMaxStrip];
      for (int64_t c = 0; c < w; ++c) wj[c] = w1 * r[j0 + c] + w0;
      for (int64_t v = 0; v < 2; ++v) {
        const int64_t self = v * D + j0, other = (1 - v) * D + j0;
        const acc_t* pv = p + v * N * D + j0;
        acc_t sg[kMaxStrip] = {}, sga[kMaxStrip] = {};
        for (int64_t n = 0; n < N; ++n) {
          const acc_t *as = a + n * 2 * D + self, *ao = a + n * 2 * D + other, *pn = pv + n * D;
          for (int64_t c = 0; c < w; ++c) {
            const acc_t g = g0 * (k * pn[c] + ao[c] * wj[c]);
            sg[c] += g;
            sga[c] += g * as[c];
          }
        }
        for (int64_t c = 0; c < w; ++c) {
          sg[c] *= inv_n;
          sga[c] *= inv_n;
        }
        const acc_t* is = invstd + self;
        for (int64_t n = 0; n < N; ++n) {
          const acc_t *as = a + n * 2 * D + self, *ao = a + n * 2 * D + other, *pn = pv + n * D;
          out_t* o = dz + v * N * D + n * D + j0;
          for (int64_t c = 0; c < w; ++c) {
            const acc_t g = g0 * (k * pn[c] + ao[c] * wj[c]);
            o[c] = static_cast<out_t>(is[c] * (g - sg[c] - as[c] * sga[c]));
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> standardize_cpu(const at::Tensor& z1,
                                                                              const at::Tensor& z2, double eps,
                                                                              double c0, double c1, double c2) {
  const int64_t N = z1.size(0), D = z1.size(1);
  const auto opts = z1.options().dtype(acc_dtype(z1.scalar_type()));
  auto a = at::empty({N, 2 * D}, opts), invstd = at::empty({2 * D}, opts), r = at::empty({D}, opts);
  auto partial = at::empty({1}, opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z1.scalar_type(), "bt_standardize_cpu", [&] {
    using acc_t = typename acc<scalar_t>::type;
    auto run = [&](auto unit) {
      standardize_rows<scalar_t, acc_t, decltype(unit)::value>(
          z1.data_ptr<scalar_t>(), z2.data_ptr<scalar_t>(), N, D, z1.stride(0), z1.stride(1), z2.stride(0),
          z2.stride(1), static_cast<acc_t>(eps), a.data_ptr<acc_t>(), invstd.data_ptr<acc_t>(), r.data_ptr<acc_t>());
    };
    if (z1.stride(1) == 1 && z2.stride(1) == 1)
      run(std::true_type{});
    else
      run(std::false_type{});
    const acc_t* rj = r.data_ptr<acc_t>();
    acc_t s = 0;  // column order, after the parallel part
    for (int64_t j = 0; j < D; ++j)
      s += static_cast<acc_t>(c0) + static_cast<acc_t>(c1) * rj[j] + static_cast<acc_t>(c2) * rj[j] * rj[j];
    partial.data_ptr<acc_t>()[0] = s;
  });
  return {a, invstd, r, partial};
}

at::Tensor finish_cpu(const at::Tensor& partial, const at::Tensor& frob, double coef, at::ScalarType dtype) {
  auto loss = at::empty({}, partial.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(partial.scalar_type(), "bt_finish_cpu", [&] {
    const scalar_t* p = partial.data_ptr<scalar_t>();
    scalar_t s = 0;
    for (int64_t i = 0; i < partial.numel(); ++i) s += p[i];
    s += static_cast<scalar_t>(coef) * frob.data_ptr<scalar_t>()[0];
    loss.fill_(static_cast<double>(s));
  });
  return loss;
}

at::Tensor standardize_backward_cpu(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                       const at::Tensor& r, const at::Tensor& p, double k, double w1, double w0,
                                       at::ScalarType dtype) {
  const int64_t N = a.size(0), D = a.size(1) / 2;
  auto dz = at::empty({2, N, D}, a.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "bt_standardize_backward_cpu", [&] {
    using acc_t = scalar_t;
    const acc_t g0 = grad.data_ptr<acc_t>()[0];
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bt_standardize_backward_cpu", [&] {
      standardize_backward_rows<acc_t, scalar_t>(g0, a.data_ptr<acc_t>(), invstd.data_ptr<acc_t>(),
                                                 r.data_ptr<acc_t>(), p.data_ptr<acc_t>(), N, D,
                                                 static_cast<acc_t>(k), static_cast<acc_t>(w1),
                                                 static_cast<acc_t>(w0), dz.data_ptr<scalar_t>());
    });
  });
  return dz;
}

const BarlowTwinsPasses kCpuPasses{&standardize_cpu, &finish_cpu, &standardize_backward_cpu};

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("_barlow_twins_loss_forward", &barlow_twins_loss_forward_on<kCpuPasses>);
  m.impl("_barlow_twins_loss_backward", &barlow_twins_loss_backward_on<kCpuPasses>);
}

}  // namespace tsvq
