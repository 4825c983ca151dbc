// Flash attention, forward, for Hopper (sm_90a only): the math of attention_kernels.cuh
// (FlashAttention-2's online softmax) on the warpgroup tensor-core instructions.
//
// Why a second kernel: mma.sync takes both operands from registers, so the portable kernel
// moves every K and V fragment through ldmatrix into registers once per query tile, and that
// shared-memory traffic caps it near half the tensor cores' rate. wgmma reads its B operand (and
// here Q, its first A) straight from shared memory, at the full rate (FlashAttention-3's road).
//
// The tricks:
//  - Two warpgroups, 64 query rows each (a 128-row tile), 128 keys a block. S = Q K^T is
//    wgmma m64n128k16 with both operands in shared memory; O += P V is wgmma m64nDk16 with P
//    from registers: wgmma's accumulator layout is mma.sync's (attention_common.cuh), so P goes
//    from the S accumulators to A fragments with one conversion, as in the portable kernel.
//  - Q, K and V sit in shared memory in the 128-byte swizzle that wgmma reads without bank
//    conflicts: a tile is D / 64 slabs of [rows x 64 elements]; 16-byte chunk c of row r of a
//    slab is stored at chunk position c ^ (r % 8). K is wgmma's K-major B (keys along N, head_dim
//    along K), V its MN-major B (head_dim along N): the same stored layout, two descriptors.
//  - Within a warpgroup the softmax overlaps the tensor cores: each step issues S_(j+1) = Q
//    K_(j+1)^T and then O += P_j V_j, waits only for S_(j+1), and computes its softmax while
//    P_j V_j runs; O is rescaled once that finishes (FlashAttention-3's intra-warpgroup overlap).
//  - K_(j+2) and V_(j+1) are copied in (cp.async, two buffers each) while step j computes, so
//    a copy has a whole step to land; one barrier per step frees the buffers.
//  - Block order, masking and skipped key blocks are the portable kernel's (block_work).
// Soft-cap and dropout, and head_dim 96 and 256, stay on the portable kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "attention_common.cuh"

namespace llmk {
namespace attention_hopper {

// The pieces both attention kernels share (attention_common.cuh).
using attention_kernels::block_work;
using attention_kernels::BlockWork;
using attention_kernels::cp_async_16;
using attention_kernels::cp_async_commit;
using attention_kernels::cp_async_wait;
using attention_kernels::KernelArgs;
using attention_kernels::kInf;
using attention_kernels::mask_scores;
using attention_kernels::pack2;
using attention_kernels::quad_sum;
using attention_kernels::row_lse;
using attention_kernels::softmax_step;

constexpr int kWarpgroups = 2;
constexpr int kThreads = 128 * kWarpgroups;
constexpr int kBlockM = 64 * kWarpgroups;  // query rows of a block
constexpr int kBlockN = 128;               // keys of a block

// Shared memory: Q, two K buffers, two V buffers, each swizzled tiles of 1024-byte-aligned slabs;
// 1 KiB more to align the base.
template <int D>
constexpr int kTileQBytes = kBlockM* D * 2;
template <int D>
constexpr int kTileKvBytes = kBlockN* D * 2;
template <int D>
constexpr int smem_bytes() {
  return 1024 + kTileQBytes<D> + 4 * kTileKvBytes<D>;
}

// Byte offset of element (row, col) in a swizzled tile of ROWS rows.
template <int ROWS>
__device__ __forceinline__ uint32_t swizzled_offset(int row, int col) {
  return (col / 64) * ROWS * 128 + row * 128 + (((col % 64) / 8) ^ (row % 8)) * 16 + (col % 8) * 2;
}

// Copies ROWS x D elements (rows of `row_stride`) into a swizzled tile; rows at or past
// `valid_rows` become zeros. Each thread keeps one 16-byte column chunk and walks rows 8 apart
// or more, so its swizzled column is the same for every row.
template <int D, int ROWS>
__device__ __forceinline__ void load_tile(uint32_t smem, const uint16_t* gmem, int64_t row_stride,
                                          int valid_rows) {
  constexpr int kChunks = D / 8;
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(ROWS % kRowsPerPass == 0 && kRowsPerPass % 8 == 0, "whole passes, same swizzle");
  const int row0 = threadIdx.x / kChunks, chunk = threadIdx.x % kChunks;
  const uint16_t* src = gmem + row0 * row_stride + chunk * 8;
  const uint32_t dst = smem + swizzled_offset<ROWS>(row0, chunk * 8);
#pragma unroll
  for (int i = 0; i < ROWS / kRowsPerPass; ++i) {
    const bool valid = row0 + i * kRowsPerPass < valid_rows;
    cp_async_16(dst + i * kRowsPerPass * 128, valid ? src : gmem, valid);
    src += kRowsPerPass * row_stride;
  }
}

// ---- wgmma ----------------------------------------------------------------------------------

// A shared-memory matrix descriptor for the 128-byte swizzle: start address, the leading byte
// offset (between 64-element slabs along N for an MN-major operand; unused for K-major ones),
// and the stride byte offset, 1024 (between groups of 8 rows of 128 bytes).
__device__ __forceinline__ uint64_t smem_descriptor(uint32_t addr, uint32_t leading_bytes) {
  return uint64_t{(addr & 0x3FFFF) >> 4} | uint64_t{leading_bytes >> 4} << 16 |
         uint64_t{1024 >> 4} << 32 | uint64_t{1} << 62;
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most PENDING of this warpgroup's newest wgmma groups are still running.
template <int PENDING>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(PENDING) : "memory");
}
// Shared memory written through the generic proxy (cp.async, st.shared), made visible to wgmma.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// An empty asm that claims to read and write the registers: the compiler may not move their
// uses across it, which keeps an asynchronous wgmma's accumulators and A fragments in place
// until the wait that ends it.
template <int N>
__device__ __forceinline__ void pin(float (&x)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(x[i][e])::"memory");
  }
}
template <int N>
__device__ __forceinline__ void pin(uint32_t (&x)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(x[i][e])::"memory");
  }
}

