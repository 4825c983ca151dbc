// The RoPE kernel: q and k rotated in place by each token's position.
//
// The math: pair i of a head, (x, y), becomes (x cos a - y sin a, y cos a + x sin a), with a the
// pair's angle at the token's position; pairs are (i, i + rotary_dim/2) in NeoX style and
// (2i, 2i + 1) in GPT-J style. f32 arithmetic, each output rounded once to its dtype.
//
// The angles: without a cache, a = position * inv_freq[i], inv_freq coming in f64 from the host.
// At position 1e6 an f32 angle would be off by ~0.03 rad, so the product and its reduction are
// f64: h = a / pi half-turns, reduced exactly to r = h - 2 rint(h / 2) in [-1, 1], and
// sincospif(r) gives cos and sin to f32 accuracy (its own argument reduction is exact, so it has
// no slow path and no local memory). With a vLLM cos/sin cache they are row `position` of it; a
// position outside the cache gives NaN, so no read goes out of bounds.
//
// The trick: every head of a token turns by the same angles, so a token's cos and sin are
// computed once, by the threads that own that token, into shared memory, and then serve all of
// its q and k heads (64 heads for Llama-2-7B: the f64 work costs nothing per element). The rest
// is a memory-bound in-place pass: each thread owns up to kChunks units (a unit is the part of
// one head that one thread rotates), issues every load of them first, computes the angles while
// those loads are in flight, waits at the one barrier, and then rotates and stores. A token's
// units are spread evenly over any number of threads, not a power of two: GQA's 32 + 8 heads of
// 8 units are 80 threads of 4 units, where 128 threads would hold 2.5 units each and a third less
// in flight. A block holds as few tokens as make two warps (rope_cuda.cu), so many small blocks
// share an SM and one waiting at its barrier (for a cache row, a second dependent load) or
// draining its stores holds back few loads. The units' addresses are computed again after the
// barrier rather than kept: that keeps the kernel within 64 registers, 1024 threads per SM.
// With 16-byte packs a NeoX unit is one pack from the first half of the rotary dimensions and the
// matching pack from the second half; a GPT-J unit is one pack holding its pairs side by side.
// Where the layout does not allow 16-byte accesses, VEC is 1: a NeoX unit is one pair, a GPT-J
// unit one pair of adjacent elements. Dimensions past rotary_dim are never read or written.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/pack.cuh"
#include "rope.hpp"

namespace llmk {
namespace rope_kernels {

// A block has at most this many threads; each owns at most kChunks units. The bound of 64
// registers (kMinBlocksPerSm blocks of kBlockThreads) lets 1024 threads of 16-byte units keep
// ~128 KB of loads in flight per SM.
constexpr int kBlockThreads = 256;
constexpr int kChunks = 4;
constexpr int kMinBlocksPerSm = 4;

// The shape of one unit: kPairs pairs in kPacks packs of VEC elements.
template <llmk_rope_style S, int VEC>
struct Unit {
  static constexpr bool kNeox = S == LLMK_ROPE_NEOX;
  static constexpr int kPairs = kNeox ? VEC : (VEC > 1 ? VEC / 2 : 1);
  static constexpr int kPacks = kNeox || VEC == 1 ? 2 : 1;

  // Element offset of pack `k` of unit `j` from the start of its head.
  __device__ __forceinline__ static int offset(int j, int k, int pairs) {
    return kNeox ? j * VEC + k * pairs : j * 2 * kPairs + k * VEC;
  }
};

// How the threads of a block split their work; rope_cuda.cu chooses it.
struct Geometry {
  unsigned threads_per_token;  // a block is tokens_per_block * threads_per_token threads
  unsigned tokens_per_block;
  unsigned heads_per_group;  // of the q heads followed by the k heads; blockIdx.y is the group
  unsigned units_per_head;
};

// N consecutive floats of shared memory, in 16- or 8-byte accesses where N allows; the caller
// guarantees the matching alignment.
template <int N>
__device__ __forceinline__ void load_floats(const float* source, float (&out)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const float4 v = *reinterpret_cast<const float4*>(source + i);
      out[i] = v.x;
      out[i + 1] = v.y;
      out[i + 2] = v.z;
      out[i + 3] = v.w;
    }
  } else if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const float2 v = *reinterpret_cast<const float2*>(source + i);
      out[i] = v.x;
      out[i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = source[i];
  }
}

__device__ __forceinline__ int64_t position_of(const RopeParams& p, int64_t token) {
  const int64_t index = token * p.positions_stride;
  return p.positions_dtype == LLMK_DTYPE_I64 ? static_cast<const int64_t*>(p.positions)[index]
                                             : static_cast<const int32_t*>(p.positions)[index];
}

// cos and sin of position * inv_freq, accurate to f32 at any position (see the top).
__device__ __forceinline__ void angle_cos_sin(int64_t position, double inv_freq, float& cos,
                                              float& sin) {
  constexpr double kInvPi = 0.318309886183790671537767526745028724;
  const double half_turns = static_cast<double>(position) * inv_freq * kInvPi;
  const double reduced = half_turns - 2.0 * rint(0.5 * half_turns);  // exact
  sincospif(static_cast<float>(reduced), &sin, &cos);
}

