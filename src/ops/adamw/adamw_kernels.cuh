// The AdamW kernel: one step of torch.optim.AdamW over F32 param / exp_avg / exp_avg_sq and an
// F32, F16 or BF16 grad, in one pass.
//
// The math, per element, in f32 and in the order of torch's single-tensor AdamW on CUDA, so that
// the two agree to f32 rounding (each line is one torch kernel; the products that nvcc contracts
// into FMAs there are FMAs here, every other operation is rounded on its own):
//   param      = param * decay                                      param.mul_(1 - lr * wd)
//   exp_avg    = fma(w, grad - exp_avg, exp_avg)          (w < 0.5)  exp_avg.lerp_(grad, w),
//              = fma(exp_avg - grad, 1 - w, grad)         (w >= 0.5)   w = 1 - beta1
//   exp_avg_sq = fma(1 - beta2, grad * grad, exp_avg_sq * beta2)   .mul_(beta2).addcmul_(...)
//   denom      = sqrt(exp_avg_sq) * (1 / bc2_sqrt) + eps           torch's CUDA division by a
//                                                                   scalar multiplies by its
//                                                                   reciprocal; then .add_(eps)
//   param      = fma(-step_size, exp_avg / denom, param)            param.addcdiv_(...)
// The scalars come from the host, computed once per call in f64 and rounded to f32 as torch
// rounds its Python floats. The intrinsics (__fmul_rn, ...) fix each rounding, so no compiler
// flag or contraction can change the result.
//
// The trick: AdamW is a pure stream (16 bytes read and 12 written per element with an f32 grad),
// so what counts is how the loads are issued and how the stream is cut among blocks. Each thread
// owns one 16-byte pack of 4 elements of one row, issues its loads (LDG.128 of param, exp_avg,
// exp_avg_sq; 16 or 8 bytes of grad) before any use, then updates and stores it; a long row goes
// to blocks of 256 threads, 1024 elements each. Why this shape, measured on an H200 at 50M f32
// params (bench/NOTES.md, AdamW sweep): the elements per block decided, not the bytes in flight.
// 2048 elements per block (256 threads x 2 packs) ran at 344-347 us whether an SM held 96 or
// 128 KB of loads; 1024 elements per block ran at 334-335 us with 80 or 128 KB (256 threads x 1
// pack, or Inductor's 128 x 2), 98% of the copy bandwidth, level with torch.compile's AdamW.
// Persistent grids, software pipelining, streaming stores and L2 prefetch hints were all slower.
// One pack per thread also needs no launch bound: ~40 registers, six blocks per SM.
//
// A block covers a tile of (rows_per_block rows) x (lanes_per_row * UNROLL packs): one long row
// is cut into many column chunks, many short rows share a block, and a contiguous tensor arrives
// here already merged into a single row. A row's last columns % VEC elements go element by element
// to the thread that owns the pack after its last whole one; views that no 16-byte pack fits take
// the same kernel with VEC = 1, four single elements per thread.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "adamw.hpp"
#include "core/pack.cuh"

