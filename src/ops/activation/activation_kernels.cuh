// Activation kernels, elementwise over rows [..., n]:
//   plain:  y = a(x)            bias:  y = a(x + bias)            gated:  y = a(gate) * up
// with a = identity, GELU (erf), GELU (tanh), SiLU or ReLU. Each element is widened to f32, the
// bias added in f32 without rounding, the activation (and the product with up) computed in f32,
// and the result rounded once to the output dtype.
//
// The work is pure streaming: 4 (plain, bias) or 6 (gated) bytes per bf16 element. At ~4 TB/s
// an H100/H200 SM must retire about 4 bf16 elements per clock, i.e. it can issue ~32 thread
// instructions per element, and its MUFU unit (exp2, rcp) does 16 per clock, 4 per element. A
// full-accuracy f32 function costs a good part of that budget (erfcf is ~30 instructions; expf
// and IEEE division ~10 each, with a slow path), so the math is chosen by output dtype:
//
//  - f32 outputs (rtol 1e-5) take CUDA's accurate functions, a few ulp or better: erfcf, expf
//    and IEEE division. f32 moves twice the bytes per element, so there is twice the budget.
//    GELU is x/2 erfc(-x / sqrt 2), not PyTorch's x/2 (1 + erf(x / sqrt 2)): for x < 0 that sum
//    cancels, and its absolute error of ~|x| 2^-24, multiplied by up in the gated form, exceeds
//    f32's atol where the output is small (measured: 1e-6 off at -3e-4). erfc has no such
//    cancellation: its error is relative.
//  - f16/bf16 outputs (rtol 2^-10, 2^-7; half an ulp of it goes to the final rounding) take
//    ex2.approx and rcp.approx (2^-22 and 1 ulp relative) on forms that do not cancel:
//      SiLU:       x * rcp(1 + 2^(-x log2 e))                                   5 instructions
//      GELU tanh:  x/2 (1 + tanh u) = x * sigmoid(2u) = x * rcp(1 + 2^(-2u log2 e)),
//                  u = sqrt(2/pi) (x + 0.044715 x^3)                            7 instructions
//      GELU erf:   x Phi(x) = x/2 + |x| (1/2 - Q(|x|)), Q = 1 - Phi from Zelen & Severo's
//                  approximation (Abramowitz & Stegun 26.2.17, absolute error < 7.5e-8): for
//                  a = |x|, t = 1 / (1 + 0.2316419 a),
//                  Q(a) = exp(-a^2/2) / sqrt(2 pi) * (b1 t + ... + b5 t^5).    13 instructions
//                  For x < 0 the sum cancels to x Q(a): 1/2 - Q's rounding (2^-26) costs an
//                  absolute |x| 2^-26 < 1e-7 (past |x| ~ 5.6, 1/2 - Q rounds to 1/2 and y to an
//                  exact 0), 1% of f16's atol, times |up| in the gated form. It buys two of the
//                  five instructions x * (x >= 0 ? 1 - Q : Q) takes (product, sign test, select).
//    Checked in f32 arithmetic on [-20, 20] against float64 (ex2 and rcp perturbed by their
//    documented error): GELU's error is at most 2.1% of the f16 tolerance (atol + rtol |y|),
//    SiLU's and GELU-tanh's relative error at most 1e-6. The bias GELU row with erff would issue
//    ~30 instructions per element, the whole budget, before any address work; with these it
//    issues ~21 (widening, bias, GELU, narrowing, loads, stores and addresses).
//    tanh.approx.f32 is not used: its 2^-11 relative error would survive 1 + tanh(u) ~ 0 as a
//    percent-level error of the output.
//
// Geometry, one for every form, dtype and pack width: a 1-D grid of 128-thread blocks over a
// launch's rows * per_row packs of VEC elements (16 bytes when every pointer, row stride and n
// allow it, as core/pack.cuh's pack_elements says; narrower down to single elements otherwise).
// Thread t of block b takes packs b * 128 * PACKS + t + 128 k, k < PACKS, PACKS making 16 bytes
// per input stream (one 16-byte pack, up to eight single 16-bit elements), so each load is
// coalesced across the warp; it issues all of its loads (x and up, or x and bias) before it
// computes and stores. A pack's row is its index / per_row by a multiply-high (FastDiv), its
// column the remainder, and the row's byte offset in each tensor one multiply by its row stride
// (one merged row dimension, the usual case) or RowIndex's decomposition. Indices are 32-bit: the
// launcher cuts a call of more than 2^31 - 1 packs into launches (activation_launch.cuh). A
// thread reads each element of its own packs before writing the same element of y, so y may be
// exactly x (or gate, or up).
//
// Why this layout (scratch sweep on the H200, one run): with contiguous rows it ran bias + GELU
// 16384 x 5504 bf16 in 92.8 us, SiLU-and-mul 16384 x 11008 in 127.3 and SiLU 16384 x 5504 in
// 88.5, against 95.3, 128.2 and 90.4 for the row tiles it replaces (rows cut into chunks of up
// to 256 threads holding 2 packs each for the bias form, 4 for the others). A copy of the tile
// kernel on contiguous rows only (same tile, grid and 40 registers) ran bias + GELU in 92.3 us:
// its SASS is the tile's but for the address work, 61 instructions per thread before the loads
// instead of 77 (the tile read the merged dimension count and branched on it, multiplied each
// tensor's 64-bit row stride separately, and turned n and the offsets into packs with 64-bit
// shifts and a signed division), 19 of the ~363 a 2-pack thread issues. The bias form is the
// most issue-bound (~21 instructions per element) and spreads that work over the fewest
// elements; the other forms' copies tied the tiles within 0.3%. So this kernel keeps its own
// address work down: 32-bit indices, the divider and byte strides precomputed by the launcher,
// the dimension test made once per thread. For a 16-byte bias + GELU pack it issues 168
// instructions, 32 of them before the math (the sweep's contiguous-only flat kernel: 163). For
// narrower packs the row arithmetic (~15 instructions) is paid per pack, i.e. up to per element:
// the misaligned fallback is issue-bound, not bandwidth-bound, for the heavier activations.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "activation.hpp"
#include "core/fast_div.hpp"
#include "core/pack.cuh"

