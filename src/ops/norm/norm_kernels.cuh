// Normalization kernels: rms_norm, add_rms_norm (fused residual add) and layer_norm.
//
// The math, per row of n elements (f32 arithmetic, one rounding per output):
//   rms_norm:      y = x * rsqrt(sum(x^2) / n + eps) * w
//   add_rms_norm:  s = round(x + r); r = s; y = rms_norm(s)      (s is what the next layer adds)
//   layer_norm:    m = sum(x) / n; y = (x - m) * rsqrt(sum((x - m)^2) / n + eps) * w + b
//
// The trick: these ops are memory-bound, so the goal is to touch each byte once and to keep
// enough loads in flight. The blockDim.x threads (whole warps) of one threadIdx.y own a row; each
// thread holds CHUNKS packs of VEC elements (16 bytes each when the layout is aligned), converts
// each element to f32 where used, reduces across the warp with shuffles and across the group's
// warps through shared memory, then normalizes from registers and stores. x (and residual) is
// read once and y (and residual) written once; layer_norm reduces twice, the sum and then the
// squared deviations from the mean, both from registers (exact two-pass, and on a lone row 1.4 us
// faster than one reduction of Chan's moments, bench/NOTES.md v9). Two kernels share that
// per-row work (normalize_row):
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

#include "core/pack.cuh"
#include "norm.hpp"

namespace llmk {
namespace norm_kernels {

// Sums s over each group of `span` lanes (a power of two, at most 32) by a butterfly. Every lane
// of a group ends with the same bits, as a + b and b + a are the same float.
__device__ __forceinline__ float butterfly_sum(float s, int span) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    if (offset < span) s += __shfl_xor_sync(0xffffffffu, s, offset);
  }
  return s;
}

// Sums s over the threads of this thread's row (blockDim.x threads, whole warps, one row per
// threadIdx.y); every one of them gets the same result. Every thread of the block must call it
// (it has a barrier). After the barrier each lane picks up one warp's partial and a second
// butterfly adds them, so a lone row of 16 warps waits for 4 shuffles rather than a serial pass
// over 16 partials (~240 cycles less). Two sums in one block use different buffers (0 and 1), so
// neither needs a second barrier to protect its scratch from the other.
__device__ __forceinline__ float row_sum(float s, int buffer) {
  __shared__ float warp_partials[2][32];
  s = butterfly_sum(s, 32);
  const int warps_per_row = blockDim.x / 32;
  if (warps_per_row == 1) return s;
  const int first_warp = threadIdx.y * warps_per_row, lane = threadIdx.x % 32;
  if (lane == 0) warp_partials[buffer][first_warp + threadIdx.x / 32] = s;
  __syncthreads();
  const int span = 1 << (32 - __clz(warps_per_row - 1));  // warps_per_row rounded up to 2^k
  const int k = lane % span;
  return butterfly_sum(k < warps_per_row ? warp_partials[buffer][first_warp + k] : 0.0f, span);
}

// The sum of a pack's elements, added in pairs: a dependent chain of log2(N) adds rather than N,
// which a lone row, whose latency is its chain, notices (bench/NOTES.md).
template <int N>
__device__ __forceinline__ float pairwise_sum(float (&f)[N]) {
#pragma unroll
  for (int step = 1; step < N; step *= 2) {
#pragma unroll
    for (int i = 0; i + step < N; i += 2 * step) f[i] += f[i + step];
  }
  return f[0];
}

// Threads per row never exceed this, so every kernel may use up to 128 registers per thread.
constexpr int kMaxBlockThreads = 512;

// The block's place in a grid of any number of blocks: x runs first, y counts whole rows of x.
// (Within a block, threadIdx.y picks the row and threadIdx.x the thread within it.)
__device__ __forceinline__ int64_t block_index() {
  return blockIdx.x + int64_t{blockIdx.y} * gridDim.x;
}

// Where this thread's part of a row lives: packs lane, lane + threads_per_row, ... of the row.
template <int CHUNKS>
struct RowPart {
  bool valid[CHUNKS];  // the pack exists (the row exists and the pack is inside it)
  int valid_packs;
  int lane, threads_per_row;

  __device__ __forceinline__ RowPart(bool row_valid, int64_t packs)
      : valid_packs(0), lane(threadIdx.x), threads_per_row(blockDim.x) {
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      valid[c] = row_valid && lane + c * threads_per_row < packs;
      valid_packs += valid[c];
    }
  }
  __device__ __forceinline__ int pack(int c) const { return lane + c * threads_per_row; }
};