namespace llmk {
namespace adamw_kernels {

constexpr int kBlockThreads = 256;

// The step's scalars as the kernel uses them, rounded to f32 once on the host.
struct StepScalars {
  float decay;            // 1 - lr * weight_decay
  float lerp_weight;      // w = 1 - beta1
  float lerp_complement;  // 1 - w, computed in f32 as torch's lerp does
  bool lerp_from_start;   // w < 0.5: torch's lerp steps from exp_avg; otherwise back from grad
  float beta2;
  float one_minus_beta2;
  float inv_bias_correction2_sqrt;
  float eps;
  float neg_step_size;  // -lr / (1 - beta1^step)
};

// How the grid covers the rows: each row is chunks_per_row chunks of lanes_per_row * UNROLL
// packs; a block holds kBlockThreads / lanes_per_row rows of one chunk index.
struct Tiling {
  int lanes_per_row;  // a power of two, 1 ... kBlockThreads
  int64_t chunks_per_row;
};

__device__ __forceinline__ void update(float& param, float grad, float& exp_avg, float& exp_avg_sq,
                                       const StepScalars& s) {
  param = __fmul_rn(param, s.decay);
  exp_avg = s.lerp_from_start ? __fmaf_rn(s.lerp_weight, __fsub_rn(grad, exp_avg), exp_avg)
                              : __fmaf_rn(__fsub_rn(exp_avg, grad), s.lerp_complement, grad);
  exp_avg_sq = __fmaf_rn(s.one_minus_beta2, __fmul_rn(grad, grad), __fmul_rn(exp_avg_sq, s.beta2));
  const float denom =
      __fadd_rn(__fmul_rn(__fsqrt_rn(exp_avg_sq), s.inv_bias_correction2_sqrt), s.eps);
  param = __fmaf_rn(s.neg_step_size, __fdiv_rn(exp_avg, denom), param);
}

// The element offsets of a row's first element in the four tensors, its index split once.
struct RowStarts {
  int64_t param = 0, grad = 0, exp_avg = 0, exp_avg_sq = 0;
};

__device__ __forceinline__ RowStarts row_starts(const AdamWParams& p, int64_t row) {
  RowStarts o;
#pragma unroll
  for (int d = kMaxRowDims - 1; d >= 0; --d) {
    if (d >= p.rows.ndim) continue;
    const int64_t index = d > 0 ? row % p.rows.extent[d] : row;
    if (d > 0) row /= p.rows.extent[d];
    o.param += index * p.param_strides.stride[d];
    o.grad += index * p.grad_strides.stride[d];
    o.exp_avg += index * p.exp_avg_strides.stride[d];
    o.exp_avg_sq += index * p.exp_avg_sq_strides.stride[d];
  }
  return o;
}

// G: the grad's element type. VEC: elements per pack (4, or 1 for views no pack fits).
// UNROLL: packs per thread (4 / VEC), all loaded before the first is used.
template <class G, int VEC, int UNROLL>
__global__ void __launch_bounds__(kBlockThreads)
    adamw_kernel(const AdamWParams p, const StepScalars s, const Tiling t) {
  using FloatPack = Pack<float, VEC>;
  using GradPack = Pack<G, VEC>;
  const int64_t block = blockIdx.x + int64_t{blockIdx.y} * gridDim.x;
  const int64_t row_group = block / t.chunks_per_row;
  const int64_t chunk = block - row_group * t.chunks_per_row;
  const int64_t row = row_group * (kBlockThreads / t.lanes_per_row) + threadIdx.x / t.lanes_per_row;
  if (row >= p.rows.count) return;  // no barrier follows, so a thread may leave alone

  const RowStarts start = row_starts(p, row);
  float* param = p.param + start.param;
  const G* grad = static_cast<const G*>(p.grad) + start.grad;
  float* exp_avg = p.exp_avg + start.exp_avg;
  float* exp_avg_sq = p.exp_avg_sq + start.exp_avg_sq;
  auto* param_packs = reinterpret_cast<FloatPack*>(param);
  auto* grad_packs = reinterpret_cast<const GradPack*>(grad);
  auto* exp_avg_packs = reinterpret_cast<FloatPack*>(exp_avg);
  auto* exp_avg_sq_packs = reinterpret_cast<FloatPack*>(exp_avg_sq);

  const int64_t whole_packs = p.columns / VEC;
  const int64_t first = chunk * t.lanes_per_row * UNROLL + threadIdx.x % t.lanes_per_row;
  FloatPack pr[UNROLL], mr[UNROLL], vr[UNROLL];
  GradPack gr[UNROLL];
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const int64_t j = first + int64_t{u} * t.lanes_per_row;
    if (j < whole_packs) {
      pr[u] = param_packs[j];
      gr[u] = grad_packs[j];
      mr[u] = exp_avg_packs[j];
      vr[u] = exp_avg_sq_packs[j];
    }
  }
#pragma unroll
  for (int u = 0; u < UNROLL; ++u) {
    const int64_t j = first + int64_t{u} * t.lanes_per_row;
    if (j < whole_packs) {
      float g[VEC];
      unpack(gr[u], g);
#pragma unroll
      for (int i = 0; i < VEC; ++i) update(pr[u].v[i], g[i], mr[u].v[i], vr[u].v[i], s);
      param_packs[j] = pr[u];
      exp_avg_packs[j] = mr[u];
      exp_avg_sq_packs[j] = vr[u];
    }
  }
  if constexpr (VEC > 1) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      if (first + int64_t{u} * t.lanes_per_row != whole_packs) continue;
      for (int64_t e = whole_packs * VEC; e < p.columns; ++e) {
        float pe = param[e], me = exp_avg[e], ve = exp_avg_sq[e];
        update(pe, to_float(grad[e]), me, ve, s);
        param[e] = pe;
        exp_avg[e] = me;
        exp_avg_sq[e] = ve;
      }
    }
  }
}

}  // namespace adamw_kernels
}  // namespace llmk