template <class T>
__device__ __forceinline__ float cache_element(const RopeParams& p, int64_t index) {
  return p.cache_dtype == LLMK_DTYPE_F32 ? static_cast<const float*>(p.cache)[index]
                                         : to_float(static_cast<const T*>(p.cache)[index]);
}

// Where unit u of a token's head group starts, and its index j within its head.
template <class T>
__device__ __forceinline__ T* unit_start(const RopeParams& p, const Geometry& g, int64_t token,
                                         int64_t first_head, unsigned u, int& j) {
  const int64_t head = first_head + u / g.units_per_head;
  j = static_cast<int>(u % g.units_per_head);
  const bool in_q = head < p.q.heads;
  const int64_t h = in_q ? head : head - p.q.heads;
  T* const base = static_cast<T*>(in_q ? p.q.data : p.k.data);
  return base + token * (in_q ? p.q.token_stride : p.k.token_stride) +
         h * (in_q ? p.q.head_stride : p.k.head_stride);
}

template <llmk_rope_style S, class T, int VEC>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm)
    rope_kernel(const __grid_constant__ RopeParams p, const Geometry g) {
  using U = Unit<S, VEC>;
  using P = Pack<T, VEC>;
  // Per token of the block: its pairs' cosines, then their sines.
  extern __shared__ float4 shared_storage[];
  const unsigned slot = threadIdx.x / g.threads_per_token;
  const unsigned lane = threadIdx.x - slot * g.threads_per_token;
  const int64_t token = int64_t{blockIdx.x} * g.tokens_per_block + slot;
  const bool token_valid = token < p.tokens;
  const int64_t first_head = int64_t{blockIdx.y} * g.heads_per_group;
  const int64_t heads = min(int64_t{g.heads_per_group}, p.q.heads + p.k.heads - first_head);
  const unsigned units = token_valid ? static_cast<unsigned>(heads) * g.units_per_head : 0;
  // Read first: its latency then overlaps with that of the loads of q and k.
  const int64_t position = token_valid ? position_of(p, token) : 0;

  P data[kChunks][U::kPacks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const unsigned u = lane + c * g.threads_per_token;
    if (u >= units) continue;
    int j;
    const T* const start = unit_start<T>(p, g, token, first_head, u, j);
#pragma unroll
    for (int k = 0; k < U::kPacks; ++k) {
      data[c][k] = *reinterpret_cast<const P*>(start + U::offset(j, k, p.pairs));
    }
  }

  float* const cos_table = reinterpret_cast<float*>(shared_storage) + slot * 2 * p.pairs;
  float* const sin_table = cos_table + p.pairs;
  if (token_valid) {
    const bool in_cache = position >= 0 && position < p.cache_rows;
    for (int i = static_cast<int>(lane); i < p.pairs; i += static_cast<int>(g.threads_per_token)) {
      float cos, sin;
      if (p.cache == nullptr) {
        angle_cos_sin(position, p.inv_freq[i], cos, sin);
      } else if (in_cache) {
        cos = cache_element<T>(p, position * p.cache_stride + i);
        sin = cache_element<T>(p, position * p.cache_stride + p.pairs + i);
      } else {
        cos = sin = __int_as_float(0x7fffffff);  // NaN: the position has no row
      }
      cos_table[i] = cos;
      sin_table[i] = sin;
    }
  }
  __syncthreads();

#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const unsigned u = lane + c * g.threads_per_token;
    if (u >= units) continue;
    int j;
    T* const start = unit_start<T>(p, g, token, first_head, u, j);
    float cos[U::kPairs], sin[U::kPairs], v[U::kPacks * VEC];
    load_floats(cos_table + j * U::kPairs, cos);
    load_floats(sin_table + j * U::kPairs, sin);
#pragma unroll
    for (int k = 0; k < U::kPacks; ++k) {
      float part[VEC];
      unpack(data[c][k], part);
#pragma unroll
      for (int e = 0; e < VEC; ++e) v[k * VEC + e] = part[e];
    }
    // Pair i is (v[i], v[i + kPairs]) in NeoX style, (v[2i], v[2i + 1]) in GPT-J style.
#pragma unroll
    for (int i = 0; i < U::kPairs; ++i) {
      const int first = U::kNeox ? i : 2 * i, second = U::kNeox ? i + U::kPairs : 2 * i + 1;
      const float x = v[first], y = v[second];
      v[first] = x * cos[i] - y * sin[i];
      v[second] = y * cos[i] + x * sin[i];
    }
#pragma unroll
    for (int k = 0; k < U::kPacks; ++k) {
      float part[VEC];
#pragma unroll
      for (int e = 0; e < VEC; ++e) part[e] = v[k * VEC + e];
      *reinterpret_cast<P*>(start + U::offset(j, k, p.pairs)) = pack<T>(part);
    }
  }
}

}  // namespace rope_kernels
}  // namespace llmk
