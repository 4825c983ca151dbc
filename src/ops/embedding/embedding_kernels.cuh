// The embedding kernel: y[t] = table[ids[t]], a gather of whole rows.
//
// One group of threads per token (row_copy.cuh: 2^k threads, 16-byte packs where the layout
// allows, all loads of a pass in flight before the stores). Each thread reads its token's id once;
// an id outside [0, vocab) makes the row NaN rather than a read out of bounds, since the host
// never sees the ids.
#pragma once

#include "embedding.hpp"
#include "row_copy.cuh"

namespace llmk {
namespace embedding_kernels {

using namespace row_copy;

// nan_word: two NaNs of a 16-bit dtype, or one f32 NaN.
template <class Index, class U>
__global__ void __launch_bounds__(kBlockThreads)
    embedding_kernel(const EmbeddingParams p, const int log2_threads, const uint32_t nan_word) {
  const RowThread t = row_thread(log2_threads);
  if (t.row >= p.tokens) return;
  const int64_t units = p.hidden * p.element_bytes / static_cast<int64_t>(sizeof(U));
  const int64_t id = static_cast<const Index*>(p.ids)[t.row * p.ids_stride];
  U* y = at_byte<U>(p.y, t.row * p.y_stride * p.element_bytes);
  if (id < 0 || id >= p.vocab) {
    fill_row(t, units, y, repeated<U>(nan_word));
    return;
  }
  copy_row<U, 1>(t, units, {at_byte<U>(p.table, id * p.table_stride * p.element_bytes)}, {y});
}

}  // namespace embedding_kernels
}  // namespace llmk
