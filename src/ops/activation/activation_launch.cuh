// The launch logic of the activation kernels (activation_kernels.cuh): the runtime choices (form,
// activation, pack width) become template arguments here, in launch_activation(), and the tile
// and grid are picked from the row length, the row count and the SM count. Each dtype's
// instantiation lives in a generated translation unit (CMakeLists.txt, activation_instance.cu.in),
// so the dtypes compile in parallel.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "activation_kernels.cuh"
#include "core/error.hpp"

namespace llmk {
namespace activation_launch {

using activation_kernels::kBlockThreads;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int exact_log2(int power_of_two) {
  return power_of_two > 1 ? 1 + exact_log2(power_of_two / 2) : 0;
}

// The widest pack (elements, up to 16 bytes) that every data pointer, row stride and the row
// length allow.
inline int pack_width(const ActivationParams& p, size_t element) {
  const auto address = [](const void* ptr) { return reinterpret_cast<uint64_t>(ptr); };
  uint64_t strides = 0;  // the OR of every row stride in bytes: its lowest bit is what matters
  for (int d = 0; d < p.rows.ndim; ++d) {
    strides |= static_cast<uint64_t>(p.x_strides.stride[d] | p.y_strides.stride[d] |
                                     p.up_strides.stride[d]) *
               element;
  }
  return pack_elements(element, {address(p.x), address(p.y), address(p.bias), address(p.up),
                                 strides, static_cast<uint64_t>(p.n) * element});
}

// How rows map onto blocks: threads_per_row threads (a power of two up to a warp, so short rows
// share a block; or whole warps up to max_threads, a block's most) hold a chunk of a row at
// 2^packs_shift packs each, a row too long for one block is cut into equal chunks, and
// rows_per_block rows share a block.
struct Tile {
  int packs_shift, threads_per_row, rows_per_block;
  int64_t chunks;  // per row

  int64_t blocks(int64_t rows) const { return chunks * ceil_div(rows, rows_per_block); }
};

inline Tile tile_for(int64_t packs, int packs_shift, int max_threads) {
  Tile tile;
  tile.packs_shift = packs_shift;
  const int packs_per_thread = 1 << packs_shift;
  const int64_t threads = ceil_div(packs, packs_per_thread);
  if (threads <= 32) {
    tile.threads_per_row = 1;
    while (tile.threads_per_row < threads) tile.threads_per_row *= 2;
  } else {
    const int64_t chunks = ceil_div(threads, max_threads);
    tile.threads_per_row = static_cast<int>(ceil_div(ceil_div(threads, chunks), 32) * 32);
  }
  tile.rows_per_block = std::max(1, max_threads / tile.threads_per_row);
  tile.chunks = ceil_div(packs, int64_t{tile.threads_per_row} * packs_per_thread);
  return tile;
}

// The most packs per thread and the biggest chunks, if that gives every SM a block. A smaller
// call (one decode token: 1 x 11008 would be 2 blocks) is bound by latency, not bandwidth, and
// a thread's loads, math and stores run one after another: it goes faster spread thinner, first
// with fewer packs per thread, then down to two-warp chunks, until it covers the SMs.
inline Tile pick_tile(int64_t packs, int64_t rows, int max_packs_shift, int sm_count) {
  Tile tile = tile_for(packs, max_packs_shift, kBlockThreads);
  for (int shift = max_packs_shift - 1; shift >= 0 && tile.blocks(rows) < sm_count; --shift) {
    tile = tile_for(packs, shift, kBlockThreads);
  }
  for (int threads = kBlockThreads / 2; threads >= 64 && tile.blocks(rows) < sm_count;
       threads /= 2) {
    tile = tile_for(packs, 0, threads);
  }
  return tile;
}

// Chunks along x; row groups along y, then z once y is full.
inline dim3 grid_for(const Tile& tile, int64_t rows) {
  const int64_t groups = ceil_div(rows, tile.rows_per_block);
  const int64_t y = std::min<int64_t>(groups, 65535);
  const int64_t z = ceil_div(groups, y);
  if (tile.chunks > INT32_MAX || z > 65535) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "activation: %lld rows of %lld chunks need more blocks than a CUDA grid holds",
         static_cast<long long>(rows), static_cast<long long>(tile.chunks));
  }
  return dim3(static_cast<unsigned>(tile.chunks), static_cast<unsigned>(y),
              static_cast<unsigned>(z));
}

template <llmk_activation A>
using ActivationConstant = std::integral_constant<llmk_activation, A>;
template <ActivationForm F>
using FormConstant = std::integral_constant<ActivationForm, F>;

// The one place where runtime choices become template arguments.
template <class T>
void launch_activation(const ActivationParams& p, int sm_count, cudaStream_t stream) {
  auto run = [&](auto vec, auto form, auto activation) {
    constexpr int kVec = decltype(vec)::value;
    constexpr ActivationForm kForm = decltype(form)::value;
    const Tile tile =
        pick_tile(p.n / kVec, p.rows.count,
                  exact_log2(activation_kernels::kMaxPacksPerThread<T, kVec, kForm>), sm_count);
    const dim3 block(tile.threads_per_row, tile.rows_per_block);
    activation_kernels::activation_kernel<T, kVec, kForm, decltype(activation)::value>
        <<<grid_for(tile, p.rows.count), block, 0, stream>>>(p, tile.packs_shift);
  };
  auto with_activation = [&](auto vec, auto form) {
    switch (p.activation) {
      case LLMK_ACTIVATION_IDENTITY:
        return run(vec, form, ActivationConstant<LLMK_ACTIVATION_IDENTITY>{});
      case LLMK_ACTIVATION_GELU: return run(vec, form, ActivationConstant<LLMK_ACTIVATION_GELU>{});
      case LLMK_ACTIVATION_GELU_TANH:
        return run(vec, form, ActivationConstant<LLMK_ACTIVATION_GELU_TANH>{});
      case LLMK_ACTIVATION_SILU: return run(vec, form, ActivationConstant<LLMK_ACTIVATION_SILU>{});
      case LLMK_ACTIVATION_RELU: return run(vec, form, ActivationConstant<LLMK_ACTIVATION_RELU>{});
    }
    fail(LLMK_ERROR_INTERNAL, "activation: activation %d reached the launcher", p.activation);
  };
  auto with_form = [&](auto vec) {
    switch (p.form) {
      case ActivationForm::plain:
        return with_activation(vec, FormConstant<ActivationForm::plain>{});
      case ActivationForm::bias: return with_activation(vec, FormConstant<ActivationForm::bias>{});
      case ActivationForm::gated:
        return with_activation(vec, FormConstant<ActivationForm::gated>{});
    }
  };
  switch (pack_width(p, sizeof(T))) {
    case 1: return with_form(std::integral_constant<int, 1>{});
    case 2: return with_form(std::integral_constant<int, 2>{});
    case 4: return with_form(std::integral_constant<int, 4>{});
    default:
      if constexpr (sizeof(T) == 2) return with_form(std::integral_constant<int, 8>{});
      fail(LLMK_ERROR_INTERNAL, "activation: no pack width for %d-byte elements",
           static_cast<int>(sizeof(T)));
  }
}

}  // namespace activation_launch
}  // namespace llmk
