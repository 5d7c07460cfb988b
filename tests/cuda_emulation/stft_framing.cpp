// Driver: csrc/ops/stft/stft_framing.cuh (the GPU FFT path's framing and overlap-add) run through
// emu.h against a frame-by-frame evaluation in double with its own padding (not pad_source), in
// both index types, with grids smaller than the output so that the grid-stride loops run.
// Exit status 1 on any wrong output.
#include "emu.h"
#include "padding.h"
#include "../../csrc/ops/stft/stft_framing.cuh"

#include <cstdio>
#include <random>

using tsvq::framing::kThreads;

unsigned blocks_for(int64_t total, unsigned cap) {
  const int64_t need = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(need < cap ? need : cap);
}

// frames of x [R, L] padded by `pad` (mode) over T frames of N with hop, times scale and w.
template <typename T, typename Index>
int check_frame(int64_t R, int64_t L, int64_t N, int64_t hop, int64_t T_frames, int64_t pad, int mode, bool scaled,
                unsigned grid_cap, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t Qv = (T_frames - 1) * hop + N;
  std::vector<T> x(R * L), w(N), scale(Qv);
  for (auto& v : x) v = T(normal(gen));
  for (auto& v : w) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> out(R * T_frames * N, T(-7));
  launch(blocks_for(R * T_frames * N, grid_cap), kThreads, [&] {
    tsvq::framing::frame_kernel<T, Index>(x.data(), Index(R), Index(L), w.data(), Index(N),
                                          scaled ? scale.data() : nullptr, Index(hop), Index(T_frames), Index(pad),
                                          mode, out.data());
  });
  int bad = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> xr(x.begin() + r * L, x.begin() + (r + 1) * L);
    for (int64_t t = 0; t < T_frames; ++t)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t q = t * hop + n;
        const double want = double(w[n]) * padded(xr, q, pad, mode) * (scaled ? double(scale[q]) : 1.0);
        const double got = double(out[(r * T_frames + t) * N + n]);
        if (std::fabs(got - want) > (sizeof(T) == 4 ? 1e-6 : 1e-14) * (1 + std::fabs(want)) && bad++ < 5)
          std::printf("  r=%ld t=%ld n=%ld: got %g, want %g\n", long(r), long(t), long(n), got, want);
      }
  }
  std::printf("frame %s/%s R=%ld L=%ld N=%ld hop=%ld T=%ld pad=%ld mode=%d scaled=%d grid<=%u: %d wrong outputs\n",
              sizeof(T) == 4 ? "float" : "double", sizeof(Index) == 4 ? "u32" : "i64", long(R), long(L), long(N),
              long(hop), long(T_frames), long(pad), mode, scaled, grid_cap, bad);
  return bad;
}

// y [R, length]: overlap-add of frames [R, T, N] times w, samples start.. of it, times scale.
template <typename T, typename Index>
int check_overlap_add(int64_t R, int64_t T_frames, int64_t N, int64_t hop, int64_t start, int64_t length, bool scaled,
                      unsigned grid_cap, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t Q = (T_frames - 1) * hop + N;
  std::vector<T> frames(R * T_frames * N), w(N), scale(Q);
  for (auto& v : frames) v = T(normal(gen));
  for (auto& v : w) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> y(R * length, T(-7));
  launch(blocks_for(R * length, grid_cap), kThreads, [&] {
    tsvq::framing::overlap_add_kernel<T, Index>(frames.data(), Index(R), Index(T_frames), Index(N), w.data(),
                                                scaled ? scale.data() : nullptr, Index(hop), Index(start),
                                                Index(length), y.data());
  });
  int bad = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> full(Q, 0.0);
    for (int64_t t = 0; t < T_frames; ++t)
      for (int64_t n = 0; n < N; ++n) full[t * hop + n] += double(w[n]) * double(frames[(r * T_frames + t) * N + n]);
    for (int64_t p = 0; p < length; ++p) {
      const int64_t q = p + start;
      const double want = q < Q ? full[q] * (scaled ? double(scale[q]) : 1.0) : 0.0;
      const double got = double(y[r * length + p]);
      const double tol = (sizeof(T) == 4 ? 1e-5 : 1e-13) * (1 + std::fabs(want)) * (1 + N / hop);
      if (std::fabs(got - want) > tol && bad++ < 5)
        std::printf("  r=%ld p=%ld: got %g, want %g\n", long(r), long(p), got, want);
    }
  }
  std::printf("overlap_add %s/%s R=%ld T=%ld N=%ld hop=%ld start=%ld length=%ld scaled=%d grid<=%u: %d wrong outputs\n",
              sizeof(T) == 4 ? "float" : "double", sizeof(Index) == 4 ? "u32" : "i64", long(R), long(T_frames),
              long(N), long(hop), long(start), long(length), scaled, grid_cap, bad);
  return bad;
}

int main() {
  int bad = 0;
  // stft: centre padding n_fft / 2, T = 1 + (L + 2 pad - N) / hop
  bad += check_frame<float, uint32_t>(3, 150, 32, 8, 1 + (150 + 32 - 32) / 8, 16, 1, false, 1 << 20, 1);  // reflect
  bad += check_frame<double, int64_t>(2, 37, 64, 16, 1 + (37 + 64 - 64) / 16, 32, 0, false, 2, 2);  // constant, L < N
  bad += check_frame<float, int64_t>(2, 50, 33, 5, 1 + (50 + 32 - 33) / 5, 16, 2, false, 3, 3);     // replicate, odd N
  bad += check_frame<double, uint32_t>(2, 40, 65, 16, 1 + (40 + 64 - 65) / 16, 32, 3, false, 1, 4);  // circular, 1 block
  bad += check_frame<float, uint32_t>(4, 100, 17, 20, 1 + (100 - 17) / 20, 0, 1, false, 5, 5);       // no centre, hop > N
  // istft backward: constant padding by `start`, the envelope as scale, frames past the series
  bad += check_frame<double, int64_t>(3, 29, 32, 8, 7, 16, 0, true, 4, 6);
  bad += check_frame<float, uint32_t>(2, 10, 64, 64, 3, 5, 0, true, 1 << 20, 7);
  // istft: trimmed by start, envelope as scale; length short of, equal to and past the frames
  bad += check_overlap_add<float, uint32_t>(3, 19, 32, 8, 16, 144, true, 1 << 20, 8);
  bad += check_overlap_add<double, int64_t>(2, 19, 32, 8, 16, 100, true, 3, 9);
  bad += check_overlap_add<float, int64_t>(2, 5, 64, 16, 32, 200, true, 2, 10);   // zeros past Q
  bad += check_overlap_add<double, uint32_t>(2, 9, 33, 1, 16, 40, false, 1, 11);  // hop 1: 33 frames a sample
  bad += check_overlap_add<float, uint32_t>(2, 6, 16, 20, 0, 116, false, 3, 12);  // stft backward: hop > N, gaps
  bad += check_overlap_add<double, int64_t>(5, 1, 100, 25, 0, 100, false, 1, 13); // one frame per row
  return bad ? 1 : 0;
}
