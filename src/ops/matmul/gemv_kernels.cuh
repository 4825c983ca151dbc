// The decode GEMV engine of llmk_matmul, and gated_mlp's fused gate/up GEMV.
//
// The math, for a few rows (m <= 16) of activations x [m, k] and an nn.Linear weight W [n, k]
// (B = W^T: each column of B is a row of W in memory):
//   matmul:  D[i, j] = a(alpha * sum_k x[i, k] W[j, k] + beta * C[i, j] + bias[j])
//   gated:   h[i, j] = a(sum_k x[i, k] Wg[j, k]) * (sum_k x[i, k] Wu[j, k])
// accumulated in f32, each output rounded once; a is computed as bias_activation computes it
// (activation_kernels.cuh's activate: accurate for f32 outputs, the fast forms for f16/bf16).
//
// The trick: this is a stream of W. At m = 1, K = 4096, N = 11008 fp16, W is 90 MB and x 8 KB,
// so the kernel must read W once at HBM speed and do everything else under that stream. On the
// H200 the fastest pure read of those 90 MB measured 23.7-24.4 us (~3.75 TB/s), by 16-byte loads
// and by TMA bulk copies alike; that is the floor. It is ~4.4 us of fixed cost (an empty kernel,
// event-timed alike, takes 3.5 us; the rest is the DRAM pipeline's fill and drain, which a 1 GiB
// copy hides) plus ~19.7 us of streaming at ~4.58 TB/s. Four things decide how close the kernel
// gets:
//
//  1. Bytes in flight. By Little's law ~4 TB/s at 1-1.5 us of loaded latency needs 4-6 MB in
//     flight, 32-50 KB per SM. Each thread issues its 16-byte loads of W (4 to 8) before it uses
//     any, with ld.global.nc.L1::no_allocate (W is read once; x keeps L1), and 24 to 32 warps fit
//     per SM: ~96-128 KB in flight per SM. The warps of a block may split k between them
//     (`split`) and add their partial sums through shared memory at the end.
//
//  2. Arithmetic off the critical path, on the tensor cores for f16/bf16 (mma.sync.m16n8k16 with
//     f32 accumulators: no conversion of W, no shuffles along k), in four tile shapes:
//     - RowWarp (m = 1): a warp streams one row of W, 512 contiguous bytes per load, the
//       pattern of the fastest pure read, and uses only the diagonal of each mma (below).
//       RunWarp is its form for rows that leave much of k over.
//     - PairWarp (m = 2): a warp streams two rows of W, 256 contiguous bytes of each per load,
//       and one set of diagonal mmas pairs both with both rows of x.
//     - QuadWarp (m = 3-8): a warp streams 8 rows of W (16 for m > 4), 128 contiguous bytes of
//       each per load, and each mma pairs eight of them with four rows of x, half its products
//       useful.
//     - MmaWarp (m = 9-16): a warp streams 16 rows of W as the 16-row A operand, x^T as two
//       8-column B operands, every product useful. The fragment layout has each quad of lanes
//       read 64 bytes of one row per load: 16 rows per load, 5-10% slower as a pure read, but
//       QuadWarp's one pair of W row sets with four B tiles (four loads of x per two of W) ran
//       slower at 13 of 14 weight shapes at m = 16, by up to 1.5x.
//     The mma's fragment layout wants each thread to hold elements {2t, 2t+1, 2t+8, 2t+9} of a
//     16-wide k slab, not 16 contiguous bytes; but a dot product does not care in which order k
//     is summed, as long as W and x are permuted alike. So a thread loads 16 contiguous bytes of
//     W and the same 16 bytes' positions of x, and feeds elements 0-3 to one mma and 4-7 to the
//     next. f32 must be multiplied in full f32, so it takes the FMA pipe (FmaWarp below) and
//     reduces across lanes once, at the end.
//
//  3. Waves. MmaWarp's and QuadWarp's 8- or 16-column tiles are few (688 or 1376 at N = 11008):
//     the launcher picks the split that keeps every block resident at once, as a block that
//     starts late doubles the time.
//     RowWarp's one-row tiles are many, and many short blocks keep the SMs fed as well: a
//     persistent grid with double-buffered loads measured 5-10% slower, one holding x in
//     registers 1-2% faster (not worth a second kernel), and blocks of 16 or 32 warps 2-20%
//     slower (bench/NOTES.md, issue 4's fourth and seventh passes).
//
//  4. A block's first loads leave at once. RowWarp's blocks are short (at K = 4096 each warp
//     issues one group of loads and is done) and five waves of them run, so whatever a block
//     computes before its first load is paid five times over, with nothing in flight: the split
//     is a shift, not a division, and the plain kernel's k tail comes after its main loop. The
//     first load moved from the kernel's 217th instruction to its 71st: 26.2 -> 25.2 us at M = 1.
//     The SASS decides the rest (RowWarp below): read it after any change to these loops.
//
// Edges: a column past n reads row n - 1 (in bounds, same sectors) and writes nothing; x rows past
// m read row m - 1 (L1 hits) and their outputs are dropped; the last k % kGroup elements go
// element by element, zero past k in both operands (what lies past k may be NaN), so k needs no
// alignment and k = 0 sums to 0. Only x's and W's pointers and leading dimensions are 16-byte
// aligned (gemv_can_run): C, D and bias move element by element in the epilogue, which is tiny.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/pack.cuh"
#include "ops/activation/activation_kernels.cuh"