namespace llmk {
namespace activation_kernels {

constexpr int kBlockThreads = 128;

// Packs a thread holds per input stream: 16 bytes of each.
template <class T, int VEC>
constexpr int kPacksPerThread = 16 / (VEC * static_cast<int>(sizeof(T)));

// One launch, what the launcher makes of an ActivationParams (or of a piece of one,
// activation_launch.cuh): packs of VEC elements in rows of row_of.divisor packs, the rows in
// ndim merged dimensions (RowShape's, each extent as its divider), row strides in bytes (unused
// ones 0).
struct PackGrid {
  const void* x;
  const void* second;  // bias (one row) or up
  void* y;
  uint32_t packs;  // rows * packs per row, < 2^31
  FastDiv row_of;  // divides by the packs per row
  int ndim;
  FastDiv extent[kMaxRowDims];
  int64_t x_stride[kMaxRowDims], up_stride[kMaxRowDims], y_stride[kMaxRowDims];
};

__device__ __forceinline__ float exp2_approx(float v) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
}

__device__ __forceinline__ float rcp_approx(float v) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
}

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluTanhCubic = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// a(v). ACCURATE: the f32-output variants; otherwise the fast ones (see the top of the file).
template <llmk_activation A, bool ACCURATE>
__device__ __forceinline__ float activate(float v) {
  if constexpr (A == LLMK_ACTIVATION_IDENTITY) {
    return v;
  } else if constexpr (A == LLMK_ACTIVATION_RELU) {
    return v < 0.0f ? 0.0f : v;  // NaN stays NaN
  } else if constexpr (A == LLMK_ACTIVATION_SILU) {
    if constexpr (ACCURATE) return v / (1.0f + expf(-v));
    return v * rcp_approx(1.0f + exp2_approx(-kLog2e * v));
  } else if constexpr (A == LLMK_ACTIVATION_GELU_TANH) {
    // x / (1 + exp(-2u)) with -2u = x (c1 + c3 x^2); in base 2 for the fast variant.
    constexpr float c1 = -2.0f * kSqrt2OverPi, c3 = c1 * kGeluTanhCubic;
    if constexpr (ACCURATE) return v / (1.0f + expf(v * (c1 + c3 * v * v)));
    constexpr float c1_log2 = c1 * kLog2e, c3_log2 = c3 * kLog2e;
    return v * rcp_approx(1.0f + exp2_approx(v * (c1_log2 + c3_log2 * v * v)));
  } else {
    static_assert(A == LLMK_ACTIVATION_GELU);
    if constexpr (ACCURATE) return 0.5f * v * erfcf(-v * kSqrtHalf);
    // Zelen & Severo's coefficients with 1/sqrt(2 pi) folded in.
    constexpr float b1 = 0.319381530f * kInvSqrt2Pi, b2 = -0.356563782f * kInvSqrt2Pi,
                    b3 = 1.781477937f * kInvSqrt2Pi, b4 = -1.821255978f * kInvSqrt2Pi,
                    b5 = 1.330274429f * kInvSqrt2Pi;
    const float t = rcp_approx(fmaf(0.2316419f, fabsf(v), 1.0f));
    const float series = t * fmaf(fmaf(fmaf(fmaf(b5, t, b4), t, b3), t, b2), t, b1);
    const float half_v = 0.5f * v;
    const float gauss = exp2_approx(half_v * (v * -kLog2e));  // exp(-v^2 / 2)
    // v/2 + |v| (1/2 - Q(|v|)), no sign test: see the top of the file.
    return fmaf(fabsf(v), fmaf(-gauss, series, 0.5f), half_v);
  }
}