// The work on one row once this thread holds its packs v (and residual packs r): the residual
// add, the row's statistics (one sum, two for layer_norm), the normalized output. params(c, w, b)
// fills the weight (and bias) packs of chunk c, when the output needs them.
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
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
      sum += pairwise_sum(f);
    }
    mean = row_sum(sum, 0) * inv_n;
    float deviations = 0.0f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
#pragma unroll
      for (int i = 0; i < VEC; ++i) f[i] = (f[i] - mean) * (f[i] - mean);
      deviations += pairwise_sum(f);
    }
    scale = rsqrtf(row_sum(deviations, 1) * inv_n + p.eps);
  } else {
    float sum_squares = 0.0f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!part.valid[c]) continue;
      float f[VEC];
      unpack(v[c], f);
#pragma unroll
      for (int i = 0; i < VEC; ++i) f[i] *= f[i];
      sum_squares += pairwise_sum(f);
    }
    scale = rsqrtf(row_sum(sum_squares, 0) * inv_n + p.eps);
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

// The first pack of the row `offset` elements into the tensor at `base`; P is const when base is.
// Offsets are never negative (strides are not), so the division is a shift.
template <class P, int VEC, class Base>
__device__ __forceinline__ P* row_start(Base* base, int64_t offset) {
  return static_cast<P*>(base) + static_cast<uint64_t>(offset) / VEC;
}

// One row per threadIdx.y, spread over blockDim.x threads, all of its loads issued before the
// first use. EARLY: load the weight (and bias) packs with the row rather than after the reduction.
template <NormKind K, class T, int VEC, int CHUNKS, bool EARLY>
__global__ void __launch_bounds__(kMaxBlockThreads) norm_rows_kernel(const NormParams p) {
  using P = Pack<T, VEC>;
  const int64_t packs = p.hidden / VEC;
  const P* weight = static_cast<const P*>(p.weight);
  const P* bias = static_cast<const P*>(p.bias);
  const bool has_bias = K == NormKind::layer && p.bias != nullptr;

  const int64_t row = block_index() * blockDim.y + threadIdx.y;
  // A row past the end (only in the last y row of a grid split over y) has no valid packs and
  // still takes part in row_sum's barrier. No block leaves early: the test would put the load
  // of the row count and a branch before every row's loads, and a lone row waits for both.
  const bool row_valid = row < p.rows.count;
  const RowPart<CHUNKS> part(row_valid, packs);
  // Rows of one merged dimension (most calls; unused strides are 0) start at row * stride. Testing
  // for that first keeps the general index (a division per extent, a product per dimension and
  // tensor) off the path to a lone row's first load (bench/NOTES.md, v9).
  const int64_t at = row_valid ? row : 0;
  const P* x;
  P* residual = nullptr;
  P* y;
  if (p.rows.ndim <= 1) {
    x = row_start<const P, VEC>(p.x, at * p.x_strides.stride[0]);
    if constexpr (K == NormKind::add_rms) {
      residual = row_start<P, VEC>(p.residual, at * p.residual_strides.stride[0]);
    }
    y = row_start<P, VEC>(p.y, at * p.y_strides.stride[0]);
  } else {
    const RowIndex index = row_index(p.rows, at);
    x = row_start<const P, VEC>(p.x, row_offset(index, p.x_strides));
    if constexpr (K == NormKind::add_rms) {
      residual = row_start<P, VEC>(p.residual, row_offset(index, p.residual_strides));
    }
    y = row_start<P, VEC>(p.y, row_offset(index, p.y_strides));
  }

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
  const RowIndex index = row_index(p.rows, row);
  const T* x = static_cast<const T*>(p.x) + row_offset(index, p.x_strides);
  T* y = static_cast<T*>(p.y) + row_offset(index, p.y_strides);
  const T* source = x;  // what the final pass normalizes
  if constexpr (K == NormKind::add_rms) {
    T* residual = static_cast<T*>(p.residual) + row_offset(index, p.residual_strides);
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
      residual[i] = from_float<T>(to_float(x[i]) + to_float(residual[i]));
    }
    source = residual;
  }
  float mean = 0.0f;
  if constexpr (K == NormKind::layer) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) sum += to_float(x[i]);
    mean = row_sum(sum, 1) * inv_n;
  }
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    const float d = to_float(source[i]) - mean;
    sum_squares += d * d;
  }
  const float scale = rsqrtf(row_sum(sum_squares, 0) * inv_n + p.eps);
  for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
    float o = (to_float(source[i]) - mean) * scale * to_float(weight[i]);
    if (K == NormKind::layer && bias != nullptr) o += to_float(bias[i]);
    y[i] = from_float<T>(o);
  }
}

}  // namespace norm_kernels
}  // namespace llmk