namespace llmk {
namespace gemv_kernels {

constexpr int kWarps = 8;  // per block
constexpr int kBlockThreads = kWarps * 32;

// What one launch computes; pointers of the dtype, leading dimensions in elements.
struct GemvArgs {
  const void* a;     // x: [m, k], row-major
  const void* w[2];  // W (or Wg) and Wu: [n, k], row-major (the [k, n] column-major B views)
  const void* c;     // [m, n], row-major; read only when beta != 0
  const void* bias;  // [n] or NULL
  void* d;           // [m, n], row-major
  int64_t lda, ldw[2], ldc, ldd;
  int64_t n, k;
  int m;
  float alpha, beta;
};

// A 16-byte load of weights: read once, so kept out of L1 (x lives there). MmaWarp's 4 lanes of
// a row read 64 contiguous bytes per load and 256 per group: the L2::256B hint fetches the
// group's whole 256 bytes on the first miss (measured on the H200: 30.2 -> 28.6 us at M = 1).
// RowWarp's warp reads 512 contiguous bytes per load, and there the hint costs ~4% (a pure read
// of the 90 MB weight: 24.7 us without, 25.9 with).
template <bool PREFETCH_256B>
__device__ __forceinline__ uint4 load_streaming(const void* ptr) {
  uint4 v;
  if constexpr (PREFETCH_256B) {
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
  } else {
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
  }
  return v;
}

// A 16-byte load of x, cached: every warp of every column tile reads it again.
__device__ __forceinline__ uint4 load_cached(const void* ptr) {
  return __ldg(static_cast<const uint4*>(ptr));
}

// The 16 bytes at ptr, element by element, zero from element `valid` on (valid may be <= 0):
// the k tail, where neither operand may be read past k.
template <class T>
__device__ __forceinline__ uint4 load_partial(const T* ptr, int valid) {
  constexpr int kVec = 16 / sizeof(T);
  Pack<T, kVec> pack;
#pragma unroll
  for (int e = 0; e < kVec; ++e) pack.v[e] = e < valid ? ptr[e] : from_float<T>(0.0f);
  uint4 v;
  memcpy(&v, &pack, 16);
  return v;
}

// c += A B for one m16n8k16 tile: A in the 4 registers of the PTX fragment layout, B in 2.
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                          uint32_t a3, uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>);
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// The warps of a column tile take groups of k in turn (slice, slice + split, ...; split is a power
// of two), and the one whose turn the group after the last whole one would be also sums the
// k % kGroup elements left: its main loop stops with its pointers at them. (Asking the loop's
// counter instead, group == groups after the loop, is the same answer, but ptxas then scheduled
// RowWarp's loads differently and M = 1 took 0.7 us longer: bench/NOTES.md.)
__device__ __forceinline__ bool owns_tail(int groups, int slice, int split) {
  return (groups & (split - 1)) == slice;
}

// RowWarp's and RunWarp's products (see RowWarp): elements 0-3 and 4-7 of a lane's 16 bytes of W
// as A row g of two mmas (rows g + 8 repeat them), x's at the same positions as B column g, so
// that c's diagonal gathers each lane quad's partial dot product.
template <class T>
__device__ __forceinline__ void diagonal_mmas(float (&c)[4], uint4 w, uint4 x) {
  mma_16816<T>(c, w.x, w.x, w.y, w.y, x.x, x.y);
  mma_16816<T>(c, w.z, w.z, w.w, w.w, x.z, x.w);
}

// The dot product diagonal_mmas accumulated in c: the diagonal (lane 4g + g / 2, accumulator
// g % 2) summed across the warp; every lane gets it.
__device__ __forceinline__ float diagonal_sum(const float (&c)[4], int lane) {
  const int g = lane / 4, t = lane % 4;
  float sum = t == g / 2 ? (g % 2 == 0 ? c[0] : c[1]) : 0.0f;  // selects: no local memory
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  return sum;
}

// f16/bf16 for one row of x, where a pure read of W is the whole cost: a warp's tile is one
// output column, W row j (gated: Wg row j and Wu row j), and each of its loads reads 512
// contiguous bytes of the row, the pattern of the fastest pure read of W measured
// (bench/NOTES.md). The products still go through the tensor cores, which need no conversion:
// lane l = 4g + t holds elements 8l .. 8l + 7 of a 256-element segment, and one m16n8k16 takes
// elements 0-3 of every lane as A row g (a0, a2; rows g + 8 repeat them and are ignored) and x's
// elements at the same positions as B column g (b0, b1). Then D[g][g] = sum over the quad g of
// W . x: the diagonal of D holds 8 partial dot products, one per lane quad, and the rest of D is
// waste. The tensor cores do 16x the useful work: 2 mmas per load of the warp, ~4 clocks of an
// SM's tensor cores (mma.sync on the H200) against the ~27 clocks its share of the stream takes
// per 512 bytes, and far fewer instructions than converting every element for the FMA pipe. (A
// second row of x would take two more mmas per load: PairWarp pairs two rows in the same two.)
// At the end the 8 diagonal values (lane 4g + g / 2, accumulator g % 2) are summed across the
// warp.
template <class T, int MATS>
struct RowWarp {
  static constexpr int kCols = 1;
  static constexpr int kSegment = 256;  // elements: one load of the warp, 512 bytes
  // Registers: 4 accumulators per weight beside the loads in flight. One weight fits 8 loads of
  // W per lane in 64 registers (32 warps per SM, 4 KB in flight each); two, 4 loads each in 80
  // (24 warps).
  static constexpr int kMinBlocksPerSm = MATS == 1 ? 4 : 3;
  static constexpr int kSteps = 8 / MATS;  // loads per weight in flight
  static constexpr int kGroup = kSteps * kSegment;

