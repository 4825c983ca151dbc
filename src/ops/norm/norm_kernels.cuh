// Normalization kernels: rms_norm, add_rms_norm (fused residual add) and layer_norm.
//
// The math, per row of n elements (f32 arithmetic, one rounding per output):
//   rms_norm:      y = x * rsqrt(sum(x^2) / n + eps) * w
//   add_rms_norm:  s = round(x + r); r = s; y = rms_norm(s)      (s is what the next layer adds)
//   layer_norm:    m = sum(x) / n; y = (x - m) * rsqrt(sum((x - m)^2) / n + eps) * w + b
//
// The trick: these ops are memory-bound, so the only goal is to touch each byte once. A group of
// threads_per_row threads (a multiple of 32) owns a row; each thread loads its CHUNKS packs of
// VEC elements (16 bytes each when the layout is aligned), weights included, with all loads issued
// before any use, converts each element to f32 once, reduces across the warp with shuffles and
// across the group's warps through shared memory, then normalizes from registers and stores.
// x (and residual) is read once and y (and residual) written once; layer_norm's variance is a
// second pass over registers, not over memory. Rows too long for the registers take
// norm_long_rows_kernel, which reads x again (mostly from L2).
//
// Conversions matter as much as bytes here: at 4 TB/s an H100/H200 SM must retire about 4 bf16
// elements per clock, and the f32 <-> 16-bit conversion unit cannot do several per element. So
// bf16 widens by an integer shift and f32 narrows two elements per instruction (cvt.rn.bf16x2).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "norm.hpp"

namespace llmk {
namespace norm_kernels {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// N elements moved by one access: 16 bytes when N * sizeof(T) == 16.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// The N elements of a pack as f32.
template <class T, int N>
__device__ __forceinline__ void unpack(const Pack<T, N>& p, float (&out)[N]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      uint32_t bits;
      memcpy(&bits, &p.v[i], 4);
      out[i] = __uint_as_float(bits << 16);
      out[i + 1] = __uint_as_float(bits & 0xffff0000u);
    }
  } else if constexpr (std::is_same_v<T, __half> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      __half2 pair;
      memcpy(&pair, &p.v[i], 4);
      const float2 f = __half22float2(pair);
      out[i] = f.x;
      out[i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_float(p.v[i]);
  }
}

// N f32 values rounded (to nearest even) into a pack.
template <class T, int N>
__device__ __forceinline__ Pack<T, N> pack(const float (&in)[N]) {
  Pack<T, N> p;
  if constexpr (std::is_same_v<T, __nv_bfloat16> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(in[i], in[i + 1]);
      memcpy(&p.v[i], &pair, 4);
    }
  } else if constexpr (std::is_same_v<T, __half> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const __half2 pair = __floats2half2_rn(in[i], in[i + 1]);
      memcpy(&p.v[i], &pair, 4);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) p.v[i] = from_float<T>(in[i]);
  }
  return p;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the threads_per_row threads that share this thread's row. Block-uniform control
// flow: every thread of the block calls it the same number of times.
__device__ __forceinline__ float row_sum(float v, int threads_per_row) {
  __shared__ float warp_partials[32];
  v = warp_sum(v);
  if (threads_per_row == 32) return v;
  const int warp = threadIdx.x / 32, warps_per_row = threads_per_row / 32;
  if (threadIdx.x % 32 == 0) warp_partials[warp] = v;
  __syncthreads();
  const int first = warp / warps_per_row * warps_per_row;
  float total = 0.0f;
  for (int w = 0; w < warps_per_row; ++w) total += warp_partials[first + w];
  __syncthreads();  // warp_partials is reused by the next call
  return total;
}

// Threads per row never exceed this, so every kernel may use up to 128 registers per thread.
constexpr int kMaxBlockThreads = 512;

