// The launch logic of the GEMV kernels (gemv_kernels.cuh): the runtime choices (rows of x, plain or
// gated, activation) become template arguments here, in launch_gemv(), and the split of k between
// a block's warps is picked from the column tiles, k and the SM count. Each dtype's instantiation
// lives in a generated translation unit (CMakeLists.txt, gemv_instance.cu.in), so the dtypes
// compile in parallel; gemv_cuda.cu dispatches on dtype.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "core/launch.cuh"
#include "gemv_kernels.cuh"
#include "matmul.hpp"

namespace llmk {
namespace gemv_launch {

using gemv_kernels::GemvArgs;
using gemv_kernels::kWarps;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// matmul.cpp's AUTO rule weighs the one- to four-row kernels' leftover k by these groups and
// segments.
static_assert(gemv_kernels::RowWarp<__half, 1>::kGroup == kGemvRowGroup);
static_assert(gemv_kernels::RowWarp<__half, 2>::kGroup == kGatedGemvRowGroup);
static_assert(gemv_kernels::RunWarp<__half>::kSegment == kGemvRowSegment);
static_assert(gemv_kernels::PairWarp<__half, 1>::kGroup == kGemvPairGroup);
static_assert(gemv_kernels::QuadWarp<__half, 4, 1>::kGroup == kGemvQuadGroup);
static_assert(gemv_kernels::QuadWarp<__half, 8, 1>::kGroup == kGemvOctGroup);

// Warps per column tile (1, 2, 4 or 8 of a block's kWarps), never more than there are groups of
// k to share.
//
// MmaWarp's and QuadWarp's 8- or 16-column tiles: the most that keeps every block resident at once
// (one wave: a block that starts late doubles the time); when even one warp per tile needs several
// waves, the most there is (short blocks, a short last wave). For QuadWarp this took the fastest
// of 1, 2, 4 and 8 warps per tile, or came within 2.5% of it, at 14 weight shapes at four and at
// eight rows (bench/NOTES.md, issue 4's sixteenth pass).
//
// RowWarp's one-row tiles come by the thousand, many waves of short blocks, and there two warps
// per row measured best or within 2% of it at every shape tried (bench/NOTES.md); more only
// where the rows are too few to give every SM its blocks.
inline int pick_split(bool row_tiles, int64_t tiles, int64_t groups, int64_t resident_blocks) {
  auto blocks = [&](int split) { return ceil_div(tiles * split, kWarps); };
  int split = kWarps;
  if (row_tiles) {
    split = 2;
    while (split < kWarps && blocks(split) < resident_blocks) split *= 2;
  } else {
    while (split > 1 && blocks(split) > resident_blocks) split /= 2;
    if (blocks(split) > resident_blocks) split = kWarps;
  }
  while (split > 1 && split > groups) split /= 2;
  return split;
}

// RunWarp's warps per row. A split costs its waves of blocks times the batches of its runs (one
// round trip per batch of `steps` segments). One warp per row is kept unless another split costs
// under 4/5 of it: that warp finishes its row itself, with no block barrier or sum of partials,
// worth more than the model's one round trip in ten. Against 1, 2, 4 and 8 warps per row forced
// at 12 weight shapes on the H200 (bench/NOTES.md, issue 4's fourteenth pass) it took the best or
// came within 1% at each (3584 x 18944: 1 against 2); one warp was 4% ahead of two at 5120 x
// 5120, four warps 4% ahead of one at 13824 x 5120.
inline int pick_run_split(int64_t rows, int64_t segments, int steps, int64_t resident_blocks) {
  auto cost = [&](int split) {
    const int64_t waves = ceil_div(ceil_div(rows * split, kWarps), resident_blocks);
    return waves * std::max<int64_t>(1, ceil_div(ceil_div(segments, split), steps));
  };
  int best = 1;
  for (int split = 2; split <= kWarps; split *= 2) {
    if (cost(split) < cost(best)) best = split;
  }
  return 5 * cost(best) < 4 * cost(1) ? best : 1;
}

// PairWarp's warps per tile. Two warps split k's groups unevenly where their number is odd, or
// where one of them also takes the leftover k, and a block (its slots on the SM) waits for the
// longer share: there one warp per tile, as long as that fills half the resident blocks.
// Otherwise two, doubled while the blocks still fit in one wave (a partial second wave costs
// more than the shorter runs gain). Against 1, 2, 4 and 8 warps forced at 13 weight shapes at two
// rows on the H200 (bench/NOTES.md, issue 4's fifteenth pass) this took the fastest or came within
// 2.5% of it at 12; e.g. 5120 x 5120 (5 groups) 17.0 us at one warp against 18.3 at two,
// 2176 x 8192 (2 groups and 128 elements) 13.1 against 14.0, 9216 x 2304 15.3 at two against
// 17.4 at four (576 blocks for 528 slots). At 2048 x 8192 (2 groups) one warp was 4% ahead.
inline int pick_pair_split(int64_t tiles, int64_t k, int64_t resident_blocks) {
  auto blocks = [&](int split) { return ceil_div(tiles * split, kWarps); };
  const int64_t groups = k / kGemvPairGroup;
  const bool uneven = groups % 2 == 1 || k % kGemvPairGroup != 0;
  if (uneven && 2 * blocks(1) >= resident_blocks) return 1;
  int split = 2;
  while (split < kWarps && blocks(2 * split) <= resident_blocks) split *= 2;
  while (split > 1 && split > ceil_div(k, kGemvPairGroup)) split /= 2;
  return split;
}

template <class T, int ROWS, bool GATED, llmk_activation A, bool RUNS>
void launch_kernel(const char* op, const GemvArgs& args, int sm_count, cudaStream_t stream) {
  using Tile = gemv_kernels::WarpTile<T, ROWS, GATED ? 2 : 1, RUNS>;
  const int64_t tiles = ceil_div(args.n, Tile::kCols);
  const int64_t resident = int64_t{sm_count} * Tile::kMinBlocksPerSm;
  int split;
  if constexpr (RUNS) {
    split = pick_run_split(tiles, args.k / Tile::kSegment, Tile::kSteps, resident);
  } else if constexpr (std::is_same_v<Tile, gemv_kernels::PairWarp<T, GATED ? 2 : 1>>) {
    split = pick_pair_split(tiles, args.k, resident);
  } else {
    split = pick_split(Tile::kCols == 1, tiles, ceil_div(args.k, Tile::kGroup), resident);
  }
  const int64_t blocks = ceil_div(tiles * split, kWarps);
  if (blocks > INT32_MAX) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: n = %lld needs more blocks than a CUDA grid holds", op,
         static_cast<long long>(args.n));
  }
  int split_log2 = 0;
  while ((1 << split_log2) < split) ++split_log2;
  cuda_launch<gemv_kernels::gemv_kernel<T, ROWS, GATED, A, RUNS>>(
      op, static_cast<unsigned>(blocks), gemv_kernels::kBlockThreads, 0, stream, args, split_log2);
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
void launch_gemv(const char* op, const MatmulParams& p, const MatrixView* up, int sm_count,
                 cudaStream_t stream) {
  const GemvArgs args = args_of(p, up);
  const llmk_activation activation = p.activation;
  const bool gated = up != nullptr;
  // matmul's one row takes RunWarp where RowWarp would leave much of k to one warp.
  const bool runs = !std::is_same_v<T, float> && args.m == 1 && !gated &&
                    !gemv_leftover_is_small(args.k, kGemvRowGroup);
  auto run = [&](auto rows, auto is_gated, auto act) {
    constexpr int kRows = decltype(rows)::value;
    constexpr bool kGated = decltype(is_gated)::value;
    constexpr llmk_activation kActivation = decltype(act)::value;
    if constexpr (kRows == 1 && !kGated) {
      if (runs)
        return launch_kernel<T, kRows, kGated, kActivation, true>(op, args, sm_count, stream);
    }
    launch_kernel<T, kRows, kGated, kActivation, false>(op, args, sm_count, stream);
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
    fail(LLMK_ERROR_INTERNAL, "%s: activation %d reached the GEMV launcher", op, activation);
  };
  auto with_gated = [&](auto rows) {
    if (gated) return with_activation(rows, std::true_type{});
    return with_activation(rows, std::false_type{});
  };
  // f16/bf16: 1 row of x on RowWarp (or RunWarp), 2 on PairWarp, 4 or 8 on QuadWarp, 16 on
  // MmaWarp; f32: the FMA lanes' 8 or 16. Rows past m cost little.
  if constexpr (!std::is_same_v<T, float>) {
    if (args.m == 1) return with_gated(std::integral_constant<int, 1>{});
    if (args.m == 2) return with_gated(std::integral_constant<int, 2>{});
    if (args.m <= 4) return with_gated(std::integral_constant<int, 4>{});
  }
  if (args.m <= 8) return with_gated(std::integral_constant<int, 8>{});
  return with_gated(std::integral_constant<int, 16>{});
}

}  // namespace gemv_launch
}  // namespace llmk