  // As MmaWarp's, into partial[MATS]: the sums of W row j0 (gated: Wg row j0, Wu row j0) with x
  // over the groups slice, slice + split, ...
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32;
    const T* w[MATS];
#pragma unroll
    for (int mat = 0; mat < MATS; ++mat) {
      w[mat] = static_cast<const T*>(p.w[mat]) + j0 * p.ldw[mat] + 8 * lane;
    }
    const T* x = static_cast<const T*>(p.a) + 8 * lane;
    float acc[MATS][4] = {};

    auto step = [&](const uint4(&wv)[MATS], uint4 xv) {
#pragma unroll
      for (int mat = 0; mat < MATS; ++mat) diagonal_mmas<T>(acc[mat], wv[mat], xv);
    };

    // As MmaWarp: every split-th group, and the tail (owns_tail), `offset` elements from the
    // pointers. Where the tail goes was measured, not derived (H200, M = 1, bench/NOTES.md): after
    // the loop, the plain kernel's first loads leave sooner (25.2 against 25.8 us); before it,
    // ptxas issues all 8 loads of a gated group before the group's first mma, where after it, it
    // issued 6 and waited for the first (gate and up: 44.7 against 48.4 us).
    constexpr bool kTailFirst = MATS == 2;
    auto advance = [&](int elements) {
#pragma unroll
      for (int mat = 0; mat < MATS; ++mat) w[mat] += elements;
      x += elements;
    };
    const int groups = static_cast<int>(p.k / kGroup);
    auto tail = [&](int64_t offset) {
      const int64_t rest = p.k - int64_t{groups} * kGroup;
      for (int k0 = 0; k0 < rest; k0 += kSegment) {
        const int valid = static_cast<int>(rest - k0) - 8 * lane;
        uint4 wv[MATS];
#pragma unroll
        for (int mat = 0; mat < MATS; ++mat) wv[mat] = load_partial(w[mat] + offset + k0, valid);
        step(wv, load_partial(x + offset + k0, valid));
      }
    };
    const bool owns = owns_tail(groups, slice, split);
    if (kTailFirst && owns) tail(int64_t{groups} * kGroup);
    advance(slice * kGroup);
    for (int group = slice; group < groups; group += split) {
      uint4 wv[kSteps][MATS];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
#pragma unroll
        for (int mat = 0; mat < MATS; ++mat) {
          wv[s][mat] = load_streaming<false>(w[mat] + kSegment * s);
        }
      }
#pragma unroll
      for (int s = 0; s < kSteps; ++s) step(wv[s], load_cached(x + kSegment * s));
      advance(split * kGroup);
    }
    if (!kTailFirst && owns) tail(0);

#pragma unroll
    for (int mat = 0; mat < MATS; ++mat) {
      const float sum = diagonal_sum(acc[mat], lane);
      if (lane == 0) partial[mat] = sum;
    }
  }
};

// RowWarp's tile for one row of x and one weight (matmul at m = 1), where RowWarp would leave
// much of k to one warp: k % kGroup over a tenth of k, or all of a k under kGroup (the launcher
// decides, gemv_launch.cuh). The loads, the diagonal mmas and the final sum are RowWarp's; what
// changes is who reads which part of the row. Its k / kSegment whole segments are cut into `split`
// contiguous runs of ceil(segments / split), one per warp (the last runs shorter or empty), and
// each run is read in batches of up to kSteps segments, all of a batch's loads issued before its
// first mma: every warp makes the same number of round trips to DRAM, whatever k % kGroup is. The
// last warp also sums the k % kSegment elements after the last segment, element by element.
// (RowWarp keeps its own loop: every rewrite of it that served both cases slowed the shapes
// without a leftover by 1.5-13%, bench/NOTES.md, issue 4's eleventh pass.)
template <class T>
struct RunWarp {
  static constexpr int kCols = 1;
  static constexpr int kSegment = RowWarp<T, 1>::kSegment;
  // Batches of 4 segments at 64 registers (32 warps per SM): ptxas issues all of a batch's loads
  // before its first mma. With RowWarp's 8 it issued 3 and waited on the first (and spilled); at 80
  // registers (24 warps) it issued 7, and measured at most 2% faster than batches of 4 at 11
  // weight shapes, and up to 12% slower (H200, bench/NOTES.md).
  static constexpr int kMinBlocksPerSm = 4;
  static constexpr int kSteps = 4;

  // partial[0]: the sum of W row j0 with x over this warp's run (and the leftover for the last).
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32;
    // The warp's index, broadcast from lane 0, so that ptxas knows the run's bounds are the same
    // in every lane: from threadIdx.x it cannot, and it put a WARPSYNC before every mma. (The
    // same broadcast for the whole kernel cost RowWarp and MmaWarp up to 8% and RunWarp at four
    // warps per row 1.5%, their code scheduled differently: bench/NOTES.md.)
    slice = __shfl_sync(0xffffffffu, slice, 0);
    const int segments = static_cast<int>(p.k / kSegment);  // < 2^31: see MmaWarp
    const int per_warp = (segments + split - 1) >> __popc(split - 1);
    const int begin = slice * per_warp, end = min(begin + per_warp, segments);
    const T* const w_row = static_cast<const T*>(p.w[0]) + j0 * p.ldw[0] + 8 * lane;
    const T* const x_row = static_cast<const T*>(p.a) + 8 * lane;
    float acc[4] = {};
    auto step = [&](uint4 wv, uint4 xv) { diagonal_mmas<T>(acc, wv, xv); };