#define LLMK_WGMMA_ACC2(j)                                                       \
  "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3]), "+f"(d[j + 1][0]), \
      "+f"(d[j + 1][1]), "+f"(d[j + 1][2]), "+f"(d[j + 1][3])
#define LLMK_WGMMA_ACC_N64 \
  LLMK_WGMMA_ACC2(0), LLMK_WGMMA_ACC2(2), LLMK_WGMMA_ACC2(4), LLMK_WGMMA_ACC2(6)
#define LLMK_WGMMA_ACC_N128                                                         \
  LLMK_WGMMA_ACC_N64, LLMK_WGMMA_ACC2(8), LLMK_WGMMA_ACC2(10), LLMK_WGMMA_ACC2(12), \
      LLMK_WGMMA_ACC2(14)
#define LLMK_WGMMA_REGS_N64                                                                     \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define LLMK_WGMMA_REGS_N128                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "  \
  "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "  \
  "%56, %57, %58, %59, %60, %61, %62, %63}"

// wgmma's scale-d is a predicate (d = A B when false, d += A B when true); PTX takes no
// immediate there, so each call sets one from a register operand.
#define LLMK_WGMMA(N, INSTRUCTION, OPERANDS, SCALE_D, ...)                       \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" SCALE_D ", 0;\n" INSTRUCTION \
               " " LLMK_WGMMA_REGS_N##N ", " OPERANDS ";\n}\n"                   \
               : LLMK_WGMMA_ACC_N##N                                             \
               : __VA_ARGS__)

// d (+)= A B for a 64 x 128 x 16 tile, A and B K-major in shared memory; d is overwritten when
// `accumulate` is 0.
template <class T>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[16][4], uint64_t a, uint64_t b,
                                              int accumulate) {
  if constexpr (std::is_same_v<T, __half>) {
    LLMK_WGMMA(128, "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16",
               "%64, %65, p, 1, 1, 0, 0", "66", "l"(a), "l"(b), "r"(accumulate));
  } else {
    LLMK_WGMMA(128, "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16",
               "%64, %65, p, 1, 1, 0, 0", "66", "l"(a), "l"(b), "r"(accumulate));
  }
}

// d += A B for a 64 x N x 16 tile, A from registers (mma.sync's A fragment layout, one per
// warp's 16 rows) and B MN-major in shared memory: the last 1 says B is transposed.
template <class T, int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b) {
  static_assert(N == 64 || N == 128, "O's width is head_dim 64 or 128");
  constexpr bool kHalf = std::is_same_v<T, __half>;
  if constexpr (N == 64 && kHalf) {
    LLMK_WGMMA(64, "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16",
               "{%32, %33, %34, %35}, %36, p, 1, 1, 1", "37", "r"(a[0]), "r"(a[1]), "r"(a[2]),
               "r"(a[3]), "l"(b), "r"(1));
  } else if constexpr (N == 64) {
    LLMK_WGMMA(64, "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16",
               "{%32, %33, %34, %35}, %36, p, 1, 1, 1", "37", "r"(a[0]), "r"(a[1]), "r"(a[2]),
               "r"(a[3]), "l"(b), "r"(1));
  } else if constexpr (kHalf) {
    LLMK_WGMMA(128, "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16",
               "{%64, %65, %66, %67}, %68, p, 1, 1, 1", "69", "r"(a[0]), "r"(a[1]), "r"(a[2]),
               "r"(a[3]), "l"(b), "r"(1));
  } else {
    LLMK_WGMMA(128, "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16",
               "{%64, %65, %66, %67}, %68, p, 1, 1, 1", "69", "r"(a[0]), "r"(a[1]), "r"(a[2]),
               "r"(a[3]), "l"(b), "r"(1));
  }
}

