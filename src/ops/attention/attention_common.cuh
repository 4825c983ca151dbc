// What the two attention kernels share: their arguments, the rows and key blocks a block works
// on, the mask, and the online softmax.
//
// The portable kernel (attention_kernels.cuh, mma.sync, sm_80 on) and the Hopper one
// (attention_hopper_kernels.cuh, wgmma, sm_90a) hold S and O in the same register layout: a warp
// owns 16 rows of a tile, and for every 8 columns j a thread holds
//   [0] (row g, col 2t)  [1] (row g, col 2t + 1)  [2] (row g + 8, col 2t)  [3] (row g + 8, col 2t +
//   1)
// with g = lane / 4 and t = lane % 4: mma.sync.m16n8's accumulator, which wgmma.m64nN repeats
// over its N / 8 column tiles. So the mask and the softmax below serve both.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace llmk {
namespace attention_kernels {

// A q, k, v or o view for the kernels: see AttentionTensor (attention.hpp).
struct KernelTensor {
  void* data;
  int64_t batch_stride, row_stride, head_stride;
};

// Everything the kernels read, prepared on the host (attention_cuda.cu).
struct KernelArgs {
  KernelTensor q, k, v, o;
  float* lse;
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  const int32_t* cu_seqlens_q;  // null: a padded batch of q_len and kv_len
  const int32_t* cu_seqlens_k;
  int q_len, kv_len;  // padded lengths; with cu_seqlens, q_len is max_seqlen_q
  int total_q, total_k;
  int q_heads, heads_per_kv_head;
  int64_t window_left, window_right;  // -1: no limit
  float score_to_log2;                // c: p = 2^(c s - c m), s the (soft-capped) score
  float softcap;                      // 0: none; else s = softcap tanh(q.k * softcap_input_scale)
  float softcap_input_scale;
  uint32_t dropout_threshold;  // 0: no dropout
  float dropout_keep_scale;    // 1 / (1 - dropout_p)
  uint32_t seed_lo, seed_hi, dropout_offset;
};

constexpr float kInf = __builtin_huge_valf();

// ---- PTX wrappers ---------------------------------------------------------------------------

__device__ __forceinline__ void cp_async_16(uint32_t smem, const void* gmem, bool valid) {
  // A row past the end of the sequence is filled with zeros: its scores are finite (then masked)
  // and its V row adds 0 x 0, never 0 x NaN.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most PENDING of this thread's newest copy groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two f32 values as one 32-bit register of two T, the lower index in the lower half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t bits;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&bits, &v, 4);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&bits, &v, 4);
  }
  return bits;
}

__device__ __forceinline__ int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// ---- A block's work -------------------------------------------------------------------------

// The rows of o and lse that an invalid cu_seqlens entry names get NaN (llmk.h), within what
// the grid covers (this block's rows of the first max_seqlen_q) and the tensors hold.
template <int D, int BLOCK_M>
__device__ void fill_invalid_sequence(const KernelArgs& a, int64_t q_begin, int64_t q_end, int m0,
                                      int head, int64_t s) {
  const int64_t first = max(q_begin + m0, int64_t{0});
  const int64_t end =
      min(min(q_end, int64_t{a.total_q}), min(q_begin + m0 + BLOCK_M, q_begin + a.q_len));
  if (first >= end) return;
  uint16_t* o = static_cast<uint16_t*>(a.o.data) + head * a.o.head_stride;
  constexpr uint16_t kNanBits = 0x7fff;  // a NaN in f16 and in bf16
  for (int64_t i = threadIdx.x; i < (end - first) * D; i += blockDim.x) {
    o[(first + i / D) * a.o.row_stride + i % D] = kNanBits;
  }
  if (a.lse == nullptr) return;
  for (int64_t row = first + threadIdx.x; row < end; row += blockDim.x) {
    a.lse[s * a.lse_batch_stride + head * a.lse_head_stride + row * a.lse_row_stride] =
        __int_as_float(0x7fc00000);
  }
}

// One block's share of the problem: query rows [m0, m0 + BLOCK_M) of one (sequence, head).
struct BlockWork {
  int m0;
  int head;
  int64_t s;
  const uint16_t* q;  // row 0 of this sequence and head
  const uint16_t* k;
  const uint16_t* v;
  int64_t q_first;  // the sequence's first row in q, o and lse (0 when padded)
  int q_len, kv_len;
  // The key blocks some query of the tile sees are [n_begin, n_end); those in
  // [n_unmasked_begin, n_unmasked_end) are seen whole by every query of it.
  int n_begin, n_end, n_unmasked_begin, n_unmasked_end;
};

