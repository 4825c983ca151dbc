// Attention (llmk_attention, llmk_attention_varlen) as its backends see it: one params struct of
// checked pointers and strides for both entries, and one entry per backend.
#pragma once

#include <cstdint>

#include "core/context.hpp"
#include "core/rows.hpp"

namespace llmk {

// A q, k, v or o view. Element (sequence s, row i of that sequence, head h, d) lives at
//   data + s * batch_stride + (first_row(s) + i) * row_stride + h * head_stride + d
// with first_row(s) = 0 for a padded batch and cu_seqlens[s] for packed sequences (whose
// batch_stride is 0). Strides count elements.
struct AttentionTensor {
  void* data;
  int64_t batch_stride;
  int64_t row_stride;
  int64_t head_stride;
};

struct AttentionParams {
  llmk_dtype dtype;           // F16 or BF16, of q, k, v and o
  int head_dim;               // 64, 96, 128 or 256
  int64_t batch;              // sequences, > 0
  int64_t q_heads, kv_heads;  // q_heads % kv_heads == 0
  // Padded: every sequence's length. Packed: q_len is max_seqlen_q (the grid's bound), kv_len 0.
  int64_t q_len, kv_len;
  // Packed sequences: [batch + 1] offsets into the rows of q/o and of k/v; null when padded.
  const int32_t* cu_seqlens_q;
  const int32_t* cu_seqlens_k;
  int64_t total_q, total_k;  // rows of q and of k when packed
  AttentionTensor q, k, v, o;
  // Null, or the f32 log-sum-exp of (sequence s, head h, row i) at
  //   lse + s * lse_batch_stride + h * lse_head_stride + (first_row(s) + i) * lse_row_stride.
  float* lse;
  int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
  float scale;    // > 0
  float softcap;  // 0: none
  // The visible keys of query i, in key positions, as llmk.h defines them; -1: no limit. causal
  // is already folded into window_right.
  int64_t window_left, window_right;
  float dropout_p;             // 0: no dropout
  uint32_t dropout_threshold;  // floor(dropout_p * 2^32): a word below it drops the element
  uint64_t dropout_seed;
  uint32_t dropout_offset;
  llmk_attention_kernel kernel;  // CUDA only: AUTO, PORTABLE or HOPPER (llmk.h)
};

// The reference: f64 scores, softmax and sums, each output rounded once. For packed sequences it
// checks cu_seqlens on the host first (LLMK_ERROR_INVALID_VALUE, before writing anything).
void attention_cpu(const AttentionParams& p);

// Launches on `stream` of the current device (the caller has set it).
void attention_cuda(const AttentionParams& p, const llmk_context& ctx, void* stream);

}  // namespace llmk