#undef LLMK_WGMMA
#undef LLMK_WGMMA_REGS_N128
#undef LLMK_WGMMA_REGS_N64
#undef LLMK_WGMMA_ACC_N128
#undef LLMK_WGMMA_ACC_N64
#undef LLMK_WGMMA_ACC2

// ---- The kernel -----------------------------------------------------------------------------

template <class T, int D>
__global__ void __launch_bounds__(kThreads, 1) attention_hopper_kernel(const KernelArgs a) {
  static_assert(D == 64 || D == 128, "head_dim 64 or 128");
  constexpr int kNTiles = kBlockN / 8;   // 8-key tiles of S
  constexpr int kDTiles = D / 8;         // 8-column tiles of O
  constexpr int kKSteps = kBlockN / 16;  // 16-key steps of P V

  extern __shared__ unsigned char smem_raw[];
  const uint32_t smem_q =
      (static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw)) + 1023) & ~uint32_t{1023};
  const uint32_t smem_k = smem_q + kTileQBytes<D>;
  const uint32_t smem_v = smem_k + 2 * kTileKvBytes<D>;

  BlockWork w;
  if (!block_work<D, kBlockM, kBlockN>(a, w)) return;

  const int warpgroup = threadIdx.x / 128, warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
  const int quad_col = 2 * (lane % 4);
  const int tile_row = warpgroup * 64 + warp * 16 + lane / 4;  // this thread's first row

  float acc_o[kDTiles][4];
  float row_max[2] = {-kInf, -kInf}, row_sum[2] = {0.f, 0.f};
