// llmk_kv_cache_write and llmk_paged_kv_cache_write as their backends see them: one params struct
// of checked pointers and strides, and one entry per backend.
//
// Both write rows of k and v into rows of the caches. The contiguous layout is the paged one with
// one page per sequence (num_pages = batch, page_size = max_seq); they differ in where a token's
// destination comes from: cache_seqlens[b] + i, or slot_mapping[t].
#pragma once

#include <cstdint>

#include "core/context.hpp"

namespace llmk {

enum class KvLayout { contiguous, paged };

// Element strides of a tensor of rows indexed [outer, inner, head]: k and v are
// [batch, new_len, heads] (paged: [1, tokens, heads], outer unused), the caches
// [page, offset in page, heads] (contiguous: [batch, position, heads]).
struct KvStrides {
  int64_t outer, inner, head;
};

struct KvCacheParams {
  KvLayout layout;
  llmk_dtype dtype;  // of k, v and the caches: F32, F16 or BF16
  int element_bytes;
  int64_t batch, new_len;  // tokens = batch * new_len; paged: batch 1, new_len = tokens
  int64_t kv_heads, head_dim;
  // A row is what the kernels copy as one contiguous run: one head (row_heads = kv_heads rows per
  // token, head_dim elements each), or, when every tensor holds a token's heads densely, the whole
  // token (row_heads = 1, kv_heads * head_dim elements).
  int64_t row_heads, row_elements;
  const void* k;
  KvStrides k_strides;
  const void* v;
  KvStrides v_strides;
  const void* index;       // cache_seqlens [batch] or slot_mapping [tokens]
  llmk_dtype index_dtype;  // I32 or I64
  int64_t index_stride;
  void* k_cache;
  KvStrides k_cache_strides;
  void* v_cache;
  KvStrides v_cache_strides;
  int64_t num_pages, page_size;  // contiguous: batch and max_seq
};

// The reference: checks every index, then copies the rows. A cache_seqlens[b] outside
// [0, max_seq - new_len], or a slot >= num_pages * page_size, fails with LLMK_ERROR_INVALID_VALUE
// before anything is written; a negative slot skips its token.
void kv_cache_cpu(const KvCacheParams& p);

// Launches on `stream` of the current device (the caller has set it). A token whose destination
// lies outside the cache is skipped.
void kv_cache_cuda(const KvCacheParams& p, void* stream);

}  // namespace llmk
