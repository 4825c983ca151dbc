// The launch logic of the activation kernels (activation_kernels.cuh): the runtime choices (form,
// activation, pack width) become template arguments here, in launch_activation(), which cuts a
// call too large for 32-bit pack indices into launches and describes each in packs (PackGrid).
// Each dtype's instantiation lives in a generated translation unit (CMakeLists.txt,
// activation_instance.cu.in), so the dtypes compile in parallel.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "activation_kernels.cuh"
#include "core/error.hpp"
#include "core/launch.cuh"

namespace llmk {
namespace activation_launch {

using activation_kernels::kBlockThreads;
using activation_kernels::PackGrid;

// The most packs one launch takes: its pack indices are 32-bit, FastDiv's dividends < 2^31.
constexpr int64_t kMaxLaunchPacks = INT32_MAX;

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

// Calls launch(q) for pieces q of p of at most max_packs packs of vec elements, each piece's
// pointers moved to its first element: p itself when it fits (with kMaxLaunchPacks, every call
// of less than 32 GiB of 16-byte packs per tensor); otherwise runs of the outermost row
// dimension's indices (one index at a time, without that dimension, when one is too large), and
// a lone row too long, in runs of columns.
template <class Launch>
void for_each_piece(const ActivationParams& p, int vec, size_t element, int64_t max_packs,
                    const Launch& launch) {
  const int64_t per_row = p.n / vec;
  if (p.rows.count <= max_packs / per_row) return launch(p);
  const auto moved = [element](auto* ptr, int64_t elements) {
    return ptr == nullptr ? ptr
                          : reinterpret_cast<decltype(ptr)>(reinterpret_cast<uintptr_t>(ptr) +
                                                            elements * element);
  };
  if (p.rows.ndim == 0) {  // one row
    for (int64_t column = 0; column < per_row; column += max_packs) {
      ActivationParams q = p;
      q.n = std::min(max_packs, per_row - column) * vec;
      q.x = moved(p.x, column * vec);
      q.bias = moved(p.bias, column * vec);
      q.up = moved(p.up, column * vec);
      q.y = moved(p.y, column * vec);
      for_each_piece(q, vec, element, max_packs, launch);
    }
    return;
  }
  const int64_t outer = p.rows.extent[0], inner = p.rows.count / outer;
  const int64_t run = std::max<int64_t>(1, max_packs / per_row / inner);
  for (int64_t i = 0; i < outer; i += run) {
    ActivationParams q = p;
    q.x = moved(p.x, i * p.x_strides.stride[0]);
    q.up = moved(p.up, i * p.up_strides.stride[0]);
    q.y = moved(p.y, i * p.y_strides.stride[0]);
    if (run == 1) {  // index i alone: rows of the remaining dimensions
      const auto drop_outermost = [](int64_t(&a)[kMaxRowDims]) {
        std::copy(a + 1, a + kMaxRowDims, a);
        a[kMaxRowDims - 1] = 0;  // unused extents and strides are 0
      };
      q.rows.ndim = p.rows.ndim - 1;
      drop_outermost(q.rows.extent);
      drop_outermost(q.x_strides.stride);
      drop_outermost(q.up_strides.stride);
      drop_outermost(q.y_strides.stride);
      q.rows.count = inner;
    } else {
      q.rows.extent[0] = std::min(run, outer - i);
      q.rows.count = q.rows.extent[0] * inner;
    }
    for_each_piece(q, vec, element, max_packs, launch);
  }
}

// A piece's launch (pack_width makes n a multiple of VEC).
template <class T, int VEC>
PackGrid pack_grid(const ActivationParams& q) {
  PackGrid g;
  g.x = q.x;
  g.second = q.form == ActivationForm::gated ? q.up : q.bias;
  g.y = q.y;
  g.row_of = FastDiv(static_cast<uint32_t>(q.n / VEC));
  g.packs = static_cast<uint32_t>(q.rows.count * g.row_of.divisor);
  g.ndim = q.rows.ndim;
  for (int d = 0; d < kMaxRowDims; ++d) {
    g.extent[d] = FastDiv(d < q.rows.ndim ? static_cast<uint32_t>(q.rows.extent[d]) : 1);
    g.x_stride[d] = q.x_strides.stride[d] * int64_t{sizeof(T)};
    g.up_stride[d] = q.up_strides.stride[d] * int64_t{sizeof(T)};
    g.y_stride[d] = q.y_strides.stride[d] * int64_t{sizeof(T)};
  }
  return g;
}

template <llmk_activation A>
using ActivationConstant = std::integral_constant<llmk_activation, A>;
template <ActivationForm F>
using FormConstant = std::integral_constant<ActivationForm, F>;

// The one place where runtime choices become template arguments.
template <class T>
void launch_activation(const ActivationParams& p, cudaStream_t stream) {
  const char* op = p.form == ActivationForm::gated ? "gated_activation" : "bias_activation";
  auto run = [&](auto vec, auto form, auto activation) {
    constexpr int kVec = decltype(vec)::value;
    constexpr int64_t kPackSpan =
        int64_t{kBlockThreads} * activation_kernels::kPacksPerThread<T, kVec>;
    for_each_piece(p, kVec, sizeof(T), kMaxLaunchPacks, [&](const ActivationParams& q) {
      const PackGrid g = pack_grid<T, kVec>(q);
      cuda_launch<activation_kernels::activation_kernel<T, kVec, decltype(form)::value,
                                                        decltype(activation)::value>>(
          op, static_cast<unsigned>(ceil_div(g.packs, kPackSpan)), kBlockThreads, 0, stream, g);
    });
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
