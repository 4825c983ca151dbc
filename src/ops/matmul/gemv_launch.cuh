// The launch logic of the GEMV kernels (gemv_kernels.cuh): the runtime choices (rows of x, plain or
// gated, activation) become template arguments here, in launch_gemv(), and the split of k between
// a block's warps is picked from the column tiles, k and the SM count. Each dtype's instantiation
// lives in a generated translation unit (CMakeLists.txt, gemv_instance.cu.in), so the dtypes
// compile in parallel; gemv_cuda.cu dispatches on dtype.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "gemv_kernels.cuh"
#include "matmul.hpp"

namespace llmk {
namespace gemv_launch {

using gemv_kernels::GemvArgs;
using gemv_kernels::kWarps;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Warps per column tile: the most that keeps every block resident at once (one wave: a block
// that starts late doubles the time); when even one warp per tile needs several waves, the most
// there is (short blocks, a short last wave); never more than there are groups of k to share.
inline int pick_split(int64_t tiles, int64_t groups, int64_t resident_blocks) {
  auto blocks = [&](int split) { return ceil_div(tiles * split, kWarps); };
  int split = kWarps;
  while (split > 1 && blocks(split) > resident_blocks) split /= 2;
  if (blocks(split) > resident_blocks) split = kWarps;
  while (split > 1 && split > groups) split /= 2;
  return split;
}

template <class T, int ROWS, bool GATED, llmk_activation A>
void launch_kernel(const GemvArgs& args, int sm_count, cudaStream_t stream) {
  using Tile = gemv_kernels::WarpTile<T, ROWS, GATED ? 2 : 1>;
  const int64_t tiles = ceil_div(args.n, Tile::kCols);
  const int64_t resident = int64_t{sm_count} * gemv_kernels::kMinBlocksPerSm<T>;
  const int split = pick_split(tiles, ceil_div(args.k, Tile::kGroup), resident);
  const int64_t blocks = ceil_div(tiles * split, kWarps);
  if (blocks > INT32_MAX) {
    fail(LLMK_ERROR_UNSUPPORTED, "matmul: n = %lld needs more blocks than a CUDA grid holds",
         static_cast<long long>(args.n));
  }
  gemv_kernels::gemv_kernel<T, ROWS, GATED, A>
      <<<static_cast<unsigned>(blocks), gemv_kernels::kBlockThreads, 0, stream>>>(args, split);
}

template <llmk_activation A>
using ActivationConstant = std::integral_constant<llmk_activation, A>;

// The kernel's arguments: p's, and for gated_gemv (up != NULL) the up weight's.
inline GemvArgs args_of(const MatmulParams& p, const MatrixView* up) {
  GemvArgs args{};
  args.a = p.a.data;
  args.lda = p.a.ld;
  args.w[0] = p.b.data;
  args.ldw[0] = p.b.ld;
  if (up != nullptr) {
    args.w[1] = up->data;
    args.ldw[1] = up->ld;
  }
  args.c = p.c.data;
  args.ldc = p.c.ld;
  args.d = const_cast<void*>(p.d.data);  // the output view
  args.ldd = p.d.ld;
  args.bias = p.bias;
  args.n = p.n;
  args.k = p.k;
  args.m = static_cast<int>(p.m);
  args.alpha = p.alpha;
  args.beta = p.beta;
  return args;
}

// The one place where the runtime choices of a dtype become template arguments: p's rows and
// activation, and whether it is gated_gemv's gate (up != NULL).
template <class T>
void launch_gemv(const MatmulParams& p, const MatrixView* up, int sm_count, cudaStream_t stream) {
  const GemvArgs args = args_of(p, up);
  const llmk_activation activation = p.activation;
  const bool gated = up != nullptr;
  auto run = [&](auto rows, auto is_gated, auto act) {
    launch_kernel<T, decltype(rows)::value, decltype(is_gated)::value, decltype(act)::value>(
        args, sm_count, stream);
  };
  auto with_activation = [&](auto rows, auto is_gated) {
    switch (activation) {
      case LLMK_ACTIVATION_IDENTITY:
        return run(rows, is_gated, ActivationConstant<LLMK_ACTIVATION_IDENTITY>{});
      case LLMK_ACTIVATION_GELU:
        return run(rows, is_gated, ActivationConstant<LLMK_ACTIVATION_GELU>{});
      case LLMK_ACTIVATION_GELU_TANH:
        return run(rows, is_gated, ActivationConstant<LLMK_ACTIVATION_GELU_TANH>{});
      case LLMK_ACTIVATION_SILU:
        return run(rows, is_gated, ActivationConstant<LLMK_ACTIVATION_SILU>{});
      case LLMK_ACTIVATION_RELU:
        return run(rows, is_gated, ActivationConstant<LLMK_ACTIVATION_RELU>{});
    }
    fail(LLMK_ERROR_INTERNAL, "matmul: activation %d reached the GEMV launcher", activation);
  };
  // 8 rows of x (one mma B tile; the f32 lanes' 8 rows) or 16: rows past m cost little.
  auto with_gated = [&](auto rows) {
    if (gated) return with_activation(rows, std::true_type{});
    return with_activation(rows, std::false_type{});
  };
  if (args.m <= 8) return with_gated(std::integral_constant<int, 8>{});
  return with_gated(std::integral_constant<int, 16>{});
}

}  // namespace gemv_launch
}  // namespace llmk
