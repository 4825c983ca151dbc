// Flash attention, forward: O = softmax(scale Q K^T + mask) V, exact, in one pass over K and V.
// This is the portable kernel (sm_80 on, every head_dim and option); on sm_90 GPUs
// attention_hopper_kernels.cuh takes head_dim 64 and 128 without soft-cap or dropout.
//
// The math (Dao et al., FlashAttention-2). A block owns kBlockM query rows of one head and walks
// the key blocks of kBlockN keys. For each key block it computes S = Q K^T, then updates, per row,
// the running maximum m and the running sum l of exp(s - m):
//   m' = max(m, max_j s_j),  l' = l e^(m - m') + sum_j e^(s_j - m'),  O' = O e^(m - m') + P V
// with P = e^(S - m'), so that at the end O / l is the softmax-weighted sum and m + ln l the
// log-sum-exp. The T x T score matrix never leaves registers.
//
// The tricks:
//  - Tensor cores through mma.sync.m16n8k16 (f16/bf16 in, f32 accumulate), which every GPU from
//    sm_80 on runs. Each of the 4 warps owns 16 query rows per m-tile and kBlockM / 64 m-tiles,
//    so every K or V fragment read from shared memory feeds that many MMAs: at 32 rows a warp the
//    shared-memory reads stay under the tensor cores' rate (at 16 they would not).
//  - S's accumulator layout is exactly the A-operand layout of the next MMA, so P goes from the
//    f32 accumulators to 16-bit A fragments in registers, never through shared memory.
//  - The exponentials are exp2 with the scale folded in: e^(scale (s - m)) = 2^(s c - m c) with
//    c = scale log2(e), one FFMA and one MUFU.EX2 per score. Row sums stay per thread (the four
//    threads of a row are combined once, at the end).
//  - cp.async copies K and V into shared memory while the tensor cores work: V of block n loads
//    during S = Q K_n^T and the softmax, K of block n - 1 during O += P V_n (FlashAttention-2's
//    schedule). Rows are padded by 16 bytes, which keeps every ldmatrix free of bank conflicts
//    for any head_dim.
//  - Key blocks that no query of the tile sees (causal, sliding window) are never visited; only
//    blocks that straddle a mask edge or the end of the keys pay for the element-wise mask.
//  - A padded batch's grid is (query block, head, sequence), query blocks fastest and heaviest
//    first (the last, longest causal rows). All query blocks of a head run side by side, so its
//    K and V are read from HBM about once and then hit in L2, and neighbouring heads run
//    together, so the rows of a BSHD tensor (all heads of a token, side by side) are read whole
//    from DRAM. (FA2's (query block, sequence, head) order measured 3-10% slower at T <= 4096.)
//  - Packed sequences of different lengths are ordered (head, sequence, query block), query
//    blocks slowest and last first: only long sequences have high query blocks, so the launch
//    starts with the longest work and ends with the shortest (longest-processing-time first),
//    where any head-major order ends with a long sequence's blocks as its tail.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "attention_common.cuh"
#include "core/philox.hpp"

namespace llmk {
namespace attention_kernels {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// Query rows (kBlockM) and keys (kBlockN) of a block, per head_dim: as many rows per warp as the
// 255 registers of a thread hold (the O accumulators grow with head_dim), two blocks per SM.
template <int D>
struct TileShape;
template <>
struct TileShape<64> {
  static constexpr int kBlockM = 128, kBlockN = 128;
};
template <>
struct TileShape<96> {
  static constexpr int kBlockM = 128, kBlockN = 64;
};
template <>
struct TileShape<128> {
  static constexpr int kBlockM = 128, kBlockN = 64;
};
template <>
struct TileShape<256> {
  static constexpr int kBlockM = 64, kBlockN = 64;
};

template <int D>
__host__ __device__ constexpr int smem_bytes() {
  return (TileShape<D>::kBlockM + 2 * TileShape<D>::kBlockN) * (D + 8) * 2;
}

// ---- PTX wrappers ---------------------------------------------------------------------------

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem));
}

// d += a b for one 16x8x16 tile: a row-major 16x16, b column-major 16x8, f32 accumulators.
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// ---- The kernel -----------------------------------------------------------------------------

// Copies `rows` x D elements (rows of `row_stride`) into shared memory of padded rows; rows at or
// past `valid_rows` become zeros. When the threads divide into whole rows (head_dim 64, 128, 256)
// each thread keeps one column chunk and walks rows with one pointer, so the loop holds two
// 64-bit registers, not one offset per chunk.
template <int D, int ROWS>
__device__ __forceinline__ void load_tile(uint32_t smem, const uint16_t* gmem, int64_t row_stride,
                                          int valid_rows) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static_assert(ROWS * kChunks % kThreads == 0, "every thread copies the same number of chunks");
  if constexpr (kThreads % kChunks == 0) {
    constexpr int kRowsPerPass = kThreads / kChunks;
    const int row0 = threadIdx.x / kChunks, chunk = threadIdx.x % kChunks;
    const uint16_t* src = gmem + row0 * row_stride + chunk * 8;
    const uint32_t dst = smem + (row0 * (D + 8) + chunk * 8) * 2;
#pragma unroll
    for (int i = 0; i < ROWS / kRowsPerPass; ++i) {
      const bool valid = row0 + i * kRowsPerPass < valid_rows;
      cp_async_16(dst + i * kRowsPerPass * (D + 8) * 2, valid ? src : gmem, valid);
      src += kRowsPerPass * row_stride;
    }
  } else {
#pragma unroll
    for (int i = 0; i < ROWS * kChunks / kThreads; ++i) {
      const int index = static_cast<int>(threadIdx.x) + i * kThreads;
      const int row = index / kChunks, chunk = index % kChunks;
      const bool valid = row < valid_rows;
      cp_async_16(smem + (row * (D + 8) + chunk * 8) * 2,
                  valid ? gmem + row * row_stride + chunk * 8 : gmem, valid);
    }
  }
}

