// Row copies, shared by embedding (a gather: y[t] = table[ids[t]]) and the KV-cache writes (a
// scatter: cache[slot of t] = k[t]). Neither does arithmetic: both move whole rows, and their
// speed is how close they come to a device-to-device copy.
//
// A row is `units` contiguous units. A unit is the widest access (2, 4, 8 or 16 bytes) that
// divides every base address, every stride in use and the row length, so an aligned layout moves
// 16-byte packs (LDG.128 / STG.128) and any other layout moves narrower units, still whole ones.
//
// A group of 2^k threads owns a row (k chosen so that one pass covers the row when it can), and
// a block holds 256 / 2^k such rows. Each thread issues all the loads of a pass (kChunks units per
// tensor: 64 bytes in 16-byte packs) before its first store, so with up to 2048 threads per SM
// about 128 KB per SM are in flight, several times what Little's law asks at copy bandwidth.
// The index that picks the row is read once per thread of its group, never per unit; the group's
// threads read the same address, one broadcast transaction per warp.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"

namespace llmk {
namespace row_copy {

constexpr int kBlockThreads = 256;

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

// Units per thread and pass, for each tensor copied: 64 bytes, at most 16 accesses.
template <int BYTES>
constexpr int kChunks = BYTES >= 4 ? 64 / BYTES : 16;

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

template <class U>
__device__ __forceinline__ const U* at_byte(const void* base, int64_t offset) {
  return reinterpret_cast<const U*>(static_cast<const char*>(base) + offset);
}

template <class U>
__device__ __forceinline__ U* at_byte(void* base, int64_t offset) {
  return reinterpret_cast<U*>(static_cast<char*>(base) + offset);
}

// q = n / d and r = n % d for n >= 0, d > 0: in 32 bits when both fit, which is the usual case
// and several times cheaper than the 64-bit division routine.
__device__ __forceinline__ void divide(int64_t n, int64_t d, int64_t& q, int64_t& r) {
  if (((n | d) >> 32) == 0) {
    const uint32_t q32 = static_cast<uint32_t>(n) / static_cast<uint32_t>(d);
    q = q32;
    r = n - int64_t{q32} * d;
  } else {
    q = n / d;
    r = n - q * d;
  }
}

// This thread's row and its place in the row's group of 2^log2_threads threads. The grid is
// 2-D only past 2^31 - 1 blocks: y counts whole rows of x.
struct RowThread {
  int64_t row;
  int lane, threads;
};

__device__ __forceinline__ RowThread row_thread(int log2_threads) {
  const int64_t block = blockIdx.x + int64_t{blockIdx.y} * gridDim.x;
  return {block * (blockDim.x >> log2_threads) + (threadIdx.x >> log2_threads),
          static_cast<int>(threadIdx.x & ((1u << log2_threads) - 1)), 1 << log2_threads};
}

// Copies one row of `units` units from each from[p] to to[p]: all loads of a pass, then its
// stores.
template <class U, int PAIRS>
__device__ __forceinline__ void copy_row(const RowThread& t, int64_t units,
                                         const U* const (&from)[PAIRS], U* const (&to)[PAIRS]) {
  constexpr int kPassChunks = kChunks<sizeof(U)>;
  for (int64_t first = t.lane; first < units; first += int64_t{kPassChunks} * t.threads) {
    U values[PAIRS][kPassChunks];
#pragma unroll
    for (int c = 0; c < kPassChunks; ++c) {
      const int64_t i = first + int64_t{c} * t.threads;
      if (i < units) {
#pragma unroll
        for (int p = 0; p < PAIRS; ++p) values[p][c] = from[p][i];
      }
    }
#pragma unroll
    for (int c = 0; c < kPassChunks; ++c) {
      const int64_t i = first + int64_t{c} * t.threads;
      if (i < units) {
#pragma unroll
        for (int p = 0; p < PAIRS; ++p) to[p][i] = values[p][c];
      }
    }
  }
}

template <class U>
__device__ __forceinline__ void fill_row(const RowThread& t, int64_t units, U* to, U value) {
  for (int64_t i = t.lane; i < units; i += t.threads) to[i] = value;
}

// --- host side ---------------------------------------------------------------------------------

// The stride's bytes where the dimension has more than one index; 0 (no constraint) otherwise.
inline uint64_t stride_bytes(int64_t extent, int64_t stride, int element_bytes) {
  return extent > 1 ? static_cast<uint64_t>(stride) * static_cast<uint64_t>(element_bytes) : 0;
}

inline uint64_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// The grid for `rows` rows of `units` units: the fewest threads per row (a power of two, at most
// a block) that cover a row in one pass of `chunks` units each.
struct RowLaunch {
  int log2_threads;
  dim3 grid;
};

inline RowLaunch row_launch(const char* op, int64_t rows, int64_t units, int chunks) {
  RowLaunch l{0, dim3()};
  while ((1 << l.log2_threads) < kBlockThreads && (int64_t{chunks} << l.log2_threads) < units) {
    ++l.log2_threads;
  }
  const int64_t rows_per_block = kBlockThreads >> l.log2_threads;
  const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
  const int64_t x = std::min<int64_t>(blocks, INT32_MAX);
  const int64_t y = (blocks + x - 1) / x;
  if (y > 65535) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: %lld rows are more than a CUDA grid holds", op,
         static_cast<long long>(rows));
  }
  l.grid = dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
  return l;
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
