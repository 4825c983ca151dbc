// Normalization kernels: rms_norm, add_rms_norm (fused residual add) and layer_norm.
//
// The math, per row of n elements (f32 arithmetic, one rounding per output):
//   rms_norm:      y = x * rsqrt(sum(x^2) / n + eps) * w
//   add_rms_norm:  s = round(x + r); r = s; y = rms_norm(s)      (s is what the next layer adds)
//   layer_norm:    m = sum(x) / n; y = (x - m) * rsqrt(sum((x - m)^2) / n + eps) * w + b
//
// The trick: these ops are memory-bound, so the goal is to touch each byte once and to keep
// enough loads in flight. A group of threads_per_row threads (whole warps) owns a row; each
// thread holds CHUNKS packs of VEC elements (16 bytes each when the layout is aligned), converts
// each element to f32 where used, reduces across the warp with shuffles and across the group's
// warps through shared memory, then normalizes from registers and stores. x (and residual) is
// read once and y (and residual) written once; layer_norm's mean and variance come from one
// reduction of per-thread moments. Two kernels share that per-row work (normalize_row):
//  - norm_rows_kernel, for rows that fit in registers. It loads the parameters together with
//    the row (EARLY), so a row pays one memory round trip, wherever the registers they hold still
//    leave enough blocks resident per SM; elsewhere it loads them after the reduction
//    (norm_launch.cuh's load_parameters_early says where);
//  - norm_long_rows_kernel, for rows too long to hold: it reads x again, mostly from L2.
//
// Elements move in 16-byte packs and widen to f32 as core/pack.cuh describes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "core/pack.cuh"
#include "norm.hpp"

namespace llmk {
namespace norm_kernels {

// What a row reduces: a plain sum (rms_norm) or the moments of its values (layer_norm).
// Moments hold count, mean and M2 (the sum of squared deviations from the mean) and combine by
// Chan et al.'s pairwise formula, which is stable where E[x^2] - mean^2 cancels catastrophically.
struct Moments {
  float count, mean, m2;
};

__device__ __forceinline__ float combine(float a, float b) { return a + b; }

__device__ __forceinline__ Moments combine(const Moments& a, const Moments& b) {
  const float count = a.count + b.count;
  if (count == 0.0f) return a;
  // Counts are small integers: the fast division's 2 ulp move the mean by ~1e-7 of delta.
  const float delta = b.mean - a.mean, b_share = __fdividef(b.count, count);
  return {count, a.mean + delta * b_share, a.m2 + b.m2 + delta * delta * a.count * b_share};
}

__device__ __forceinline__ float shuffle_xor(float v, int offset) {
  return __shfl_xor_sync(0xffffffffu, v, offset);
}

__device__ __forceinline__ Moments shuffle_xor(const Moments& m, int offset) {
  return {shuffle_xor(m.count, offset), shuffle_xor(m.mean, offset), shuffle_xor(m.m2, offset)};
}

template <class S>
__device__ __forceinline__ S warp_reduce(S s) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const S other = shuffle_xor(s, offset);
    // The lower lane's value first, so both partners compute the very same bits.
    s = (lane & offset) ? combine(other, s) : combine(s, other);
  }
  return s;
}

// Reduces s over the threads_per_row threads that share this thread's row; every one of them
// gets the same result. Every thread of the block must call it (it has a barrier). Two
// reductions in one block use different buffers (0 and 1), so neither needs a second barrier to
// protect its scratch from the other.
template <class S>
__device__ __forceinline__ S row_reduce(S s, int threads_per_row, int buffer) {
  __shared__ S warp_partials[2][32];
  s = warp_reduce(s);
  if (threads_per_row == 32) return s;
  const int warp = threadIdx.x / 32, warps_per_row = threads_per_row / 32;
  if (threadIdx.x % 32 == 0) warp_partials[buffer][warp] = s;
  __syncthreads();
  const int first = warp / warps_per_row * warps_per_row;
  S total = warp_partials[buffer][first];
  for (int w = 1; w < warps_per_row; ++w) total = combine(total, warp_partials[buffer][first + w]);
  return total;
}