    const T* w = w_row + int64_t{kSegment} * begin;
    const T* x = x_row + kSegment * begin;
    for (int left = end - begin; left > 0; left -= kSteps) {
      uint4 wv[kSteps];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        if (s < left) wv[s] = load_streaming<false>(w + kSegment * s);
      }
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        if (s < left) step(wv[s], load_cached(x + kSegment * s));
      }
      w += kSteps * kSegment;
      x += kSteps * kSegment;
    }
    const int rest = static_cast<int>(p.k % kSegment);
    if (slice == split - 1 && rest != 0) {
      const int64_t k0 = int64_t{kSegment} * segments;
      step(load_partial(w_row + k0, rest - 8 * lane), load_partial(x_row + k0, rest - 8 * lane));
    }

    const float sum = diagonal_sum(acc, lane);
    if (lane == 0) partial[0] = sum;
  }
};

// f16/bf16 for two rows of x: RowWarp's stream with every useful product in one set of mmas. A
// warp's tile is two W rows, one per half-warp: rows j0 and j0 + 1 of W, or, gated, row j0 of Wg
// and of Wu. Each load reads 256 contiguous bytes of each: lane l = 4g + t holds elements 8 (l %
// 16) .. 8 (l % 16) + 7 of a 128-element segment of W row l / 16, and x row l / 16's elements at
// the same positions. diagonal_mmas then puts in A row g W row g / 4 at the positions of quad g %
// 4, and in B column n x row n / 4 at those of quad n % 4; D[g][n] is a useful partial dot product
// wherever g % 4 == n % 4: both W rows with both x rows, 16 of each mma's 128 products, where
// RowWarp at two rows takes two mmas per x row for 8 each. The per-load cost is RowWarp's at one
// row: one 16-byte load of W, one of x, two mmas.
template <class T, int MATS>
struct PairWarp {
  static constexpr int kCols = 2 / MATS;  // per weight
  static constexpr int kSegment = 128;    // elements of each row per load of the warp
  // As RowWarp's single dot product: 8 loads of W per lane in 64 registers.
  static constexpr int kMinBlocksPerSm = 4;
  static constexpr int kSteps = 8;
  static constexpr int kGroup = kSteps * kSegment;

  // As MmaWarp's, into partial[2 W rows][2 x rows]; W row c is column c % kCols of weight
  // c / kCols.
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32, half = lane / 16, column = 8 * (lane % 16);
    // Gated, the half-warp's weight is known at run time only: a select, as p.w[half] would copy
    // p to local memory.
    const bool up = MATS == 2 && half == 1;
    const T* w = static_cast<const T*>(up ? p.w[1] : p.w[0]) +
                 min(j0 + (MATS == 2 ? 0 : half), p.n - 1) * (up ? p.ldw[1] : p.ldw[0]) + column;
    const T* x = static_cast<const T*>(p.a) + min(half, p.m - 1) * p.lda + column;
    float acc[4] = {};

    const int groups = static_cast<int>(p.k / kGroup);
    w += int64_t{slice} * kGroup;
    x += slice * kGroup;
    for (int group = slice; group < groups; group += split) {
      uint4 wv[kSteps];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) wv[s] = load_streaming<false>(w + kSegment * s);
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        diagonal_mmas<T>(acc, wv[s], load_cached(x + kSegment * s));
      }
      w += int64_t{split} * kGroup;
      x += split * kGroup;
    }
    if (owns_tail(groups, slice, split)) {  // w and x stand at the leftover
      const int rest = static_cast<int>(p.k - int64_t{groups} * kGroup);
      for (int k0 = 0; k0 < rest; k0 += kSegment) {
        const int valid = rest - k0 - column;
        diagonal_mmas<T>(acc, load_partial(w + k0, valid), load_partial(x + k0, valid));
      }
    }

    // Lane 4g + t holds D[g][2t .. 2t + 1] in acc[0 .. 1]; D[g][2t + g % 2] is useful when
    // t % 2 == g / 2 % 2, and then it belongs to W row g / 4 and x row t / 2: lane bits 4 and 1.
    // The sum over the other bits (0, 2, 3) leaves each pair's dot product in lanes 0, 2, 16, 18.
    const int g = lane / 4, t = lane % 4;
    float sum = t % 2 == g / 2 % 2 ? (g % 2 == 0 ? acc[0] : acc[1]) : 0.0f;
    for (const int offset : {1, 4, 8}) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if ((lane & 0b1101) == 0) partial[half * 2 + t / 2] = sum;
  }
};

