// Argument checks shared by every op. Each names the op and the argument in its message, and all
// of them run before anything is launched, so a failed call leaves its outputs untouched.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "context.hpp"
#include "error.hpp"

namespace llmk {

// The bytes a view's elements occupy, [begin, end); begin == end for a view with no elements.
struct ByteRange {
  uintptr_t begin = 0, end = 0;
  bool known = false;
};

// A tensor argument and the name the messages give it. Its byte range is worked out once, by
// check_view (which finds the furthest element anyway) or by the first overlap check that needs
// it, and then serves every overlap check of the call: an op on one row pays for its checks in
// host time (bench/NOTES.md, v9).
struct Arg {
  const char* name;
  const llmk_tensor* tensor;
  mutable ByteRange bytes{};
};

int64_t numel(const llmk_tensor& t);

// The checks every tensor gets: not NULL, a known dtype, 0 <= ndim <= LLMK_MAX_DIMS, extents and
// strides >= 0, the furthest element within reach of 64-bit byte offsets, and (when the view has
// elements) a data pointer that is not NULL and is aligned to the element size.
const llmk_tensor& check_view(const char* op, const Arg& a);

void check_dtype(const char* op, const Arg& a, std::initializer_list<llmk_dtype> allowed);
void check_same_dtype(const char* op, const Arg& a, const Arg& b);
void check_ndim(const char* op, const Arg& a, int min_ndim, int max_ndim);
void check_same_shape(const char* op, const Arg& a, const Arg& b);
void check_unit_stride(const char* op, const Arg& a, int dim);

// Outputs: `out` may share no byte with `in`, except that an identical view (same pointer, dtype,
// shape and strides) is allowed when the op works in place.
void check_no_overlap(const char* op, const Arg& out, const Arg& in, bool allow_identical);
// Outputs: no two elements of `out` may share memory (a zero stride would race).
void check_not_self_overlapping(const char* op, const Arg& out);

// On a CUDA context: the data is device (or managed) memory of the context's device. The runtime
// can tell only for memory it knows; a pointer into pageable host memory is reported as such.
void check_memory(const llmk_context& ctx, const char* op, const Arg& a);
// On a CUDA context: `stream` is a valid stream of the context's device (NULL, the default
// stream, always is).
void check_stream(const llmk_context& ctx, const char* op, void* stream);

bool same_view(const llmk_tensor& a, const llmk_tensor& b);

}  // namespace llmk