template <NormKind K, class T, int VEC, int CHUNKS>
__global__ void __launch_bounds__(kMaxBlockThreads)
    norm_rows_kernel(const NormParams p, const int threads_per_row) {
  using P = Pack<T, VEC>;
  constexpr bool kAdd = K == NormKind::add_rms;
  constexpr bool kLayer = K == NormKind::layer;
  const int rows_per_block = blockDim.x / threads_per_row;
  const int slot = threadIdx.x / threads_per_row;
  const int lane = threadIdx.x % threads_per_row;
  const int64_t packs = p.hidden / VEC;
  const float inv_n = 1.0f / static_cast<float>(p.hidden);
  const bool has_bias = kLayer && p.bias != nullptr;

  // The loop bound is uniform across the block, so row_sum's barriers are reached by all threads.
  for (int64_t first_row = int64_t{blockIdx.x} * rows_per_block; first_row < p.rows.count;
       first_row += int64_t{gridDim.x} * rows_per_block) {
    const int64_t row = first_row + slot;
    const bool row_valid = row < p.rows.count;
    bool valid[CHUNKS];
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) valid[c] = row_valid && lane + c * threads_per_row < packs;
    const int64_t x_offset = row_valid ? row_offset(p.rows, p.x_strides, row) : 0;
    const int64_t y_offset = row_valid ? row_offset(p.rows, p.y_strides, row) : 0;
    const int64_t r_offset = kAdd && row_valid ? row_offset(p.rows, p.residual_strides, row) : 0;
    const P* x = static_cast<const P*>(p.x) + x_offset / VEC;
    P* residual = static_cast<P*>(p.residual) + r_offset / VEC;
    P* y = static_cast<P*>(p.y) + y_offset / VEC;
    const P* weight = static_cast<const P*>(p.weight);
    const P* bias = static_cast<const P*>(p.bias);

    // Every load in flight before the first use, the parameters too: a lone row would otherwise
    // wait for them in a second round trip after the reduction.
    P x_packs[CHUNKS], r_packs[CHUNKS], w_packs[CHUNKS], b_packs[CHUNKS];
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!valid[c]) continue;
      const int j = lane + c * threads_per_row;
      x_packs[c] = x[j];
      if constexpr (kAdd) r_packs[c] = residual[j];
      w_packs[c] = weight[j];
      if (has_bias) b_packs[c] = bias[j];
    }

    float v[CHUNKS][VEC];
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!valid[c]) continue;
      unpack(x_packs[c], v[c]);
      if constexpr (kAdd) {
        float r[VEC];
        unpack(r_packs[c], r);
#pragma unroll
        for (int i = 0; i < VEC; ++i) r[i] += v[c][i];
        const P sum = pack<T>(r);  // the rounded sum is both the new residual and what is normed
        residual[lane + c * threads_per_row] = sum;
        unpack(sum, v[c]);
      }
    }

    float mean = 0.0f;
    if constexpr (kLayer) {
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < CHUNKS; ++c) {
        if (!valid[c]) continue;
#pragma unroll
        for (int i = 0; i < VEC; ++i) sum += v[c][i];
      }
      mean = row_sum(sum, threads_per_row) * inv_n;
    }

    float sum_squares = 0.0f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!valid[c]) continue;
#pragma unroll
      for (int i = 0; i < VEC; ++i) {
        const float d = v[c][i] - mean;
        sum_squares += d * d;
      }
    }
    const float scale = rsqrtf(row_sum(sum_squares, threads_per_row) * inv_n + p.eps);

#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (!valid[c]) continue;
      float w[VEC], out[VEC];
      unpack(w_packs[c], w);
#pragma unroll
      for (int i = 0; i < VEC; ++i) out[i] = (v[c][i] - mean) * scale * w[i];
      if (has_bias) {
        float b[VEC];
        unpack(b_packs[c], b);
#pragma unroll
        for (int i = 0; i < VEC; ++i) out[i] += b[i];
      }
      y[lane + c * threads_per_row] = pack<T>(out);
    }
  }
}

// One block per row, any length: reads the row once to reduce (twice for layer_norm) and once more
// to write. Each thread touches the same elements in every pass, so add_rms_norm's second pass
// reads back the sums this very thread stored.
template <NormKind K, class T>
__global__ void __launch_bounds__(kMaxBlockThreads) norm_long_rows_kernel(const NormParams p) {
  const float inv_n = 1.0f / static_cast<float>(p.hidden);
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  for (int64_t row = blockIdx.x; row < p.rows.count; row += gridDim.x) {
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
      mean = row_sum(sum, blockDim.x) * inv_n;
    }
    float sum_squares = 0.0f;
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
      const float d = to_float(source[i]) - mean;
      sum_squares += d * d;
    }
    const float scale = rsqrtf(row_sum(sum_squares, blockDim.x) * inv_n + p.eps);
    for (int64_t i = threadIdx.x; i < p.hidden; i += blockDim.x) {
      float o = (to_float(source[i]) - mean) * scale * to_float(weight[i]);
      if (K == NormKind::layer && bias != nullptr) o += to_float(bias[i]);
      y[i] = from_float<T>(o);
    }
  }
}

}  // namespace norm_kernels
}  // namespace llmk
