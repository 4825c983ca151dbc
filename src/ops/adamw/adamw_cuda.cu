// The CUDA backend of AdamW: the step's scalars rounded to f32, the tiling of the rows, and the
// one place where the runtime choices (grad dtype, 16-byte packs or single elements) become the
// kernel's template arguments (adamw_kernels.cuh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "adamw.hpp"
#include "adamw_kernels.cuh"
#include "core/cuda_util.hpp"
#include "core/launch.cuh"
#include "core/pack.cuh"

namespace llmk {
namespace {

using adamw_kernels::kBlockThreads;
using adamw_kernels::StepScalars;
using adamw_kernels::Tiling;

// Elements per thread: one 16-byte pack (four f32), or four single elements where no pack fits;
// a long row thus goes to blocks of 1024 elements, the shape the H200 measured fastest
// (adamw_kernels.cuh says why). The packed kernel takes ~40 registers, so six blocks share an SM
// with 96 KB of loads in flight (f32 grads): about three times what covers DRAM latency at copy
// bandwidth (~36 B/ns per SM of an H200 for ~1 us).
constexpr int kElementsPerThread = 4;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

uint64_t address(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr); }

// Whether 4-element packs fit every row of every tensor: 16 bytes for the f32 tensors, 4 grad
// elements (8 or 16 bytes) for grad. Unused row strides are 0 and do not constrain.
bool packs_fit(const AdamWParams& p, size_t grad_bytes) {
  auto fits = [](const void* base, const RowStrides& strides, size_t element) {
    return pack_elements(element, {address(base), strides.stride[0] * element,
                                   strides.stride[1] * element, strides.stride[2] * element}) >= 4;
  };
  return fits(p.param, p.param_strides, 4) && fits(p.exp_avg, p.exp_avg_strides, 4) &&
         fits(p.exp_avg_sq, p.exp_avg_sq_strides, 4) && fits(p.grad, p.grad_strides, grad_bytes);
}

// The scalars rounded to f32 where torch rounds its Python floats: at the kernel's arguments.
StepScalars step_scalars(const AdamWParams& p) {
  StepScalars s;
  s.decay = static_cast<float>(p.decay);
  s.lerp_weight = static_cast<float>(1.0 - p.beta1);
  s.lerp_complement = 1.0f - s.lerp_weight;
  s.lerp_from_start = s.lerp_weight < 0.5f;
  s.beta2 = static_cast<float>(p.beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - p.beta2);
  s.inv_bias_correction2_sqrt = static_cast<float>(1.0 / p.bias_correction2_sqrt);
  s.eps = static_cast<float>(p.eps);
  s.neg_step_size = static_cast<float>(-p.step_size);
  return s;
}

// A grid of `blocks` blocks: x up to 2^31 - 1, then whole rows of x in y.
dim3 grid_of(int64_t blocks) {
  const int64_t x = std::min<int64_t>(blocks, INT32_MAX);
  const int64_t y = ceil_div(blocks, x);
  if (y > 65535) {
    fail(LLMK_ERROR_UNSUPPORTED, "adamw_step: %lld blocks are more than a CUDA grid holds",
         static_cast<long long>(blocks));
  }
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
}

template <class G, int VEC>
void launch(const AdamWParams& p, cudaStream_t stream) {
  constexpr int kUnroll = kElementsPerThread / VEC;
  const int64_t packs = ceil_div(p.columns, VEC);  // the last one may be a partial pack
  // The fewest lanes (a power of two) that cover a row in kUnroll packs each, so that short rows
  // share a block and a long row is cut into chunks of a whole block.
  int lanes = 1;
  while (lanes < kBlockThreads && lanes * int64_t{kUnroll} < packs) lanes *= 2;
  const Tiling tiling{lanes, ceil_div(packs, int64_t{lanes} * kUnroll)};
  const int64_t row_groups = ceil_div(p.rows.count, kBlockThreads / lanes);
  cuda_launch<adamw_kernels::adamw_kernel<G, VEC, kUnroll>>(
      "adamw_step", grid_of(row_groups * tiling.chunks_per_row), kBlockThreads, 0, stream, p,
      step_scalars(p), tiling);
}

template <class G>
void launch_for_grad(const AdamWParams& p, cudaStream_t stream) {
  if (packs_fit(p, sizeof(G))) {
    launch<G, 4>(p, stream);
  } else {
    launch<G, 1>(p, stream);
  }
}

}  // namespace

void adamw_cuda(const AdamWParams& p, void* stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.grad_dtype) {
    case LLMK_DTYPE_F32: launch_for_grad<float>(p, stream); break;
    case LLMK_DTYPE_F16: launch_for_grad<__half>(p, stream); break;
    case LLMK_DTYPE_BF16: launch_for_grad<__nv_bfloat16>(p, stream); break;
    default:
      fail(LLMK_ERROR_INTERNAL, "adamw_cuda: grad dtype %d reached the backend", p.grad_dtype);
  }
}

}  // namespace llmk
