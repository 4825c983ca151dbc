// The launch logic of the normalization kernels (norm_kernels.cuh): the runtime choices (op,
// 16-byte packs or single elements, packs per thread, parameters early or late) become template
// arguments here, in launch(). Each dtype's instantiation lives in a generated translation unit
// (CMakeLists.txt, norm_instance.cu.in), so the dtypes compile in parallel.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "core/launch.cuh"
#include "norm_kernels.cuh"

namespace llmk {
namespace norm_launch {

using norm_kernels::kMaxBlockThreads;

// Packs per thread: four 16-byte packs per thread keep several loads in flight within ~64
// registers; eight no longer fit in registers. Rows longer than kMaxBlockThreads * kMaxChunks packs
// (16384 bf16/f16, 8192 f32) take the two-pass kernel.
constexpr int kMaxChunks = 4;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

inline bool rows_aligned16(const void* base, const RowStrides& strides, int ndim, size_t element) {
  if (!aligned16(base)) return false;
  for (int d = 0; d < ndim; ++d) {
    if (strides.stride[d] * element % 16 != 0) return false;
  }
  return true;
}

// Elements per 16-byte pack if every row of every tensor starts 16-byte aligned and rows are
// whole packs; otherwise 1 (element-wise access, still correct, slower).
inline int pack_width(const NormParams& p, size_t element) {
  const int width = static_cast<int>(16 / element);
  const bool fits = p.hidden % width == 0 && aligned16(p.weight) &&
                    (p.bias == nullptr || aligned16(p.bias)) &&
                    rows_aligned16(p.x, p.x_strides, p.rows.ndim, element) &&
                    rows_aligned16(p.y, p.y_strides, p.rows.ndim, element) &&
                    (p.kind != NormKind::add_rms ||
                     rows_aligned16(p.residual, p.residual_strides, p.rows.ndim, element));
  return fits ? width : 1;
}

// A grid of `blocks` blocks, one per row group: x up to 2^31 - 1, then whole rows in y.
inline dim3 grid_of(int64_t blocks) {
  const int64_t x = std::min<int64_t>(blocks, INT32_MAX);
  const int64_t y = (blocks + x - 1) / x;
  if (y > 65535) {
    fail(LLMK_ERROR_UNSUPPORTED, "norm: %lld blocks of rows are more than a CUDA grid holds",
         static_cast<long long>(blocks));
  }
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
}

// Below this many row groups per multiprocessor the GPU is not full and latency rules.
constexpr int kBlocksToFill = 2;

// With many rows, whether to load the weight (and bias) packs together with the row rather than
// after the reduction. Early loads spare each row a second, dependent trip to L2 but hold ~24 more
// registers (rms_norm bf16: 63 instead of 40). Measured on an H200 (bench/NOTES.md, v7): in blocks
// of at most 256 threads rms_norm and add_rms_norm still keep 24-32 warps per SM resident and gain
// 1-5%; in wider blocks (rows past 8192 16-bit elements) they drop to 2 blocks per SM and lose up
// to 18%; layer_norm, whose bias packs cost another 16 registers, loses 20% either way.
inline bool load_parameters_early(NormKind kind, bool few_rows, int block_threads) {
  if (few_rows) return true;
  return kind != NormKind::layer && block_threads <= 256;
}

// How rows are spread over threads. With many rows, a row takes the fewest threads (whole warps)
// that hold it in at most kMaxChunks packs each, so every thread has several loads in flight, and
// blocks take ~256 threads. Below kBlocksToFill such blocks per multiprocessor the GPU is not full
// and a row's latency is what counts: each row gets a block of its own and as many threads as its
// packs (up to kMaxBlockThreads), which shortens each thread's reduction and its stores (a lone
// 1 x 4096 bf16 row: 0.3 us less than two rows of 4 packs per thread, bench/NOTES.md).
struct RowLaunch {
  int threads_per_row, chunks, rows_per_block;
  int64_t row_groups;
  bool few_rows;
};

inline RowLaunch row_launch(int64_t packs, int64_t rows, int sm_count) {
  RowLaunch l;
  l.threads_per_row = static_cast<int>(
      std::clamp<int64_t>(ceil_div(ceil_div(packs, kMaxChunks), 32) * 32, 32, kMaxBlockThreads));
  l.rows_per_block = std::max(1, 256 / l.threads_per_row);
  l.row_groups = ceil_div(rows, l.rows_per_block);
  l.few_rows = l.row_groups < int64_t{kBlocksToFill} * sm_count;
  if (l.few_rows) {
    l.threads_per_row =
        static_cast<int>(std::clamp<int64_t>(ceil_div(packs, 32) * 32, 32, kMaxBlockThreads));
    l.rows_per_block = 1;
    l.row_groups = rows;
  }
  l.chunks = static_cast<int>(ceil_div(packs, l.threads_per_row));
  return l;
}

// The one place where runtime choices become template arguments.
template <NormKind K, class T>
void launch(const char* op, const NormParams& p, int sm_count, cudaStream_t stream) {
  constexpr int kPack = 16 / sizeof(T);
  const int width = pack_width(p, sizeof(T));
  const int64_t packs = p.hidden / width;
  if (packs > int64_t{kMaxBlockThreads} * kMaxChunks) {
    cuda_launch<norm_kernels::norm_long_rows_kernel<K, T>>(op, grid_of(p.rows.count),
                                                           kMaxBlockThreads, 0, stream, p);
    return;
  }
  const RowLaunch l = row_launch(packs, p.rows.count, sm_count);
  const dim3 grid = grid_of(l.row_groups), block(l.threads_per_row, l.rows_per_block);
  const bool early = load_parameters_early(K, l.few_rows, l.threads_per_row * l.rows_per_block);
  auto run = [&](auto vec, auto chunks, auto early) {
    cuda_launch<norm_kernels::norm_rows_kernel<K, T, decltype(vec)::value, decltype(chunks)::value,
                                               decltype(early)::value>>(op, grid, block, 0, stream,
                                                                        p);
  };
  auto with_early = [&](auto vec, auto chunks) {
    if (early) {
      run(vec, chunks, std::true_type{});
    } else {
      run(vec, chunks, std::false_type{});
    }
  };
  auto with_chunks = [&](auto vec) {
    if (l.chunks <= 1) {
      with_early(vec, std::integral_constant<int, 1>{});
    } else if (l.chunks <= 2) {
      with_early(vec, std::integral_constant<int, 2>{});
    } else {
      with_early(vec, std::integral_constant<int, 4>{});
    }
  };
  if (width == kPack) {
    with_chunks(std::integral_constant<int, kPack>{});
  } else {
    with_chunks(std::integral_constant<int, 1>{});
  }
}

// Every kernel of one dtype; generated/norm_<dtype>.cu instantiates it.
template <class T>
void launch_norm(const char* op, const NormParams& p, int sm_count, cudaStream_t stream) {
  switch (p.kind) {
    case NormKind::rms: return launch<NormKind::rms, T>(op, p, sm_count, stream);
    case NormKind::add_rms: return launch<NormKind::add_rms, T>(op, p, sm_count, stream);
    case NormKind::layer: return launch<NormKind::layer, T>(op, p, sm_count, stream);
  }
}

}  // namespace norm_launch
}  // namespace llmk