// f16/bf16 for three to eight rows of x: PairWarp's pairing one level further, with both halves of
// the mma's A operand in use. Quarter q of the warp (lanes 8q .. 8q + 7) reads W rows j0 + q
// (A rows g = 2q, 2q + 1) and j0 + 4 + q (A rows g + 8), 128 contiguous bytes of each per load.
// Lane l = 4g + t holds elements 8 (l % 8) .. 8 (l % 8) + 7 of a 64-element segment, and x row q's
// elements at the same positions, so B column n holds x row n / 2 at the positions of quad n % 2
// of its quarter: D[g][n] is a useful partial dot product wherever g % 2 == n % 2, 64 of each mma's
// 128 products. A B tile holds four rows of x: at ROWS = 4, a warp's tile is one such pair of W
// row sets, 8 rows (gated: rows j0 .. j0 + 3 of Wg and of Wu), and a step is two 16-byte loads of
// W, one of x and two mmas. At ROWS = 8 it is two pairs, 16 W rows (gated: 8 of Wg, 8 of Wu), whose
// mmas share two B tiles: four loads of W, two of x, eight mmas, the ratio of x to W of MmaWarp
// at m = 8. MmaWarp reads 64 bytes of a row per load, and its 16 rows per load stream 5-10% slower
// than these 128-byte runs: at m = 5-8 this tile measured 1.01-1.15x faster at 14 weight shapes
// (bench/NOTES.md, issue 4's sixteenth pass).
template <class T, int ROWS, int MATS>
struct QuadWarp {
  static_assert(ROWS == 4 || ROWS == 8);
  static constexpr int kTiles = ROWS / 4;          // B tiles: x rows 4b .. 4b + 3
  static constexpr int kPairs = ROWS / 4;          // W row sets (A rows g, g + 8) per quarter
  static constexpr int kCols = 8 * kPairs / MATS;  // per weight
  static constexpr int kSegment = 64;              // elements of each W row per load of the warp
  // 8 loads of W per lane in flight. ROWS = 4 fits them in 80 registers (24 warps per SM), and
  // spilled at 64; ROWS = 8 needs 106 (16 warps), and spilled in its loop at 80.
  static constexpr int kMinBlocksPerSm = ROWS == 4 ? 3 : 2;
  static constexpr int kSteps = 4 / kPairs;
  static constexpr int kGroup = kSteps * kSegment;

  // As MmaWarp's, into partial[kCols * MATS W rows][ROWS]; W row c is column c % kCols of weight
  // c / kCols, and W row set (pair, half) holds W rows 8 pair + 4 half + q.
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32, quarter = lane / 8, column = 8 * (lane % 8);
    const T* w[kPairs][2];
#pragma unroll
    for (int pair = 0; pair < kPairs; ++pair) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int c = 8 * pair + 4 * half;  // the set's first W row; a multiple of 4, as kCols
        const bool up = c / kCols == 1;     // a select: p.w[c / kCols] would copy p to memory
        const int64_t j = min(j0 + c % kCols + quarter, p.n - 1);
        w[pair][half] =
            static_cast<const T*>(up ? p.w[1] : p.w[0]) + j * (up ? p.ldw[1] : p.ldw[0]) + column;
      }
    }
    const T* x[kTiles];
#pragma unroll
    for (int b = 0; b < kTiles; ++b) {
      x[b] = static_cast<const T*>(p.a) + min(4 * b + quarter, p.m - 1) * p.lda + column;
    }
    float acc[kPairs][kTiles][4] = {};
    auto step = [&](const uint4(&wv)[kPairs][2], const uint4(&xv)[kTiles]) {
#pragma unroll
      for (int pair = 0; pair < kPairs; ++pair) {
        const uint4 lo = wv[pair][0], hi = wv[pair][1];
#pragma unroll
        for (int b = 0; b < kTiles; ++b) {
          mma_16816<T>(acc[pair][b], lo.x, hi.x, lo.y, hi.y, xv[b].x, xv[b].y);
          mma_16816<T>(acc[pair][b], lo.z, hi.z, lo.w, hi.w, xv[b].z, xv[b].w);
        }
      }
    };
    auto advance = [&](int64_t elements) {
#pragma unroll
      for (int pair = 0; pair < kPairs; ++pair) {
        w[pair][0] += elements;
        w[pair][1] += elements;
      }
#pragma unroll
      for (int b = 0; b < kTiles; ++b) x[b] += elements;
    };

    const int groups = static_cast<int>(p.k / kGroup);
    advance(int64_t{slice} * kGroup);
    for (int group = slice; group < groups; group += split) {
      uint4 wv[kSteps][kPairs][2];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
#pragma unroll
        for (int pair = 0; pair < kPairs; ++pair) {
          wv[s][pair][0] = load_streaming<false>(w[pair][0] + kSegment * s);
          wv[s][pair][1] = load_streaming<false>(w[pair][1] + kSegment * s);
        }
      }
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        uint4 xv[kTiles];
#pragma unroll
        for (int b = 0; b < kTiles; ++b) xv[b] = load_cached(x[b] + kSegment * s);
        step(wv[s], xv);
      }
      advance(int64_t{split} * kGroup);
    }
    if (owns_tail(groups, slice, split)) {  // w and x stand at the leftover
      const int rest = static_cast<int>(p.k - int64_t{groups} * kGroup);
      for (int k0 = 0; k0 < rest; k0 += kSegment) {
        const int valid = rest - k0 - column;
        uint4 wv[kPairs][2], xv[kTiles];
#pragma unroll
        for (int pair = 0; pair < kPairs; ++pair) {
          wv[pair][0] = load_partial(w[pair][0] + k0, valid);
          wv[pair][1] = load_partial(w[pair][1] + k0, valid);
        }
#pragma unroll
        for (int b = 0; b < kTiles; ++b) xv[b] = load_partial(x[b] + k0, valid);
        step(wv, xv);
      }
    }

    // Lane 4g + t holds D[g][2t .. 2t + 1] in acc[0 .. 1] and D[g + 8][..] in acc[2 .. 3]; the
    // useful one is acc[g % 2] (acc[2 + g % 2]): the set's W row q with x row 4b + t. Its other
    // half is in the lane of the quarter's other quad: lane bit 2.
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int pair = 0; pair < kPairs; ++pair) {
#pragma unroll
      for (int b = 0; b < kTiles; ++b) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          float sum = g % 2 == 0 ? acc[pair][b][2 * half] : acc[pair][b][2 * half + 1];
          sum += __shfl_xor_sync(0xffffffffu, sum, 4);
          if ((lane & 4) == 0) partial[(8 * pair + 4 * half + quarter) * ROWS + 4 * b + t] = sum;
        }
      }
    }
  }
};