// The block's work from its grid position (the grid orders: attention_kernels.cuh's header).
// False when the block has nothing to do: past its sequence's end, or a sequence whose
// cu_seqlens are invalid (whose rows it has then filled with NaN).
template <int D, int BLOCK_M, int BLOCK_N>
__device__ __forceinline__ bool block_work(const KernelArgs& a, BlockWork& w) {
  // Heaviest (last) query blocks first.
  const bool packed = a.cu_seqlens_q != nullptr;
  const int m_block = packed ? gridDim.z - 1 - blockIdx.z : gridDim.x - 1 - blockIdx.x;
  w.head = packed ? blockIdx.x : blockIdx.y;
  w.s = packed ? blockIdx.y : blockIdx.z;
  w.m0 = m_block * BLOCK_M;

  w.q_first = 0;
  int64_t k_first = 0;
  w.q_len = a.q_len;
  w.kv_len = a.kv_len;
  if (packed) {
    const int64_t q_begin = a.cu_seqlens_q[w.s], q_end = a.cu_seqlens_q[w.s + 1];
    const int64_t k_begin = a.cu_seqlens_k[w.s], k_end = a.cu_seqlens_k[w.s + 1];
    const bool valid = (w.s > 0 || (q_begin == 0 && k_begin == 0)) && 0 <= q_begin &&
                       q_begin <= q_end && q_end <= a.total_q && 0 <= k_begin && k_begin <= k_end &&
                       k_end <= a.total_k && q_end - q_begin <= a.q_len;
    if (!valid) {
      fill_invalid_sequence<D, BLOCK_M>(a, q_begin, q_end, w.m0, w.head, w.s);
      return false;
    }
    w.q_first = q_begin;
    k_first = k_begin;
    w.q_len = static_cast<int>(q_end - q_begin);
    w.kv_len = static_cast<int>(k_end - k_begin);
  }
  if (w.m0 >= w.q_len) return false;

  const int kv_head = w.head / a.heads_per_kv_head;
  w.q = static_cast<const uint16_t*>(a.q.data) + w.s * a.q.batch_stride +
        w.q_first * a.q.row_stride + w.head * a.q.head_stride;
  w.k = static_cast<const uint16_t*>(a.k.data) + w.s * a.k.batch_stride + k_first * a.k.row_stride +
        kv_head * a.k.head_stride;
  w.v = static_cast<const uint16_t*>(a.v.data) + w.s * a.v.batch_stride + k_first * a.v.row_stride +
        kv_head * a.v.head_stride;

  // Query i sits at key position i + shift.
  const int64_t shift = int64_t{w.kv_len} - w.q_len;
  const int row_last = min(w.m0 + BLOCK_M, w.q_len) - 1;
  w.n_begin = 0;
  w.n_end = (w.kv_len + BLOCK_N - 1) / BLOCK_N;
  w.n_unmasked_begin = 0;
  w.n_unmasked_end = w.kv_len / BLOCK_N;
  if (a.window_right >= 0) {
    // Row r sees keys up to r + shift + window_right.
    const int64_t last_key_of_last_row = row_last + shift + a.window_right;
    const int64_t last_key_of_first_row = w.m0 + shift + a.window_right;
    w.n_end = static_cast<int>(min(int64_t{w.n_end}, floor_div(last_key_of_last_row, BLOCK_N) + 1));
    w.n_unmasked_end = static_cast<int>(
        min(int64_t{w.n_unmasked_end}, floor_div(last_key_of_first_row + 1, BLOCK_N)));
  }
  if (a.window_left >= 0) {
    // Row r sees keys from r + shift - window_left on.
    const int64_t first_key_of_first_row = w.m0 + shift - a.window_left;
    const int64_t first_key_of_last_row = row_last + shift - a.window_left;
    w.n_begin = static_cast<int>(max(int64_t{0}, floor_div(first_key_of_first_row, BLOCK_N)));
    w.n_unmasked_begin =
        static_cast<int>(max(int64_t{0}, -floor_div(-first_key_of_last_row, BLOCK_N)));  // ceil
  }
  return true;
}

// ---- The mask and the online softmax, on one warp's 16 rows ---------------------------------

// Sets to -inf the scores of keys [col0, col0 + 8 NTILES) that query `row` (this thread's first
// row, its second is row + 8; rows of the sequence) does not see.
template <int NTILES>
__device__ __forceinline__ void mask_scores(float (&s)[NTILES][4], const KernelArgs& a,
                                            const BlockWork& w, int row, int col0, int quad_col) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t pos = int64_t{w.kv_len} - w.q_len + row + 8 * r;
    const int64_t lo = a.window_left >= 0 ? pos - a.window_left : 0;
    int64_t hi = int64_t{w.kv_len} - 1;
    if (a.window_right >= 0) hi = min(hi, pos + a.window_right);
    // Clamp to [col0 - 1, col0 + 8 NTILES] so the per-element compares are 32-bit.
    const int lo_col =
        static_cast<int>(max(int64_t{col0 - 1}, min(lo, int64_t{col0 + 8 * NTILES})));
    const int hi_col =
        static_cast<int>(max(int64_t{col0 - 1}, min(hi, int64_t{col0 + 8 * NTILES})));
#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = col0 + nt * 8 + quad_col + e;
        if (col < lo_col || col > hi_col) s[nt][2 * r + e] = -kInf;
      }
    }
  }
}

// The online softmax's step for one key block: new row maxima, the row sums rescaled and grown,
// and the scores replaced by P = 2^(c s - c m). Returns in `correction` the factor by which the
// caller must scale each of its two rows of O before adding P V.
template <int NTILES>
__device__ __forceinline__ void softmax_step(float (&s)[NTILES][4], float (&row_max)[2],
                                             float (&row_sum)[2], float c, float (&correction)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float block_max = row_max[r];
#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt) {
      block_max = fmaxf(block_max, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
    }
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1));
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 2));
    // A row that has seen no key yet keeps m = -inf; 2^(-inf) = 0 keeps its P at 0.
    const float base = block_max == -kInf ? 0.f : block_max * c;
    correction[r] = exp2_approx(row_max[r] * c - base);
    row_max[r] = block_max;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < NTILES; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float p = exp2_approx(fmaf(s[nt][2 * r + e], c, -base));
        s[nt][2 * r + e] = p;
        sum += p;
      }
    }
    row_sum[r] = fmaf(row_sum[r], correction[r], sum);
  }
}

// A row's sum over the four threads of its quad, which hold its columns between them.
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The log-sum-exp of a row from its running max and sum: c m ln 2 + ln l (-inf for no key).
__device__ __forceinline__ float row_lse(float row_max, float sum, float score_to_log2) {
  return sum > 0.f ? row_max * score_to_log2 * 0.6931471805599453f + __logf(sum) : -kInf;
}

}  // namespace attention_kernels
}  // namespace llmk
