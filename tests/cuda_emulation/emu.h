// A CPU stand-in for the few CUDA constructs a tsvq kernel header uses, so that CI (no GPU)
// runs the kernel's index arithmetic, boundary handling and reductions for real:
// tests/ops/test_cuda_emulated.py compiles a driver including the kernel header with the host
// C++ compiler. One block at a time, one std::thread per CUDA thread; __syncthreads is a
// barrier of the block, __shared__ a function-local static (shared by the block's threads),
// atomicAdd an atomic_ref fetch_add, __shfl_xor_sync / __shfl_sync an exchange through a block-wide buffer
// between two barriers (correct when every thread of the block calls it in the same order, as
// warp-synchronous code does).
// Not emulated: memory-model subtleties, warp divergence, performance. Needs C++20 (<barrier>).
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* g_block_barrier = nullptr;
inline uint64_t g_shuffle_slots[1024];

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
using std::fma;
using std::sqrt;
using std::isfinite;
inline float fmaf(float a, float b, float c) { return std::fma(a, b, c); }
inline void __syncthreads() { g_block_barrier->arrive_and_wait(); }
template <class T>
T atomicAdd(T* address, T v) {  // float / double: C++20 atomic_ref
  return std::atomic_ref<T>(*address).fetch_add(v);
}

// v of the thread at lane src_of(lane within its width-sized segment) of the caller's warp segment.
template <class T, class SrcLane>
T shuffle_from(T v, int width, SrcLane src_of) {
  static_assert(sizeof(T) <= sizeof(uint64_t));
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  const unsigned t = threadIdx.x, lane = t % 32, warp0 = t - lane;
  g_shuffle_slots[t] = bits;
  g_block_barrier->arrive_and_wait();
  bits = g_shuffle_slots[warp0 + (lane / width) * width + src_of(lane % width) % width];
  g_block_barrier->arrive_and_wait();
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int width = 32) {
  return shuffle_from(v, width, [&](unsigned l) { return l ^ static_cast<unsigned>(lane_mask); });
}

template <class T>
T __shfl_sync(unsigned /*mask*/, T v, int src_lane, int width = 32) {
  return shuffle_from(v, width, [&](unsigned) { return static_cast<unsigned>(src_lane); });
}

// sincospi(f): sin and cos of pi * a, evaluated in long double (the device versions are ~1 ulp).
inline void sincospif(float a, float* s, float* c) {
  const long double x = 3.141592653589793238462643383279502884L * a;
  *s = static_cast<float>(std::sin(x));
  *c = static_cast<float>(std::cos(x));
}
inline void sincospi(double a, double* s, double* c) {
  const long double x = 3.141592653589793238462643383279502884L * a;
  *s = static_cast<double>(std::sin(x));
  *c = static_cast<double>(std::cos(x));
}

// kernel<<<grid, block>>>(...) as launch(grid, block, [&] { kernel(...); }).
template <class F>
void launch(unsigned grid, unsigned block, F kernel) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned b = 0; b < grid; ++b) {
    std::barrier<> barrier(block);
    g_block_barrier = &barrier;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([=] {
        blockIdx.x = b;
        threadIdx.x = t;
        kernel();
      });
    for (auto& th : threads) th.join();
  }
}