// f16/bf16 on the tensor cores (see the top of the file). A warp's tile is the mma's 16 A rows,
// 16 W rows: columns j0 .. j0 + 15 of W, or, gated, columns j0 .. j0 + 7 of Wg (A rows 0-7) and
// of Wu (A rows 8-15), so that a thread's accumulator holds gate and up of the same outputs and
// the gated kernel costs the registers of the plain one. By 16 rows of x, two B tiles (up to
// eight rows QuadWarp streams W faster). A step is 32 elements of k; a group is the kSteps steps
// whose 8 loads of W a thread issues before its first mma.
template <class T, int MATS>
struct MmaWarp {
  static constexpr int kRows = 16;           // of x
  static constexpr int kCols = 16 / MATS;    // per weight
  static constexpr int kMinBlocksPerSm = 3;  // 80 registers, 24 warps, ~96 KB of W in flight
  static constexpr int kTiles = kRows / 8;
  static constexpr int kSteps = 4;
  static constexpr int kGroup = kSteps * 32;

  // Adds slice `slice` of `split` (groups slice, slice + split, ...) of the tile's sums, and
  // stores them in partial[16 A rows][kRows]; A row r is column r % kCols of weight r / kCols.
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const T* w[2];  // A rows g and g + 8, from this thread's 8 elements on
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int mat = MATS == 2 ? half : 0;
      const int64_t j = min(j0 + g + (MATS == 2 ? 0 : 8 * half), p.n - 1);
      w[half] = static_cast<const T*>(p.w[mat]) + j * p.ldw[mat] + 8 * t;
    }
    const T* x[kTiles];  // rows g and g + 8
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      x[tile] = static_cast<const T*>(p.a) + min(g + 8 * tile, p.m - 1) * p.lda + 8 * t;
    }
    float acc[kTiles][4] = {};

    // The 16 bytes at each k0 + 32 s + 8t feed two mmas: elements 0-3 and 4-7 play the fragment
    // elements {2t, 2t+1, 2t+8, 2t+9} of a 16-wide k slab, for W and x alike.
    auto step = [&](const uint4(&wv)[2], const uint4(&xv)[kTiles]) {
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) {
        mma_16816<T>(acc[tile], wv[0].x, wv[1].x, wv[0].y, wv[1].y, xv[tile].x, xv[tile].y);
        mma_16816<T>(acc[tile], wv[0].z, wv[1].z, wv[0].w, wv[1].w, xv[tile].z, xv[tile].w);
      }
    };

    // Groups slice, slice + split, ...: the pointers advance by split groups at a time. The loads
    // of the first group are the first thing a warp issues.
    auto advance = [&](int elements) {
      w[0] += elements;
      w[1] += elements;
#pragma unroll
      for (int tile = 0; tile < kTiles; ++tile) x[tile] += elements;
    };
    const int groups =
        static_cast<int>(p.k / kGroup);  // < 2^31: a row of 2^38 elements is > 256 GB
    advance(slice * kGroup);
    for (int group = slice; group < groups; group += split) {
      uint4 wv[kSteps][2];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        wv[s][0] = load_streaming<true>(w[0] + 32 * s);
        wv[s][1] = load_streaming<true>(w[1] + 32 * s);
      }
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        uint4 xv[kTiles];
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) xv[tile] = load_cached(x[tile] + 32 * s);
        step(wv[s], xv);
      }
      advance(split * kGroup);
    }

    // The last k % kGroup elements, element by element (owns_tail).
    if (owns_tail(groups, slice, split)) {
      const int64_t rest = p.k - int64_t{groups} * kGroup;
      for (int k0 = 0; k0 < rest; k0 += 32) {
        const int valid = static_cast<int>(rest - k0) - 8 * t;
        uint4 wv[2], xv[kTiles];
        wv[0] = load_partial(w[0] + k0, valid);
        wv[1] = load_partial(w[1] + k0, valid);
#pragma unroll
        for (int tile = 0; tile < kTiles; ++tile) xv[tile] = load_partial(x[tile] + k0, valid);
        step(wv, xv);
      }
    }

    // The accumulator fragment: c0, c1 at A row g, x rows 2t and 2t + 1; c2, c3 at A row g + 8.
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int a_row = g + 8 * (r / 2), row = 8 * tile + 2 * t + r % 2;
        partial[a_row * kRows + row] = acc[tile][r];
      }
    }
  }
};

__device__ __forceinline__ float4 as_float4(uint4 v) {
  float4 f;
  memcpy(&f, &v, 16);
  return f;
}