// Threads per row never exceed this, so every kernel may use up to 128 registers per thread.
constexpr int kMaxBlockThreads = 512;

// The block's place in a grid of any number of blocks: x runs first, y counts whole rows of x.
__device__ __forceinline__ int64_t block_index() {
  return blockIdx.x + int64_t{blockIdx.y} * gridDim.x;
}

// Where this thread's part of a row lives: packs lane, lane + threads_per_row, ... of the row.
template <int CHUNKS>
struct RowPart {
  bool valid[CHUNKS];  // the pack exists (the row exists and the pack is inside it)
  int valid_packs;
  int lane, threads_per_row;

  __device__ __forceinline__ RowPart(bool row_valid, int64_t packs, int lane_, int threads)
      : valid_packs(0), lane(lane_), threads_per_row(threads) {
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      valid[c] = row_valid && lane + c * threads_per_row < packs;
      valid_packs += valid[c];
    }
  }
  __device__ __forceinline__ int pack(int c) const { return lane + c * threads_per_row; }
};

// The work on one row once this thread holds its packs v (and residual packs r): the residual
// add, the row's statistics (one reduction), the normalized output. params(c, w, b) fills the
// weight (and bias) packs of chunk c, when the output needs them.
template <NormKind K, class T, int VEC, int CHUNKS, class Params>
__device__ __forceinline__ void normalize_row(const NormParams& p, const RowPart<CHUNKS>& part,
                                              Pack<T, VEC> (&v)[CHUNKS],
                                              const Pack<T, VEC> (&r)[CHUNKS],
                                              Pack<T, VEC>* residual, Pack<T, VEC>* y,
                                              Params&& params) {
  using P = Pack<T, VEC>;
  if constexpr (K == NormKind::add_rms) {
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float sum[VEC], addend[VEC];
      unpack(v[c], sum);
      unpack(r[c], addend);
#pragma unroll
      for (int i = 0; i < VEC; ++i) sum[i] += addend[i];
      v[c] = pack<T>(sum);  // the rounded sum is both the new residual and what is normed
      residual[part.pack(c)] = v[c];
    }
  }

  const float inv_n = 1.0f / static_cast<float>(p.hidden);
  float mean = 0.0f, scale;
  if constexpr (K == NormKind::layer) {
    Moments m{static_cast<float>(part.valid_packs * VEC), 0.0f, 0.0f};
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
#pragma unroll
      for (int i = 0; i < VEC; ++i) m.mean += f[i];
    }
    if (part.valid_packs > 0) m.mean = __fdividef(m.mean, m.count);
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
#pragma unroll
      for (int i = 0; i < VEC; ++i) m.m2 += (f[i] - m.mean) * (f[i] - m.mean);
    }
    m = row_reduce(m, part.threads_per_row, 0);
    mean = m.mean;
    scale = rsqrtf(m.m2 * inv_n + p.eps);
  } else {
    float sum_squares = 0.0f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
#pragma unroll
      for (int i = 0; i < VEC; ++i) sum_squares += f[i] * f[i];
    }
    scale = rsqrtf(row_reduce(sum_squares, part.threads_per_row, 0) * inv_n + p.eps);
  }

  const bool has_bias = K == NormKind::layer && p.bias != nullptr;
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    if (!part.valid[c]) continue;
    P w, b;
    params(c, w, b);
    float f[VEC], wf[VEC];
    unpack(v[c], f);
    unpack(w, wf);
#pragma unroll
    for (int i = 0; i < VEC; ++i) f[i] = (f[i] - mean) * scale * wf[i];
    if (has_bias) {
      float bf[VEC];
      unpack(b, bf);
#pragma unroll
      for (int i = 0; i < VEC; ++i) f[i] += bf[i];
    }
    y[part.pack(c)] = pack<T>(f);
  }
}

// The first pack of `row` in the tensor at `base`; P is const when base is.
template <class P, int VEC, class Base>
__device__ __forceinline__ P* row_start(Base* base, const NormParams& p, const RowStrides& strides,
                                        int64_t row) {
  return static_cast<P*>(base) + row_offset(p.rows, strides, row) / VEC;
}