#pragma unroll
  for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_o[dt][e] = 0.f;
  }

  // Step j visits key block n_end - 1 - j: the last first, as the portable kernel does.
  const int steps = w.n_end - w.n_begin;
  if (steps > 0) {
    const auto load_k = [&](int j) {
      const int col0 = (w.n_end - 1 - j) * kBlockN;
      load_tile<D, kBlockN>(smem_k + (j % 2) * kTileKvBytes<D>, w.k + col0 * a.k.row_stride,
                            a.k.row_stride, w.kv_len - col0);
    };
    const auto load_v = [&](int j) {
      const int col0 = (w.n_end - 1 - j) * kBlockN;
      load_tile<D, kBlockN>(smem_v + (j % 2) * kTileKvBytes<D>, w.v + col0 * a.v.row_stride,
                            a.v.row_stride, w.kv_len - col0);
    };
    // S_j = Q K_j^T: D / 16 steps along head_dim, 32 bytes apart within a 128-byte swizzled row.
    const uint64_t q_desc = smem_descriptor(smem_q + warpgroup * 64 * 128, 16);
    float acc_s[kNTiles][4];
    const auto issue_scores = [&](int j) {
      const uint64_t k_desc = smem_descriptor(smem_k + (j % 2) * kTileKvBytes<D>, 16);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t q_step = (kk / 4) * kBlockM * 128 + (kk % 4) * 32;
        const uint32_t k_step = (kk / 4) * kBlockN * 128 + (kk % 4) * 32;
        wgmma_ss_n128<T>(acc_s, q_desc + (q_step >> 4), k_desc + (k_step >> 4), kk > 0);
      }
      wgmma_commit();
    };
    // The mask where block j straddles an edge, then the softmax; P stays in acc_s as f32.
    const auto softmax = [&](int j, float(&correction)[2]) {
      const int n = w.n_end - 1 - j;
      if (n < w.n_unmasked_begin || n >= w.n_unmasked_end) {
        mask_scores(acc_s, a, w, w.m0 + tile_row, n * kBlockN, quad_col);
      }
      softmax_step(acc_s, row_max, row_sum, a.score_to_log2, correction);
    };
    uint32_t p[kKSteps][4];
    const auto pack_p = [&] {
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        p[kk][0] = pack2<T>(acc_s[2 * kk][0], acc_s[2 * kk][1]);
        p[kk][1] = pack2<T>(acc_s[2 * kk][2], acc_s[2 * kk][3]);
        p[kk][2] = pack2<T>(acc_s[2 * kk + 1][0], acc_s[2 * kk + 1][1]);
        p[kk][3] = pack2<T>(acc_s[2 * kk + 1][2], acc_s[2 * kk + 1][3]);
      }
    };

    load_tile<D, kBlockM>(smem_q, w.q + w.m0 * a.q.row_stride, a.q.row_stride, w.q_len - w.m0);
    load_k(0);
    cp_async_commit();
    if (steps > 1) load_k(1);
    load_v(0);
    cp_async_commit();
    cp_async_wait<1>();  // Q and K_0
    fence_proxy_async();
    __syncthreads();
    wgmma_fence();
    issue_scores(0);
    wgmma_wait<0>();
    pin(acc_s);
    {
      float unused[2];  // O is still 0
      softmax(0, unused);
    }
    pack_p();

    // O += P_j V_j: kBlockN / 16 steps along the keys, 16 rows of 128 bytes apart.
    const auto issue_values = [&](int j) {
      const uint64_t v_desc = smem_descriptor(smem_v + (j % 2) * kTileKvBytes<D>, kBlockN * 128);
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        wgmma_rs<T, D>(acc_o, p[kk], v_desc + ((kk * 16 * 128) >> 4));
      }
      wgmma_commit();
    };
    // Waits for this thread's copies, then for every thread's: both warpgroups are then also
    // done with the previous step, whose buffers the next copies reuse.
    const auto wait_for_copies = [] {
      cp_async_wait<0>();
      fence_proxy_async();
      __syncthreads();
    };

    for (int j = 0; j + 1 < steps; ++j) {
      wait_for_copies();                 // K_(j+1) and V_j
      if (j + 2 < steps) load_k(j + 2);  // into K_j's buffer
      load_v(j + 1);                     // into V_(j-1)'s
      cp_async_commit();
      pin(acc_o);
      pin(p);
      wgmma_fence();
      issue_scores(j + 1);
      issue_values(j);
      wgmma_wait<1>();  // S_(j+1); P_j V_j may still run
      pin(acc_s);
      float correction[2];
      softmax(j + 1, correction);
      wgmma_wait<0>();
      pin(acc_o);
      pin(p);
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[dt][e] *= correction[e / 2];
      }
      pack_p();
    }
    wait_for_copies();  // V of the last step
    pin(acc_o);
    pin(p);
    wgmma_fence();
    issue_values(steps - 1);
    wgmma_wait<0>();
    pin(acc_o);
  }

  // O / l into this warpgroup's rows of Q's tile (only its own wgmmas read them, and they are
  // done), then 16-byte rows out; lse = c m ln 2 + ln l.
  float* lse = a.lse == nullptr ? nullptr
                                : a.lse + w.s * a.lse_batch_stride + w.head * a.lse_head_stride +
                                      w.q_first * a.lse_row_stride;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(row_sum[r]);
    const float inverse = sum > 0.f ? 1.f / sum : 0.f;
    const int row = tile_row + 8 * r;
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      const uint32_t bits = pack2<T>(acc_o[dt][2 * r] * inverse, acc_o[dt][2 * r + 1] * inverse);
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(
                       smem_q + swizzled_offset<kBlockM>(row, dt * 8 + quad_col)),
                   "r"(bits));
    }
    if (lse != nullptr && lane % 4 == 0 && w.m0 + row < w.q_len) {
      lse[(w.m0 + row) * a.lse_row_stride] = row_lse(row_max[r], sum, a.score_to_log2);
    }
  }
  asm volatile("bar.sync %0, 128;\n" ::"r"(1 + warpgroup) : "memory");  // this warpgroup only
  auto* o = static_cast<uint16_t*>(a.o.data) + w.s * a.o.batch_stride + w.q_first * a.o.row_stride +
            w.head * a.o.head_stride;
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = 0; i < 64 * kChunks / 128; ++i) {
    const int index = threadIdx.x % 128 + 128 * i;
    const int row = warpgroup * 64 + index / kChunks, chunk = index % kChunks;
    if (w.m0 + row < w.q_len) {
      uint4 value;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
                   : "r"(smem_q + swizzled_offset<kBlockM>(row, chunk * 8)));
      *reinterpret_cast<uint4*>(o + (w.m0 + row) * a.o.row_stride + chunk * 8) = value;
    }
  }
}

}  // namespace attention_hopper
}  // namespace llmk
