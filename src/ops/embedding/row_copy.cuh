// Row copies, shared by embedding (a gather: y[t] = table[ids[t]]) and the KV-cache writes (a
// scatter: cache[slot of t] = k[t]). Neither does arithmetic: both move whole rows, and their
// speed is how close they come to a device-to-device copy.
//
// A row is `units` contiguous units. A unit is the widest access (2, 4, 8 or 16 bytes) that
// divides every base address, every stride in use and the row length, so an aligned layout moves
// 16-byte packs (LDG.128 / STG.128) and any other layout moves narrower units, still whole ones.
//
// The grid is flat, as Triton/Inductor lays out a copy: a launch sees its rows end to end, unit g
// being column g - r * units of row r = g / units, and thread t of a block of kThreads takes
// units block * kThreads * kPacks + k * kThreads + t (k < kPacks). A warp's access is 32
// consecutive units whatever the row length, and no thread idles on a short row or a row's tail.
// Each unit finds its row itself, by a multiply-high and a shift (FastDiv) and one load of the
// row's index (id, sequence start or slot), which a warp's lanes mostly share (one L1 transaction).
// A thread loads 32 bytes (2 packs of one tensor, or one each of k and v; narrower units, at most 8
// accesses) and has them all in flight before its first store: at 2048 threads per SM, 64 KB per
// SM, over twice the ~25 KB Little's law asks at copy speed.
//
// All of it is 32-bit: a launch holds fewer than 2^31 units (the host splits larger calls into
// launches over consecutive rows), and rows, row lengths and the indices divided are below 2^31
// (the host refuses larger ones); only row bases are 64-bit.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "core/fast_div.hpp"
#include "core/pack.cuh"

namespace llmk {
namespace row_copy {

// Threads per block of every row copy: with 32 bytes per thread, 128 beat 256 for each op and
// dtype swept on the H200 (the launchers say by how much).
constexpr int kThreads = 128;

template <int BYTES>
struct UnitOf;
template <>
struct UnitOf<2> {
  using type = uint16_t;
};
template <>
struct UnitOf<4> {
  using type = uint32_t;
};
template <>
struct UnitOf<8> {
  using type = uint2;
};
template <>
struct UnitOf<16> {
  using type = uint4;
};
template <int BYTES>
using Unit = typename UnitOf<BYTES>::type;

// Units per thread and tensor, for PAIRS tensors copied together: 32 bytes per thread in all, in
// at most 8 accesses (16-byte units: 2 of one tensor, 1 each of two). Each unit holds a 64-bit
// target through the loads, so sixteen 2-byte units would take 72 registers: half the resident
// threads for the same bytes in flight as eight at 40.
template <class U, int PAIRS>
constexpr int kPacks = (sizeof(U) >= 4 ? 32 / static_cast<int>(sizeof(U)) : 8) / PAIRS;

// A unit made of the 32-bit `word` repeated (its low half for a 2-byte unit).
template <class U>
__device__ __forceinline__ U repeated(uint32_t word) {
  if constexpr (sizeof(U) == 2) {
    return static_cast<uint16_t>(word);
  } else if constexpr (sizeof(U) == 4) {
    return word;
  } else if constexpr (sizeof(U) == 8) {
    return make_uint2(word, word);
  } else {
    return make_uint4(word, word, word, word);
  }
}

// One launch's share of a call: `units` units (< 2^31), rows first_row, first_row + 1, ... of
// row_units.divisor units each, end to end.
struct FlatRows {
  uint32_t first_row, units;
  FastDiv row_units;
};

// What a row gets: its sources copied to its targets, its targets filled with one value (an
// embedding id out of range), or nothing (a KV destination outside the cache).
enum class RowAction { copy, fill, skip };

// A row's unit 0 in each of the PAIRS tensors copied together.
template <class U, int PAIRS>
struct RowEnds {
  const U* from[PAIRS];
  U* to[PAIRS];
};

// This thread's units of the launch: resolve(row, ends) returns the row's action and, unless it
// is skip, sets its targets (and, for copy, its sources). All loads are issued before any store.
template <class U, int PAIRS, class Resolve>
__device__ __forceinline__ void copy_units(const FlatRows& rows, const U fill, Resolve&& resolve) {
  constexpr int kN = kPacks<U, PAIRS>;
  const uint32_t first = blockIdx.x * (kThreads * kN) + threadIdx.x;  // < 2^31 + kN * kThreads
  U values[kN][PAIRS];
  U* to[kN][PAIRS];
  bool store[kN];
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    const uint32_t g = first + k * kThreads;
    store[k] = false;
    if (g < rows.units) {
      const uint32_t r = rows.row_units(g);
      const uint32_t column = g - r * rows.row_units.divisor;
      RowEnds<U, PAIRS> ends;
      const RowAction action = resolve(rows.first_row + r, ends);
      if (action != RowAction::skip) {
        store[k] = true;
#pragma unroll
        for (int p = 0; p < PAIRS; ++p) {
          to[k][p] = ends.to[p] + column;
          values[k][p] = action == RowAction::copy ? ends.from[p][column] : fill;
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kN; ++k) {
    if (store[k]) {
#pragma unroll
      for (int p = 0; p < PAIRS; ++p) *to[k][p] = values[k][p];
    }
  }
}

// --- host side ---------------------------------------------------------------------------------

// The stride's bytes where the dimension has more than one index; 0 (no constraint) otherwise.
inline uint64_t stride_bytes(int64_t extent, int64_t stride, int element_bytes) {
  return extent > 1 ? static_cast<uint64_t>(stride) * static_cast<uint64_t>(element_bytes) : 0;
}

inline uint64_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Calls launch(rows, blocks) for `rows` rows of `row_units` units, as launches of fewer than 2^31
// units over consecutive rows (one unless the call moves 2^31 units or more), each covered by
// blocks of `block_units` units.
template <class Launch>
void launch_rows(const char* op, int64_t rows, int64_t row_units, int block_units,
                 Launch&& launch) {
  if (rows > INT32_MAX || row_units > INT32_MAX) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: %lld rows of %lld units; the CUDA kernel takes at most %d of each", op,
         static_cast<long long>(rows), static_cast<long long>(row_units), INT32_MAX);
  }
  const int64_t rows_per_launch = INT32_MAX / row_units;
  const FastDiv divider(static_cast<uint32_t>(row_units));
  for (int64_t first = 0; first < rows; first += rows_per_launch) {
    const int64_t units = std::min(rows_per_launch, rows - first) * row_units;
    launch(FlatRows{static_cast<uint32_t>(first), static_cast<uint32_t>(units), divider},
           static_cast<unsigned>((units + block_units - 1) / block_units));
  }
}

// Calls f with std::integral_constant<int, bytes>: the one place a unit width becomes a type.
template <class F>
void with_unit(int bytes, F&& f) {
  switch (bytes) {
    case 16: return f(std::integral_constant<int, 16>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 2>{});
  }
}

// Calls f with a value of the index tensor's element type (int32_t or int64_t).
template <class F>
void with_index(llmk_dtype dtype, F&& f) {
  if (dtype == LLMK_DTYPE_I64) {
    f(int64_t{});
  } else {
    f(int32_t{});
  }
}

}  // namespace row_copy
}  // namespace llmk
