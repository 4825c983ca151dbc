// The launch logic of the activation kernels (activation_kernels.cuh): the runtime choices (form,
// activation, pack width) become template arguments here, in launch(), and the tile and grid are
// picked from the row length and count. Each dtype's instantiation lives in a generated
// translation unit (CMakeLists.txt, activation_instance.cu.in), so the dtypes compile in
// parallel.
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
// share a block; or whole warps up to a block) hold a chunk of a row at packs_per_thread packs
// each, a row too long for one block is cut into equal chunks, and rows_per_block rows share a
// block.
struct Tile {
  int threads_per_row, rows_per_block;
  int64_t chunks;  // per row
};

inline Tile tile_for(int64_t packs, int packs_per_thread) {
  Tile tile;
  const int64_t threads = ceil_div(packs, packs_per_thread);
  if (threads <= 32) {
    tile.threads_per_row = 1;
    while (tile.threads_per_row < threads) tile.threads_per_row *= 2;
  } else {
    const int64_t chunks = ceil_div(threads, kBlockThreads);
    tile.threads_per_row = static_cast<int>(ceil_div(ceil_div(threads, chunks), 32) * 32);
  }
  tile.rows_per_block = std::max(1, kBlockThreads / tile.threads_per_row);
  tile.chunks = ceil_div(packs, int64_t{tile.threads_per_row} * packs_per_thread);
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
void launch_activation(const ActivationParams& p, cudaStream_t stream) {
  auto run = [&](auto vec, auto form, auto activation) {
    constexpr int kVec = decltype(vec)::value;
    constexpr int kPacks = activation_kernels::kPacksPerThread<T, kVec>;
    const Tile tile = tile_for(p.n / kVec, kPacks);
    const dim3 block(tile.threads_per_row, tile.rows_per_block);
    activation_kernels::activation_kernel<T, kVec, decltype(form)::value,
                                          decltype(activation)::value>
        <<<grid_for(tile, p.rows.count), block, 0, stream>>>(p);
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
