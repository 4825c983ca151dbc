// The KV-cache write kernel: k and v rows scattered into the caches, as
//   contiguous: cache[b, cache_seqlens[b] + i] = k[b, i]
//   paged:      cache[slot / page_size, slot % page_size] = k[t],  slot = slot_mapping[t]
// (and the same for v), each row one head or, when every tensor holds a token's heads densely,
// the whole token (kv_heads * head_dim contiguous elements: 8 KB for Llama-2-7B in bf16).
//
// A flat grid over all of k's units (row_copy.cuh), k's and v's copied together: each unit
// splits its row index by multiply-high divisions (row = token * row_heads + head; contiguous:
// token = b * new_len + i; paged: slot = page * page_size + offset), reads its token's index
// (shared by a warp's lanes, mostly) and has its k and v loads in flight before its stores. The
// host never reads the indices, so a destination outside the cache ([0, max_seq) of a sequence,
// or [0, num_pages * page_size) of slots) skips the token, as a negative slot does: nothing out
// of bounds is written.
#pragma once

#include "kv_cache.hpp"
#include "ops/embedding/row_copy.cuh"

namespace llmk {
namespace kv_cache_kernels {

using namespace row_copy;

// positions: new_len (contiguous, token -> b, i) or page_size (paged, slot -> page, offset).
struct KvDividers {
  FastDiv row_heads, positions;
};

template <KvLayout L, class Index, class U>
__global__ void __launch_bounds__(kThreads)
    kv_cache_write_kernel(const KvCacheParams p, const FlatRows rows, const KvDividers d) {
  const auto index = static_cast<const Index*>(p.index);
  const int64_t eb = p.element_bytes;
  copy_units<U, 2>(rows, U{}, [&](uint32_t row, RowEnds<U, 2>& ends) {
    const uint32_t token = d.row_heads(row);
    const int64_t head = row - token * d.row_heads.divisor;
    int64_t b = 0, i = token, page, offset;
    if constexpr (L == KvLayout::contiguous) {
      const uint32_t sequence = d.positions(token);
      b = sequence;
      i = token - sequence * d.positions.divisor;
      const int64_t start = index[b * p.index_stride];
      if (start < -i || start >= p.page_size - i) return RowAction::skip;  // start + i outside
      page = b;
      offset = start + i;
    } else {
      const int64_t slot = index[i * p.index_stride];
      if (slot < 0 || slot >= p.num_pages * p.page_size) return RowAction::skip;
      const uint32_t in_page = d.positions(static_cast<uint32_t>(slot));  // slot < 2^31
      page = in_page;
      offset = slot - int64_t{in_page} * d.positions.divisor;
    }
    const auto at = [&](const KvStrides& s, int64_t outer, int64_t inner) {
      return (outer * s.outer + inner * s.inner + head * s.head) * eb;
    };
    ends.from[0] = at_byte<U>(p.k, at(p.k_strides, b, i));
    ends.from[1] = at_byte<U>(p.v, at(p.v_strides, b, i));
    ends.to[0] = at_byte<U>(p.k_cache, at(p.k_cache_strides, page, offset));
    ends.to[1] = at_byte<U>(p.v_cache, at(p.v_cache_strides, page, offset));
    return RowAction::copy;
  });
}

}  // namespace kv_cache_kernels
}  // namespace llmk