// Sums each of the N values across LANES lanes (a power of two, the low bits of the lane), N /
// LANES values per lane: at each level a lane keeps the half of its values its lane bit selects and
// adds its partner's copy of that half, so it costs N - N / LANES shuffles instead of N
// log2(LANES). Afterwards lane l holds the sums of values (l % LANES) * N / LANES onwards, in v[0
// .. N / LANES). Recursive so that every loop bound is a constant before the compiler unrolls the
// inner loop.
template <int LANES, int HALF, int N>
__device__ __forceinline__ void butterfly_sum(float (&v)[N], int lane) {
  if constexpr (LANES > 1) {
    const bool upper = lane & (LANES / 2);
#pragma unroll
    for (int e = 0; e < HALF; ++e) {
      const float lo = v[e], hi = v[e + HALF];
      const float send = upper ? lo : hi, keep = upper ? hi : lo;
      v[e] = keep + __shfl_xor_sync(0xffffffffu, send, LANES / 2);
    }
    butterfly_sum<LANES / 2, HALF / 2>(v, lane);
  }
}

// f32 on the FMA pipe. A warp's tile is 4 W rows (columns j0 .. j0 + 3 of W, or j0 and j0 + 1 of
// Wg then of Wu) by ROWS rows of x. The lanes split into two W groups (W rows 0-1, 2-3) and
// ROWS / 8 x groups (x rows 0-7, 8-15; ROWS = 16 only when m > 8), kLanes lanes along k in each:
// a lane holds a [2][8] accumulator and 8 rows of x per step, all that fits in 128 registers
// beside its W loads (ptxas hoists the x loads of a step ahead of its FMAs). Lanes of different x
// groups load the same W addresses, which the warp's load merges into one request. A step is 4
// elements per lane along k, a group 2 steps: 4 loads of W (64 B) per lane, 32 KB per SM at 2
// blocks; half of it duplicates for ROWS = 16.
template <int ROWS, int MATS>
struct FmaWarp {
  static constexpr int kWRows = 4;
  // 128 registers: the accumulator, W loads and hoisted x rows need more than 80.
  static constexpr int kMinBlocksPerSm = 2;
  static constexpr int kCols = kWRows / MATS;  // per weight
  static constexpr int kWGroups = 2, kLaneWRows = kWRows / kWGroups;
  static constexpr int kLanes = 32 / (kWGroups * ROWS / 8);  // lanes along k
  static constexpr int kStep = kLanes * 4;
  static constexpr int kSteps = 2;
  static constexpr int kGroup = kSteps * kStep;

  // As MmaWarp's, into partial[4 W rows][ROWS]; W row c is column c % kCols of weight c / kCols.
  __device__ static void accumulate(const GemvArgs& p, int64_t j0, int slice, int split,
                                    float* partial) {
    const int lane = threadIdx.x % 32, kl = lane % kLanes;
    const int w_row0 = lane / kLanes % kWGroups * kLaneWRows, row0 = lane / kLanes / kWGroups * 8;
    const float* w[kLaneWRows];
#pragma unroll
    for (int r = 0; r < kLaneWRows; ++r) {
      // The lane's weight is known at run time only: select, as p.w[mat] would copy p to memory.
      const int c = w_row0 + r;
      const bool up = c >= kCols;
      const int64_t j = min(j0 + c % kCols, p.n - 1);
      w[r] =
          static_cast<const float*>(up ? p.w[1] : p.w[0]) + j * (up ? p.ldw[1] : p.ldw[0]) + 4 * kl;
    }
    const float* x = static_cast<const float*>(p.a) + row0 * p.lda + 4 * kl;
    float acc[kLaneWRows * 8];  // W row w_row0 + r, x row row0 + i at r * 8 + i
#pragma unroll
    for (float& a : acc) a = 0.0f;  // unrolled, or `= {}` becomes a loop that pins acc to memory

    // x row row0 + i of the step, times the lane's W rows. The x rows follow one another from xs
    // up to row m - 1, which stands in for the rows past it (L1 hits, outputs dropped): a select,
    // not a branch per row, which would keep the loads from being issued together.
    auto step = [&](const float4(&wv)[kLaneWRows], const float* xs, auto load_x) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float4 xv = load_x(xs);
        xs += row0 + i + 1 < p.m ? p.lda : 0;
#pragma unroll
        for (int r = 0; r < kLaneWRows; ++r) {
          float& a = acc[r * 8 + i];
          a = fmaf(wv[r].x, xv.x, a);
          a = fmaf(wv[r].y, xv.y, a);
          a = fmaf(wv[r].z, xv.z, a);
          a = fmaf(wv[r].w, xv.w, a);
        }
      }
    };

    // As MmaWarp: every split-th group, then the tail.
    auto advance = [&](int elements) {
#pragma unroll
      for (int r = 0; r < kLaneWRows; ++r) w[r] += elements;
      x += elements;
    };
    const int groups = static_cast<int>(p.k / kGroup);
    advance(slice * kGroup);
    for (int group = slice; group < groups; group += split) {
      float4 wv[kSteps][kLaneWRows];
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
#pragma unroll
        for (int r = 0; r < kLaneWRows; ++r) {
          wv[s][r] = as_float4(load_streaming<true>(w[r] + kStep * s));
        }
      }