// A row's place in its merged dimensions (g.ndim > 1), decomposed once for every tensor's offset.
struct RowIndex {
  uint32_t at[kMaxRowDims];

  __device__ __forceinline__ RowIndex(const PackGrid& g, uint32_t row) {
#pragma unroll
    for (int d = kMaxRowDims - 1; d > 0; --d) {
      at[d] = 0;
      if (d < g.ndim) {
        const uint32_t outer = g.extent[d](row);
        at[d] = row - outer * g.extent[d].divisor;
        row = outer;
      }
    }
    at[0] = row;
  }

  __device__ __forceinline__ int64_t offset(const int64_t (&stride)[kMaxRowDims]) const {
    int64_t offset = 0;
#pragma unroll
    for (int d = 0; d < kMaxRowDims; ++d) offset += at[d] * stride[d];
    return offset;
  }
};

// Grid: ceil(packs / (kBlockThreads * PACKS)) blocks of kBlockThreads (see the top of the file).
template <class T, int VEC, ActivationForm F, llmk_activation A>
__global__ void __launch_bounds__(kBlockThreads) activation_kernel(const PackGrid g) {
  using P = Pack<T, VEC>;
  constexpr int PACKS = kPacksPerThread<T, VEC>;
  constexpr bool kAccurate = std::is_same_v<T, float>;
  const uint32_t first = blockIdx.x * uint32_t{kBlockThreads * PACKS} + threadIdx.x;
  if (first >= g.packs) return;
  const char* const x = static_cast<const char*>(g.x);
  const char* const up = static_cast<const char*>(g.second);
  char* const y = static_cast<char*>(g.y);

  P xv[PACKS], sv[PACKS];
  P* out[PACKS];
  // The loads, for rows in one merged dimension (the usual case: a row's offset is one stride
  // away) or in several (RowIndex); the test is made once per thread.
  const auto load = [&](auto multi_dim) {
#pragma unroll
    for (int k = 0; k < PACKS; ++k) {
      const uint32_t f = first + k * kBlockThreads;  // < 2^31 + kBlockThreads * PACKS: no wrap
      if (k > 0 && f >= g.packs) break;
      const uint32_t row = g.row_of(f);
      const uint32_t col = f - row * g.row_of.divisor;
      int64_t x_at, up_at, y_at;
      if constexpr (decltype(multi_dim)::value) {
        const RowIndex index(g, row);
        x_at = index.offset(g.x_stride);
        up_at = index.offset(g.up_stride);
        y_at = index.offset(g.y_stride);
      } else {
        x_at = row * g.x_stride[0];
        up_at = row * g.up_stride[0];
        y_at = row * g.y_stride[0];
      }
      xv[k] = at_byte<P>(x, x_at)[col];
      if constexpr (F == ActivationForm::bias) sv[k] = static_cast<const P*>(g.second)[col];
      if constexpr (F == ActivationForm::gated) sv[k] = at_byte<P>(up, up_at)[col];
      out[k] = at_byte<P>(y, y_at) + col;
    }
  };
  if (g.ndim <= 1) {
    load(std::false_type{});
  } else {
    load(std::true_type{});
  }
#pragma unroll
  for (int k = 0; k < PACKS; ++k) {
    if (k > 0 && first + k * kBlockThreads >= g.packs) break;
    float v[VEC];
    unpack(xv[k], v);
    if constexpr (F == ActivationForm::bias) {
      float b[VEC];
      unpack(sv[k], b);
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] += b[i];
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = activate<A, kAccurate>(v[i]);
    if constexpr (F == ActivationForm::gated) {
      float u[VEC];
      unpack(sv[k], u);
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] *= u[i];
    }
    *out[k] = pack<T>(v);
  }
}

}  // namespace activation_kernels
}  // namespace llmk
