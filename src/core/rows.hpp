// Row layouts: a tensor [..., n] seen as rows of its last dimension. The leading dimensions of all
// the tensors an op takes (same shape, each with its own strides) are merged wherever every tensor
// allows it, so the kernels see at most kMaxRowDims leading dimensions, and usually one.
#pragma once

#include <cstdint>

#include "llmk.h"

#ifdef __CUDACC__
#define LLMK_HOST_DEVICE __host__ __device__
#else
#define LLMK_HOST_DEVICE
#endif

namespace llmk {

constexpr int kMaxRowDims = 3;

struct RowShape {
  int64_t count;                // number of rows
  int ndim;                     // merged leading dimensions, 0 ... kMaxRowDims
  int64_t extent[kMaxRowDims];  // outermost first
};

struct RowStrides {
  int64_t stride[kMaxRowDims];  // elements, outermost first; unused entries are 0
};

// Where a row sits in the merged leading dimensions: its index in each, outermost first (0 in the
// unused ones). A kernel finds it once per row for all of its tensors, since they share the shape.
struct RowIndex {
  int64_t at[kMaxRowDims];
};

LLMK_HOST_DEVICE inline RowIndex row_index(const RowShape& shape, int64_t row) {
  RowIndex index{};
  for (int d = kMaxRowDims - 1; d > 0; --d) {
    if (d >= shape.ndim) continue;
    index.at[d] = row % shape.extent[d];
    row /= shape.extent[d];
  }
  index.at[0] = row;
  return index;
}

// Element offset of the first element of the row at `index` (unused strides are 0).
LLMK_HOST_DEVICE inline int64_t row_offset(const RowIndex& index, const RowStrides& strides) {
  int64_t offset = 0;
  for (int d = 0; d < kMaxRowDims; ++d) offset += index.at[d] * strides.stride[d];
  return offset;
}

LLMK_HOST_DEVICE inline int64_t row_offset(const RowShape& shape, const RowStrides& strides,
                                           int64_t row) {
  return row_offset(row_index(shape, row), strides);
}

// Merges the leading dimensions of `count` tensors of one shape. Fails with LLMK_ERROR_UNSUPPORTED
// if more than kMaxRowDims dimensions remain unmergeable.
RowShape merge_rows(const char* op, const llmk_tensor* const* tensors, RowStrides* strides,
                    int count);

}  // namespace llmk