// EXTRAS: soft-cap and dropout compiled in (each still off when its argument says so); without,
// the inner loop has neither.
template <class T, int D, bool EXTRAS>
__global__ void __launch_bounds__(kThreads, 2) attention_kernel(const KernelArgs a) {
  constexpr int kBlockM = TileShape<D>::kBlockM, kBlockN = TileShape<D>::kBlockN;
  constexpr int kMTiles = kBlockM / (16 * kWarps);  // 16-row tiles per warp
  constexpr int kNTiles = kBlockN / 8;              // 8-key tiles of S
  constexpr int kDTiles = D / 8;                    // 8-column tiles of O
  constexpr int kRowBytes = (D + 8) * 2;            // a padded shared-memory row

  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t smem_q = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t smem_k = smem_q + kBlockM * kRowBytes;
  const uint32_t smem_v = smem_k + kBlockN * kRowBytes;

  BlockWork w;
  if (!block_work<D, kBlockM, kBlockN>(a, w)) return;
  const int m0 = w.m0, q_len = w.q_len, kv_len = w.kv_len;
  const int n_begin = w.n_begin, n_end = w.n_end;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int quad_row = lane / 4, quad_col = 2 * (lane % 4);  // an accumulator's row and column
  // ldmatrix addresses of this lane: A from Q's rows, B from K's rows, B^T from V's rows.
  const uint32_t q_frag = smem_q + (warp * 16 + lane % 16) * kRowBytes + (lane / 16) * 16;
  const uint32_t k_frag = smem_k + (lane % 8 + (lane / 16) * 8) * kRowBytes + ((lane / 8) % 2) * 16;
  const uint32_t v_frag = smem_v + (lane % 8 + ((lane / 8) % 2) * 8) * kRowBytes + (lane / 16) * 16;

  float acc_o[kMTiles][kDTiles][4];
  float row_max[kMTiles][2], row_sum[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.f;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -kInf;
      row_sum[mt][r] = 0.f;
    }
  }

  if (n_begin < n_end) {
    load_tile<D, kBlockM>(smem_q, w.q + m0 * a.q.row_stride, a.q.row_stride, q_len - m0);
    const int n = n_end - 1;
    load_tile<D, kBlockN>(smem_k, w.k + n * kBlockN * a.k.row_stride, a.k.row_stride,
                          kv_len - n * kBlockN);
    cp_async_commit();
  }

  for (int n = n_end - 1; n >= n_begin; --n) {
    const int col0 = n * kBlockN;
    cp_async_wait<0>();  // K_n (and Q)
    __syncthreads();     // ... for every thread; and every warp is done with V_(n+1)
    load_tile<D, kBlockN>(smem_v, w.v + col0 * a.v.row_stride, a.v.row_stride, kv_len - col0);
    cp_async_commit();

    // Dropout's keep bits, before S is live: llmk.h's mask, Philox counter
    // (j / 4, i, s q_heads + h, offset), word j % 4. A thread's two keys j, j + 1 (j even) share
    // one counter. The rolled loop keeps Philox's temporaries out of the unrolled code.
    uint32_t kept[kMTiles][2];
    if constexpr (EXTRAS) {
      static_assert(2 * kNTiles <= 32, "a row's keep bits fit in one word");
      if (a.dropout_threshold != 0) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const uint32_t row = m0 + mt * 16 * kWarps + warp * 16 + quad_row + 8 * r;
            uint32_t bits = 0;
#pragma unroll 1
            for (int nt = 0; nt < kNTiles; ++nt) {
              const uint32_t col = col0 + nt * 8 + quad_col;
              const Philox4 words = philox4x32_10(
                  Philox4{{col / 4, row, static_cast<uint32_t>(w.s * a.q_heads + w.head),
                           a.dropout_offset}},
                  a.seed_lo, a.seed_hi);
              const uint32_t word0 = col % 4 == 0 ? words.w[0] : words.w[2];
              const uint32_t word1 = col % 4 == 0 ? words.w[1] : words.w[3];
              bits |= (uint32_t{word0 >= a.dropout_threshold} |
                       uint32_t{word1 >= a.dropout_threshold} << 1)
                      << (2 * nt);
            }
            kept[mt][r] = bits;
          }
        }
      }
    }

    // S = Q K_n^T
    float acc_s[kMTiles][kNTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = 0.f;
      }
    }
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        ldmatrix_x4(qa[mt], q_frag + mt * 16 * kWarps * kRowBytes + kk * 32);
      }
