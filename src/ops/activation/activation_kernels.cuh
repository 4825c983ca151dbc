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
//    ~30 instructions per element, the whole budget; with these ~18 (widening, bias, GELU,
//    narrowing, addresses) it keeps more than a third of it free.
//    tanh.approx.f32 is not used: its 2^-11 relative error would survive 1 + tanh(u) ~ 0 as a
//    percent-level error of the output.
//
// Geometry: each row is cut into chunks of threads_per_row * packs_per_thread packs of VEC
// elements (16 bytes when every pointer, row stride and n allow it, as core/pack.cuh's
// pack_elements says; narrower down to single elements otherwise). A thread owns packs lane,
// lane + threads_per_row, ... of its chunk, so each of its loads is coalesced across the warp,
// and issues all of its loads (x and up, or x and bias) before it computes and stores. The grid
// is (chunk, row group): a lone long row spreads over many blocks, short rows share one
// (rows_per_block rows of threads_per_row threads each), and no block loops. packs_per_thread is
// the compile-time most, PACKS, unless that would leave SMs idle (activation_launch.cuh). A
// thread reads each element of its own packs before writing the same element of y, so y may be
// exactly x (or gate, or up).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "activation.hpp"
#include "core/pack.cuh"

namespace llmk {
namespace activation_kernels {

constexpr int kBlockThreads = 256;

// Most packs a thread holds: 64 bytes of each input stream (four 16-byte packs), at most 16
// accesses when packs are narrower. The bias form holds half of both: its bias packs take as
// many registers as x's but come from L2 (every row reads the same bias) and add no DRAM bytes
// in flight, so the registers are better spent on more resident blocks, whose loads overlap
// other blocks' math (bias + GELU issues ~18 instructions per element, the most of any form).
template <class T, int VEC, ActivationForm F>
constexpr int kMaxPacksPerThread = F == ActivationForm::bias
                                       ? std::min<int>(32 / (VEC * sizeof(T)), 8)
                                       : std::min<int>(64 / (VEC * sizeof(T)), 16);

// Blocks of kBlockThreads per SM the register budget must allow. Four (64 registers) keep 1024
// threads, 64 KB per input stream of 16-byte loads, in flight per SM: more than Little's law asks
// at ~4.8 TB/s. The bias form's halved packs fit six (40 registers): eight of its usual
// 192-thread blocks (one 5504-wide bf16 row each) instead of five, 32 KB of x in flight per SM.
template <ActivationForm F>
constexpr int kMinBlocksPerSm = F == ActivationForm::bias ? 6 : 4;

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

// The row's place in its merged leading dimensions, decomposed once for every tensor's offset.
struct RowIndex {
  int64_t at[kMaxRowDims];

  __device__ __forceinline__ RowIndex(const RowShape& shape, int64_t row) {
#pragma unroll
    for (int d = kMaxRowDims - 1; d > 0; --d) {
      at[d] = 0;
      if (d < shape.ndim) {
        at[d] = row % shape.extent[d];
        row /= shape.extent[d];
      }
    }
    at[0] = row;
  }

  __device__ __forceinline__ int64_t offset(const RowStrides& strides) const {
    int64_t offset = 0;
#pragma unroll
    for (int d = 0; d < kMaxRowDims; ++d) offset += at[d] * strides.stride[d];
    return offset;
  }
};

// The first pack of a row `offset` elements past `base`; P is const when base is.
template <class P, int VEC, class Base>
__device__ __forceinline__ P* row_start(Base* base, int64_t offset) {
  return static_cast<P*>(base) + static_cast<uint64_t>(offset) / VEC;  // offset >= 0
}

// Block (threads_per_row, rows_per_block), grid (chunks per row, row groups, row groups / 65535).
// Each thread holds 2^packs_shift <= PACKS packs (a shift: a multiply costs registers).
template <class T, int VEC, ActivationForm F, llmk_activation A>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm<F>)
    activation_kernel(const ActivationParams p, const int packs_shift) {
  using P = Pack<T, VEC>;
  constexpr int PACKS = kMaxPacksPerThread<T, VEC, F>;
  constexpr bool kAccurate = std::is_same_v<T, float>;
  const int64_t row_group = blockIdx.y + int64_t{blockIdx.z} * gridDim.y;
  const int64_t row = row_group * blockDim.y + threadIdx.y;
  if (row >= p.rows.count) return;
  const int64_t packs = p.n / VEC;
  const int64_t first = (int64_t{blockIdx.x} * blockDim.x << packs_shift) + threadIdx.x;

  // Unused strides are 0, so one merged row dimension (the usual case) needs no decomposition.
  int64_t x_offset, y_offset, up_offset;
  if (p.rows.ndim <= 1) {
    x_offset = row * p.x_strides.stride[0];
    y_offset = row * p.y_strides.stride[0];
    up_offset = row * p.up_strides.stride[0];
  } else {
    const RowIndex index(p.rows, row);
    x_offset = index.offset(p.x_strides);
    y_offset = index.offset(p.y_strides);
    up_offset = index.offset(p.up_strides);
  }
  const P* x = row_start<const P, VEC>(p.x, x_offset);
  P* y = row_start<P, VEC>(p.y, y_offset);
  const P* second = nullptr;  // bias or up
  if constexpr (F == ActivationForm::bias) second = static_cast<const P*>(p.bias);
  if constexpr (F == ActivationForm::gated) second = row_start<const P, VEC>(p.up, up_offset);

  P xv[PACKS], sv[PACKS];
#pragma unroll
  for (int c = 0; c < PACKS; ++c) {
    const int64_t j = first + c * blockDim.x;
    if (c == (1 << packs_shift) || j >= packs) break;
    xv[c] = x[j];
    if constexpr (F != ActivationForm::plain) sv[c] = second[j];
  }
#pragma unroll
  for (int c = 0; c < PACKS; ++c) {
    const int64_t j = first + c * blockDim.x;
    if (c == (1 << packs_shift) || j >= packs) break;
    float v[VEC];
    unpack(xv[c], v);
    if constexpr (F == ActivationForm::bias) {
      float b[VEC];
      unpack(sv[c], b);
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] += b[i];
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = activate<A, kAccurate>(v[i]);
    if constexpr (F == ActivationForm::gated) {
      float u[VEC];
      unpack(sv[c], u);
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] *= u[i];
    }
    y[j] = pack<T>(v);
  }
}

}  // namespace activation_kernels
}  // namespace llmk