#pragma unroll
      for (int s = 0; s < kSteps; ++s) {
        step(wv[s], x + kStep * s, [](const float* xs) { return as_float4(load_cached(xs)); });
      }
      advance(split * kGroup);
    }
    if (owns_tail(groups, slice, split)) {
      const int64_t rest = p.k - int64_t{groups} * kGroup;
      for (int k0 = 0; k0 < rest; k0 += kStep) {
        const int valid = static_cast<int>(rest - k0) - 4 * kl;
        float4 wv[kLaneWRows];
#pragma unroll
        for (int r = 0; r < kLaneWRows; ++r) wv[r] = as_float4(load_partial(w[r] + k0, valid));
        step(wv, x + k0, [&](const float* xs) { return as_float4(load_partial(xs, valid)); });
      }
    }

    // Lane kl now holds the k-sums of values kl * kPerLane .. kl * kPerLane + kPerLane - 1.
    constexpr int kValues = kLaneWRows * 8, kPerLane = kValues / kLanes;
    butterfly_sum<kLanes, kValues / 2>(acc, lane);
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int index = kl * kPerLane + e;
      partial[(w_row0 + index / 8) * ROWS + row0 + index % 8] = acc[e];
    }
  }
};

// D[row, j] from the sums of x row `row` with W row j (gated: with Wg and Wu rows j): alpha, beta
// * C, bias and the activation (gated: a(gate) * up), rounded once.
template <class T, bool GATED, llmk_activation A>
__device__ __forceinline__ void store_output(const GemvArgs& p, const float* sum, int row,
                                             int64_t j) {
  constexpr bool kAccurate = std::is_same_v<T, float>;
  float out;
  if constexpr (GATED) {
    out = activation_kernels::activate<A, kAccurate>(sum[0]) * sum[1];
  } else {
    float v = p.alpha * sum[0];
    if (p.beta != 0.0f) v += p.beta * to_float(static_cast<const T*>(p.c)[row * p.ldc + j]);
    if (p.bias != nullptr) v += to_float(static_cast<const T*>(p.bias)[j]);
    out = activation_kernels::activate<A, kAccurate>(v);
  }
  static_cast<T*>(p.d)[row * p.ldd + j] = from_float<T>(out);
}

// RUNS: RunWarp in place of RowWarp, for matmul's one row where k's leftover is large.
template <class T, int ROWS, int MATS, bool RUNS>
using WarpTile = std::conditional_t<
    std::is_same_v<T, float>, FmaWarp<ROWS, MATS>,
    std::conditional_t<
        (ROWS > 8), MmaWarp<T, MATS>,
        std::conditional_t<
            (ROWS >= 4), QuadWarp<T, ROWS, MATS>,
            std::conditional_t<ROWS == 2, PairWarp<T, MATS>,
                               std::conditional_t<RUNS, RunWarp<T>, RowWarp<T, MATS>>>>>>;

// The residency a kernel's tile plans with, as a constant __launch_bounds__ can take.
template <class T, int ROWS, bool GATED, bool RUNS>
constexpr int kMinBlocksPerSm = WarpTile<T, ROWS, GATED ? 2 : 1, RUNS>::kMinBlocksPerSm;

// Block: kWarps warps, kWarps / split column tiles, `split` warps per tile each summing every
// split-th group of k (RunWarp: one contiguous run of it). Grid: one block per kWarps / split
// tiles. The epilogue adds the split
// partial sums of each output in a fixed order (deterministic), applies alpha, beta * C, bias and
// the activation (gated: a(gate) * up), and rounds once.
template <class T, int ROWS, bool GATED, llmk_activation A, bool RUNS>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm<T, ROWS, GATED, RUNS>)
    gemv_kernel(const GemvArgs p, const int split_log2) {
  constexpr int MATS = GATED ? 2 : 1;
  static_assert(!RUNS || (ROWS == 1 && !GATED), "RunWarp takes one row of x and one weight");
  using Tile = WarpTile<T, ROWS, MATS, RUNS>;
  constexpr int kCols = Tile::kCols;
  constexpr int kPartials = MATS * kCols * ROWS;  // per warp: its W rows by ROWS
  __shared__ float partial[kWarps][kPartials];

  // Shifts, not divisions: a block's first loads wait on this arithmetic, once per block.
  const int split = 1 << split_log2, warp = threadIdx.x / 32;
  const int tiles_per_block = kWarps >> split_log2;
  const int64_t first_tile = int64_t{blockIdx.x} * tiles_per_block;
  const int64_t j0 = (first_tile + (warp >> split_log2)) * kCols;
  if (j0 < p.n) Tile::accumulate(p, j0, warp & (split - 1), split, partial[warp]);
  if constexpr (RUNS) {
    // One warp per row owns its output whole: lane 0 finishes it at once. Behind the block
    // barrier and the loop below, the same sum took RunWarp 0.2-0.5 us longer (bench/NOTES.md).
    if (split_log2 == 0) {
      __syncwarp();
      if (threadIdx.x % 32 == 0 && j0 < p.n) store_output<T, false, A>(p, &partial[warp][0], 0, j0);
      return;
    }
  }
  __syncthreads();

  for (int o = threadIdx.x; o < tiles_per_block * kCols * ROWS; o += kBlockThreads) {
    const int col = o % kCols, row = o / kCols % ROWS, tile = o / (kCols * ROWS);
    const int64_t j = (first_tile + tile) * kCols + col;
    if (row >= p.m || j >= p.n) continue;
    float sum[MATS] = {};
    for (int s = 0; s < split; ++s) {
#pragma unroll
      for (int mat = 0; mat < MATS; ++mat) {
        sum[mat] += partial[tile * split + s][(mat * kCols + col) * ROWS + row];
      }
    }
    store_output<T, GATED, A>(p, sum, row, j);
  }
}

}  // namespace gemv_kernels
}  // namespace llmk
