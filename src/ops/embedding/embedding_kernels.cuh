// The embedding kernel: y[t] = table[ids[t]], a gather of whole rows.
//
// A flat grid over all of y's units (row_copy.cuh): unit g is column g - t * units of token
// t = g / units, read from row ids[t] of the table. Each unit reads its token's id (the lanes of a
// warp share it, mostly, in one L1 transaction); an id outside [0, vocab) makes the row NaN rather
// than a read out of bounds, since the host never sees the ids.
#pragma once

#include "embedding.hpp"
#include "row_copy.cuh"

namespace llmk {
namespace embedding_kernels {

using namespace row_copy;

// nan_word: two NaNs of a 16-bit dtype, or one f32 NaN.
template <class Index, class U>
__global__ void __launch_bounds__(kThreads)
    embedding_kernel(const EmbeddingParams p, const FlatRows rows, const uint32_t nan_word) {
  const auto ids = static_cast<const Index*>(p.ids);
  const int64_t eb = p.element_bytes;
  copy_units<U, 1>(rows, repeated<U>(nan_word), [&](uint32_t t, RowEnds<U, 1>& row) {
    const int64_t id = ids[t * p.ids_stride];
    row.to[0] = at_byte<U>(p.y, t * p.y_stride * eb);
    if (id < 0 || id >= p.vocab) return RowAction::fill;
    row.from[0] = at_byte<U>(p.table, id * p.table_stride * eb);
    return RowAction::copy;
  });
}

}  // namespace embedding_kernels
}  // namespace llmk
