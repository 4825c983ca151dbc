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

// Element offset of the first element of `row`.
LLMK_HOST_DEVICE inline int64_t row_offset(const RowShape& shape, const RowStrides& strides,
                                           int64_t row) {
  int64_t offset = 0;
  for (int d = shape.ndim - 1; d > 0; --d) {
    offset += (row % shape.extent[d]) * strides.stride[d];
    row /= shape.extent[d];
  }
  return shape.ndim > 0 ? offset + row * strides.stride[0] : 0;
}

// Merges the leading dimensions of `count` tensors of one shape. Fails with LLMK_ERROR_UNSUPPORTED
// if more than kMaxRowDims dimensions remain unmergeable.
RowShape merge_rows(const char* op, const llmk_tensor* const* tensors, RowStrides* strides,
                    int count);

}  // namespace llmk