#pragma unroll
      for (int nn = 0; nn < kNTiles / 2; ++nn) {
        uint32_t kb[4];
        ldmatrix_x4(kb, k_frag + nn * 16 * kRowBytes + kk * 32);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_16816<T>(acc_s[mt][2 * nn], qa[mt], kb[0], kb[1]);
          mma_16816<T>(acc_s[mt][2 * nn + 1], qa[mt], kb[2], kb[3]);
        }
      }
    }

    if constexpr (EXTRAS) {
      if (a.softcap > 0.f) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              acc_s[mt][nt][e] = a.softcap * tanhf(acc_s[mt][nt][e] * a.softcap_input_scale);
            }
          }
        }
      }
    }

    // The mask, only where this block straddles an edge of what the tile's rows see.
    if (n < w.n_unmasked_begin || n >= w.n_unmasked_end) {
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        mask_scores(acc_s[mt], a, w, m0 + mt * 16 * kWarps + warp * 16 + quad_row, col0, quad_col);
      }
    }

    // The online softmax: new maxima, rescale O and l, P = 2^(c s - c m).
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      float correction[2];
      softmax_step(acc_s[mt], row_max[mt], row_sum[mt], a.score_to_log2, correction);
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] *= correction[e / 2];
      }
    }

    if constexpr (EXTRAS) {
      if (a.dropout_threshold != 0) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
#pragma unroll
            for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                if (((kept[mt][r] >> (2 * nt + e)) & 1u) == 0) acc_s[mt][nt][2 * r + e] = 0.f;
              }
            }
          }
        }
      }
    }

    cp_async_wait<0>();  // V_n
    __syncthreads();     // ... for every thread; and every warp is done with K_n
    if (n > n_begin) {
      load_tile<D, kBlockN>(smem_k, w.k + (col0 - kBlockN) * a.k.row_stride, a.k.row_stride,
                            kv_len - (col0 - kBlockN));
      cp_async_commit();
    }

    // O += P V_n, P from the S accumulators.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t pa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        pa[mt][0] = pack2<T>(acc_s[mt][2 * kk][0], acc_s[mt][2 * kk][1]);
        pa[mt][1] = pack2<T>(acc_s[mt][2 * kk][2], acc_s[mt][2 * kk][3]);
        pa[mt][2] = pack2<T>(acc_s[mt][2 * kk + 1][0], acc_s[mt][2 * kk + 1][1]);
        pa[mt][3] = pack2<T>(acc_s[mt][2 * kk + 1][2], acc_s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dd = 0; dd < D / 16; ++dd) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, v_frag + kk * 16 * kRowBytes + dd * 32);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_16816<T>(acc_o[mt][2 * dd], pa[mt], vb[0], vb[1]);
          mma_16816<T>(acc_o[mt][2 * dd + 1], pa[mt], vb[2], vb[3]);
        }
      }
    }
  }

  // O / l through this warp's own rows of Q's shared memory (no other warp reads them), then
  // 16-byte stores; lse = c m ln 2 + ln l.
  float* lse = a.lse == nullptr ? nullptr
                                : a.lse + w.s * a.lse_batch_stride + w.head * a.lse_head_stride +
                                      w.q_first * a.lse_row_stride;
  const float keep_scale = EXTRAS ? a.dropout_keep_scale : 1.f;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = quad_sum(row_sum[mt][r]);
      const float inverse = sum > 0.f ? keep_scale / sum : 0.f;
      const int row = mt * 16 * kWarps + warp * 16 + quad_row + 8 * r;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        const uint32_t bits =
            pack2<T>(acc_o[mt][dt][2 * r] * inverse, acc_o[mt][dt][2 * r + 1] * inverse);
        asm volatile(
            "st.shared.b32 [%0], %1;\n" ::"r"(smem_q + row * kRowBytes + (dt * 8 + quad_col) * 2),
            "r"(bits));
      }
      if (lse != nullptr && lane % 4 == 0 && m0 + row < q_len) {
        lse[(m0 + row) * a.lse_row_stride] = row_lse(row_max[mt][r], sum, a.score_to_log2);
      }
    }
  }
  __syncwarp();
  auto* o = static_cast<uint16_t*>(a.o.data) + w.s * a.o.batch_stride + w.q_first * a.o.row_stride +
            w.head * a.o.head_stride;
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int i = 0; i < 16 * kChunks / 32; ++i) {
      const int index = lane + 32 * i;
      const int row = mt * 16 * kWarps + warp * 16 + index / kChunks, chunk = index % kChunks;
      if (m0 + row < q_len) {
        uint4 value;
        asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
                     : "r"(smem_q + row * kRowBytes + chunk * 16));
        *reinterpret_cast<uint4*>(o + (m0 + row) * a.o.row_stride + chunk * 8) = value;
      }
    }
  }
}

}  // namespace attention_kernels
}  // namespace llmk