// One row per group of threads_per_row threads, all of its loads issued before the first use.
// EARLY: load the weight (and bias) packs with the row rather than after the reduction.
template <NormKind K, class T, int VEC, int CHUNKS, bool EARLY>
__global__ void __launch_bounds__(kMaxBlockThreads)
    norm_rows_kernel(const NormParams p, const int threads_per_row) {
  using P = Pack<T, VEC>;
  const int rows_per_block = blockDim.x / threads_per_row;
  const int slot = threadIdx.x / threads_per_row;
  const int64_t packs = p.hidden / VEC;
  const P* weight = static_cast<const P*>(p.weight);
  const P* bias = static_cast<const P*>(p.bias);
  const bool has_bias = K == NormKind::layer && p.bias != nullptr;

  const int64_t row = block_index() * rows_per_block + slot;
  // A block past the last row group leaves as a whole, before row_reduce's barrier.
  if (row - slot >= p.rows.count) return;
  const bool row_valid = row < p.rows.count;
  const RowPart<CHUNKS> part(row_valid, packs, threadIdx.x % threads_per_row, threads_per_row);
  const int64_t any_row = row_valid ? row : 0;
  const P* x = row_start<const P, VEC>(p.x, p, p.x_strides, any_row);
  P* residual = K == NormKind::add_rms
                    ? row_start<P, VEC>(p.residual, p, p.residual_strides, any_row)
                    : nullptr;
  P* y = row_start<P, VEC>(p.y, p, p.y_strides, any_row);

  P v[CHUNKS], r[CHUNKS], w[CHUNKS], b[CHUNKS];
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    if (!part.valid[c]) continue;
    const int j = part.pack(c);
    v[c] = x[j];
    if constexpr (K == NormKind::add_rms) r[c] = residual[j];
    if constexpr (EARLY) {
      w[c] = weight[j];
      if (has_bias) b[c] = bias[j];
    }
  }
  normalize_row<K, T, VEC, CHUNKS>(p, part, v, r, residual, y, [&](int c, P& wc, P& bc) {
    if constexpr (EARLY) {
      wc = w[c];
      bc = b[c];
    } else {
      wc = weight[part.pack(c)];
      if (has_bias) bc = bias[part.pack(c)];
    }
  });
}

// One block per row, any length: reads the row once to reduce (twice for layer_norm, whose mean
// comes first, in the other reduction buffer) and once more to write. Each thread touches the same
// elements in every pass, so add_rms_norm's second pass reads back the sums this very thread
// stored.
template <NormKind K, class T>
__global__ void __launch_bounds__(kMaxBlockThreads) norm_long_rows_kernel(const NormParams p) {
  const float inv_n = 1.0f / static_cast<float>(p.hidden);
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  const int64_t row = block_index();
  if (row >= p.rows.count) return;
  const T* x = static_cast<const T*>(p.x) + row_offset(p.rows, p.x_strides, row);
  T* y = static_cast<T*>(p.y) + row_offset(p.rows, p.y_strides, row);
  const T* source = x;  // what the final pass normalizes
  if constexpr (K == NormKind::add_rms) {
    T* residual = static_cast<T*>(p.residual) + row_offset(p.rows, p.residual_strides, row);
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
      residual[i] = from_float<T>(to_float(x[i]) + to_float(residual[i]));
    }
    source = residual;
  }
  float mean = 0.0f;
  if constexpr (K == NormKind::layer) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) sum += to_float(x[i]);
    mean = row_reduce(sum, blockDim.x, 1) * inv_n;
  }
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    const float d = to_float(source[i]) - mean;
    sum_squares += d * d;
  }
  const float scale = rsqrtf(row_reduce(sum_squares, blockDim.x, 0) * inv_n + p.eps);
  for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    float o = (to_float(source[i]) - mean) * scale * to_float(weight[i]);
    if (K == NormKind::layer && bias != nullptr) o += to_float(bias[i]);
    y[i] = from_float<T>(o);
  }
}

}  // namespace norm_kernels
}  // namespace llmk
