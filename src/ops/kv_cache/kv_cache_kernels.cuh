// The KV-cache write kernel: k and v rows scattered into the caches, as
//   contiguous: cache[b, cache_seqlens[b] + i] = k[b, i]
//   paged:      cache[slot / page_size, slot % page_size] = k[t],  slot = slot_mapping[t]
// (and the same for v), each row one head or, when every tensor holds a token's heads densely,
// the whole token (kv_heads * head_dim contiguous elements: 8 KB for Llama-2-7B in bf16).
//
// One group of threads per row (row_copy.cuh: 2^k threads, 16-byte packs where the layout allows),
// copying k's row and v's row together: each thread reads the token's index once and has the
// loads of both tensors in flight before its first store. The host never reads the indices, so a
// destination outside the cache ([0, max_seq) of a sequence, or [0, num_pages * page_size) of
// slots) skips the token, as a negative slot does: nothing out of bounds is written.
#pragma once

#include "kv_cache.hpp"
#include "ops/embedding/row_copy.cuh"

namespace llmk {
namespace kv_cache_kernels {

using namespace row_copy;

template <KvLayout L, class Index, class U>
__global__ void __launch_bounds__(kBlockThreads)
    kv_cache_write_kernel(const KvCacheParams p, const int log2_threads) {
  const RowThread t = row_thread(log2_threads);
  if (t.row >= p.batch * p.new_len * p.row_heads) return;
  int64_t token = t.row, head = 0;
  if (p.row_heads > 1) divide(t.row, p.row_heads, token, head);
  const auto index = static_cast<const Index*>(p.index);

  int64_t batch = 0, i = token, page, offset;
  if constexpr (L == KvLayout::contiguous) {
    divide(token, p.new_len, batch, i);
    const int64_t start = index[batch * p.index_stride];
    if (start < -i || start >= p.page_size - i) return;  // position start + i outside the cache
    page = batch;
    offset = start + i;
  } else {
    const int64_t slot = index[i * p.index_stride];
    if (slot < 0 || slot >= p.num_pages * p.page_size) return;
    divide(slot, p.page_size, page, offset);
  }

  const int64_t eb = p.element_bytes;
  const auto source = [&](const KvStrides& s) {
    return (batch * s.outer + i * s.inner + head * s.head) * eb;
  };
  const auto target = [&](const KvStrides& s) {
    return (page * s.outer + offset * s.inner + head * s.head) * eb;
  };
  copy_row<U, 2>(t, p.row_elements * eb / static_cast<int64_t>(sizeof(U)),
                 {at_byte<U>(p.k, source(p.k_strides)), at_byte<U>(p.v, source(p.v_strides))},
                 {at_byte<U>(p.k_cache, target(p.k_cache_strides)),
                  at_byte<U>(p.v_cache, target(p.v_cache_strides))});
}

}  // namespace kv_cache_kernels
}  // namespace llmk
