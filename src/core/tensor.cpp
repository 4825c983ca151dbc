#include "tensor.hpp"

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <numeric>
#include <utility>

#include "cuda_util.hpp"
#include "numeric.hpp"
#include "rows.hpp"

namespace llmk {
namespace {

// The bytes from a view's first element to one past its furthest, `furthest` being that element's
// offset in elements; the caller has checked that this does not overflow.
ByteRange byte_range(const llmk_tensor& t, int64_t furthest) {
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  const auto bytes = static_cast<uintptr_t>(((furthest + 1) * dtype_bits(t.dtype) + 7) / 8);
  return {begin, begin + bytes, true};
}

// The byte range of a checked view, worked out on first use and kept in the Arg.
const ByteRange& bytes_of(const Arg& a) {
  if (!a.bytes.known) {
    const llmk_tensor& t = *a.tensor;
    int64_t furthest = 0;
    bool empty = false;
    for (int d = 0; d < t.ndim; ++d) {
      empty |= t.shape[d] == 0;
      furthest += (t.shape[d] - 1) * t.strides[d];
    }
    a.bytes = empty ? ByteRange{0, 0, true} : byte_range(t, furthest);
  }
  return a.bytes;
}

// The driver's cuPointerGetAttributes asked for just the memory type and device costs half of
// what cudaPointerGetAttributes does (0.038 against 0.075 us per pointer on the H200 machine's
// host, bench/NOTES.md), which a call on one row pays for each of its tensors.
using PointerAttributes = CUresult (*)(unsigned count, CUpointer_attribute* attributes, void** data,
                                       CUdeviceptr pointer);
// The driver's cuStreamGetCtx: one call where the runtime takes two (whether the stream is being
// captured, then its device), and one that a capturing stream answers too.
using StreamContext = CUresult (*)(CUstream stream, CUcontext* context);

// Whether the driver says at once that `data` is device memory of `device`; false sends the
// check on to the runtime, whose answer words every other case (host or managed memory, another
// device, an error).
bool is_memory_of_device(const void* data, int device) {
  static const auto query =
      reinterpret_cast<PointerAttributes>(driver_function("cuPointerGetAttributes"));
  if (query == nullptr) return false;
  CUpointer_attribute asked[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                 CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL};
  unsigned type = 0;
  int ordinal = -1;
  void* answers[] = {&type, &ordinal};
  return query(2, asked, answers, reinterpret_cast<CUdeviceptr>(data)) == CUDA_SUCCESS &&
         type == CU_MEMORYTYPE_DEVICE && ordinal == device;
}

// Whether the driver says at once that `stream` belongs to the context's primary context, i.e.
// to its device; false sends the check on to the runtime, which words every other case.
bool is_stream_of_context(const llmk_context& ctx, void* stream) {
  static const auto query = reinterpret_cast<StreamContext>(driver_function("cuStreamGetCtx"));
  if (query == nullptr || ctx.driver_context == nullptr) return false;
  CUcontext owner = nullptr;
  return query(static_cast<CUstream>(stream), &owner) == CUDA_SUCCESS &&
         owner == ctx.driver_context;
}

// The same elements with dense trailing dimensions merged and extents of 1 dropped, so that e.g.
// [tokens, heads, head_dim] with dense heads is seen as rows of heads * head_dim.
llmk_tensor coalesced(const llmk_tensor& t) {
  llmk_tensor c = t;
  c.ndim = 0;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] == 1) continue;
    const int last = c.ndim - 1;
    if (c.ndim > 0 && c.strides[last] == t.shape[d] * t.strides[d]) {
      c.shape[last] *= t.shape[d];
      c.strides[last] = t.strides[d];
    } else {
      c.shape[c.ndim] = t.shape[d];
      c.strides[c.ndim] = t.strides[d];
      ++c.ndim;
    }
  }
  return c;
}

// Whether two non-empty views may share a byte. Beyond disjoint spans, it recognizes views that
// interleave without touching, such as two column blocks of one row-major buffer (x and y halves
// of each row, or q and k of a fused QKV buffer): when the last dimension of both is contiguous
// (after merging dense dimensions) and every other stride is a multiple of a period P, each view
// lies within segments [start + kP, start + kP + width), and two such families are disjoint when
// the second's start, taken modulo P, falls in the first's gap.
bool may_overlap(const llmk_tensor& a_view, const ByteRange& sa, const llmk_tensor& b_view,
                 const ByteRange& sb) {
  if (sa.end <= sb.begin || sb.end <= sa.begin) return false;
  const llmk_tensor a = coalesced(a_view), b = coalesced(b_view);
  if (a.ndim == 0 || b.ndim == 0 || a.strides[a.ndim - 1] != 1 || b.strides[b.ndim - 1] != 1 ||
      dtype_bits(a.dtype) % 8 != 0 || dtype_bits(b.dtype) % 8 != 0) {
    return true;
  }
  int64_t period = 0;
  for (const llmk_tensor* t : {&a, &b}) {
    const int64_t element = dtype_bits(t->dtype) / 8;
    for (int d = 0; d + 1 < t->ndim; ++d) {
      if (t->shape[d] > 1) period = std::gcd(period, t->strides[d] * element);
    }
  }
  if (period == 0) return true;
  const int64_t width_a = a.shape[a.ndim - 1] * (dtype_bits(a.dtype) / 8);
  const int64_t width_b = b.shape[b.ndim - 1] * (dtype_bits(b.dtype) / 8);
  // b's start relative to a's, reduced into [0, period): the difference is signed.
  const int64_t distance = static_cast<int64_t>(sb.begin - sa.begin);
  const int64_t shift = (distance % period + period) % period;
  return !(width_a <= shift && shift + width_b <= period);
}

}  // namespace

int64_t numel(const llmk_tensor& t) {
  int64_t n = 1;
  for (int d = 0; d < t.ndim; ++d) n *= t.shape[d];
  return n;
}

const llmk_tensor& check_view(const char* op, const Arg& a) {
  if (a.tensor == nullptr) fail(LLMK_ERROR_NULL_POINTER, "%s: %s is NULL", op, a.name);
  const llmk_tensor& t = *a.tensor;
  if (!is_known_dtype(t.dtype)) {
    fail(LLMK_ERROR_UNSUPPORTED_DTYPE, "%s: %s has dtype %d, which is not an llmk_dtype", op,
         a.name, t.dtype);
  }
  if (t.ndim < 0 || t.ndim > LLMK_MAX_DIMS) {
    fail(LLMK_ERROR_INVALID_NDIM, "%s: %s has ndim %d; it must be 0 to %d", op, a.name, t.ndim,
         LLMK_MAX_DIMS);
  }
  // One pass over the dimensions; a failure names the first bad dimension, as they come.
  int64_t count = 1, furthest = 0;
  bool empty = false, too_many = false, too_far = false;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0) {
      fail(LLMK_ERROR_INVALID_SHAPE, "%s: %s has a negative extent %lld in dimension %d", op,
           a.name, static_cast<long long>(t.shape[d]), d);
    }
    if (t.strides[d] < 0) {
      fail(LLMK_ERROR_INVALID_STRIDE, "%s: %s has a negative stride %lld in dimension %d", op,
           a.name, static_cast<long long>(t.strides[d]), d);
    }
    empty |= t.shape[d] == 0;
    too_many |= __builtin_mul_overflow(count, t.shape[d], &count);
    int64_t step;
    too_far |= __builtin_mul_overflow(t.shape[d] - 1, t.strides[d], &step);
    too_far |= __builtin_add_overflow(furthest, step, &furthest);
  }
  if (empty) {
    a.bytes = ByteRange{0, 0, true};
    return t;
  }
  if (too_many) fail(LLMK_ERROR_INVALID_SHAPE, "%s: %s has more than 2^63 elements", op, a.name);
  int64_t elements, bits;
  too_far |= __builtin_add_overflow(furthest, int64_t{1}, &elements);
  too_far |= __builtin_mul_overflow(elements, int64_t{dtype_bits(t.dtype)}, &bits);
  uintptr_t end;
  too_far |= __builtin_add_overflow(reinterpret_cast<uintptr_t>(t.data),
                                    static_cast<uintptr_t>(bits / 8 + 1), &end);
  if (too_far) {
    fail(LLMK_ERROR_INVALID_STRIDE, "%s: %s reaches beyond the address space with its strides", op,
         a.name);
  }
  if (t.data == nullptr) fail(LLMK_ERROR_NULL_POINTER, "%s: %s.data is NULL", op, a.name);
  const int element_bits = dtype_bits(t.dtype);
  if (element_bits >= 8 && reinterpret_cast<uintptr_t>(t.data) % (element_bits / 8) != 0) {
    fail(LLMK_ERROR_MISALIGNED, "%s: %s.data (%p) is not aligned to its %d-byte elements", op,
         a.name, t.data, element_bits / 8);
  }
  a.bytes = byte_range(t, furthest);
  return t;
}

void check_dtype(const char* op, const Arg& a, std::initializer_list<llmk_dtype> allowed) {
  for (llmk_dtype d : allowed) {
    if (a.tensor->dtype == d) return;
  }
  char names[64] = "";
  size_t used = 0;
  for (llmk_dtype d : allowed) {
    used +=
        std::snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", dtype_name(d));
  }
  fail(LLMK_ERROR_UNSUPPORTED_DTYPE, "%s: %s has dtype %s; supported: %s", op, a.name,
       dtype_name(a.tensor->dtype), names);
}

void check_same_dtype(const char* op, const Arg& a, const Arg& b) {
  if (a.tensor->dtype != b.tensor->dtype) {
    fail(LLMK_ERROR_DTYPE_MISMATCH, "%s: %s is %s but %s is %s", op, b.name,
         dtype_name(b.tensor->dtype), a.name, dtype_name(a.tensor->dtype));
  }
}

void check_ndim(const char* op, const Arg& a, int min_ndim, int max_ndim) {
  const int ndim = a.tensor->ndim;
  if (ndim < min_ndim || ndim > max_ndim) {
    if (min_ndim == max_ndim) {
      fail(LLMK_ERROR_INVALID_NDIM, "%s: %s has %d dimensions; it must have %d", op, a.name, ndim,
           min_ndim);
    }
    fail(LLMK_ERROR_INVALID_NDIM, "%s: %s has %d dimensions; it must have %d to %d", op, a.name,
         ndim, min_ndim, max_ndim);
  }
}

void check_same_shape(const char* op, const Arg& a, const Arg& b) {
  const llmk_tensor &ta = *a.tensor, &tb = *b.tensor;
  if (ta.ndim != tb.ndim) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %d dimensions but %s has %d", op, b.name, tb.ndim,
         a.name, ta.ndim);
  }
  for (int d = 0; d < ta.ndim; ++d) {
    if (ta.shape[d] != tb.shape[d]) {
      fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has extent %lld in dimension %d but %s has %lld", op,
           b.name, static_cast<long long>(tb.shape[d]), d, a.name,
           static_cast<long long>(ta.shape[d]));
    }
  }
}

void check_unit_stride(const char* op, const Arg& a, int dim) {
  const llmk_tensor& t = *a.tensor;
  if (t.shape[dim] > 1 && t.strides[dim] != 1) {
    fail(LLMK_ERROR_NOT_CONTIGUOUS,
         "%s: %s must be contiguous in dimension %d (stride 1), but its stride is %lld", op, a.name,
         dim, static_cast<long long>(t.strides[dim]));
  }
}

bool same_view(const llmk_tensor& a, const llmk_tensor& b) {
  if (a.data != b.data || a.dtype != b.dtype || a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; ++d) {
    if (a.shape[d] != b.shape[d] || (a.shape[d] > 1 && a.strides[d] != b.strides[d])) return false;
  }
  return true;
}

void check_no_overlap(const char* op, const Arg& out, const Arg& in, bool allow_identical) {
  const llmk_tensor &o = *out.tensor, &i = *in.tensor;
  const ByteRange &out_bytes = bytes_of(out), &in_bytes = bytes_of(in);
  if (out_bytes.begin == out_bytes.end || in_bytes.begin == in_bytes.end) return;
  if (allow_identical && same_view(o, i)) return;
  if (may_overlap(o, out_bytes, i, in_bytes)) {
    fail(LLMK_ERROR_OVERLAP, "%s: %s overlaps %s%s", op, out.name, in.name,
         allow_identical ? " (only the very same view is allowed, for in-place use)" : "");
  }
}

void check_not_self_overlapping(const char* op, const Arg& out) {
  const llmk_tensor& t = *out.tensor;
  if (numel(t) <= 1) return;
  int dims[LLMK_MAX_DIMS], n = 0;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] > 1) dims[n++] = d;
  }
  for (int k = 1; k < n; ++k) {  // insertion sort by stride: n <= LLMK_MAX_DIMS
    for (int j = k; j > 0 && t.strides[dims[j]] < t.strides[dims[j - 1]]; --j) {
      std::swap(dims[j], dims[j - 1]);
    }
  }
  int64_t reach = 0;  // furthest offset reachable with the dimensions sorted so far
  for (int k = 0; k < n; ++k) {
    const int d = dims[k];
    if (t.strides[d] <= reach) {
      fail(LLMK_ERROR_OVERLAP,
           "%s: %s has stride %lld in dimension %d, so distinct elements share memory", op,
           out.name, static_cast<long long>(t.strides[d]), d);
    }
    reach += (t.shape[d] - 1) * t.strides[d];
  }
}

void check_memory(const llmk_context& ctx, const char* op, const Arg& a) {
  if (!is_cuda(ctx) || numel(*a.tensor) == 0) return;
  if (is_memory_of_device(a.tensor->data, ctx.device)) return;
  cudaPointerAttributes attributes;
  const cudaError_t error = cudaPointerGetAttributes(&attributes, a.tensor->data);
  if (error != cudaSuccess) {
    if (status_from_cuda(error) == LLMK_ERROR_CUDA_CONTEXT_LOST) fail_cuda(op, error);
    cudaGetLastError();
    fail(LLMK_ERROR_WRONG_MEMORY_SPACE, "%s: %s.data (%p) is not memory the CUDA runtime knows", op,
         a.name, a.tensor->data);
  }
  switch (attributes.type) {
    case cudaMemoryTypeDevice:
      if (attributes.device != ctx.device) {
        fail(LLMK_ERROR_WRONG_DEVICE, "%s: %s is memory of device %d, but the context is on %d", op,
             a.name, attributes.device, ctx.device);
      }
      return;
    case cudaMemoryTypeManaged: return;
    default:
      fail(LLMK_ERROR_WRONG_MEMORY_SPACE,
           "%s: %s.data (%p) is host memory, but the context is on CUDA device %d", op, a.name,
           a.tensor->data, ctx.device);
  }
}

void check_stream(const llmk_context& ctx, const char* op, void* stream) {
  if (!is_cuda(ctx) || stream == nullptr || is_stream_of_context(ctx, stream)) return;
  // A capturing stream refuses cudaStreamGetDevice, and the refusal would invalidate the capture.
  // Such a stream skips the device check; a stream of another device then fails at launch.
  cudaStreamCaptureStatus capture;
  cudaError_t error = cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &capture);
  if (error == cudaSuccess && capture != cudaStreamCaptureStatusNone) return;
  int device = -1;
  if (error == cudaSuccess) error = cudaStreamGetDevice(static_cast<cudaStream_t>(stream), &device);
  if (error != cudaSuccess) {
    if (status_from_cuda(error) == LLMK_ERROR_CUDA_CONTEXT_LOST) fail_cuda(op, error);
    cudaGetLastError();
    fail(LLMK_ERROR_INVALID_VALUE, "%s: stream %p is not a valid CUDA stream: %s", op, stream,
         cudaGetErrorString(error));
  }
  if (device != ctx.device) {
    fail(LLMK_ERROR_WRONG_DEVICE, "%s: stream belongs to device %d, but the context is on %d", op,
         device, ctx.device);
  }
}

RowShape merge_rows(const char* op, const llmk_tensor* const* tensors, RowStrides* strides,
                    int count) {
  const llmk_tensor& first = *tensors[0];
  const int lead = first.ndim - 1;  // leading dimensions of [..., n]
  RowShape shape{1, 0, {}};
  for (int t = 0; t < count; ++t) strides[t] = RowStrides{};
  int64_t merged_extent[LLMK_MAX_DIMS];
  int64_t merged_stride[LLMK_MAX_DIMS][LLMK_MAX_DIMS];  // [tensor][dim]
  int merged = 0;
  // Outermost to innermost; a dimension joins the previous one when every tensor steps over the
  // previous dimension exactly as far as the whole of this one reaches.
  for (int d = 0; d < lead; ++d) {
    const int64_t extent = first.shape[d];
    shape.count *= extent;
    if (extent == 1) continue;
    bool joins = merged > 0;
    for (int t = 0; t < count && joins; ++t) {
      joins = merged_stride[t][merged - 1] == tensors[t]->strides[d] * extent;
    }
    if (joins) {
      merged_extent[merged - 1] *= extent;
      for (int t = 0; t < count; ++t) merged_stride[t][merged - 1] = tensors[t]->strides[d];
    } else {
      merged_extent[merged] = extent;
      for (int t = 0; t < count; ++t) merged_stride[t][merged] = tensors[t]->strides[d];
      ++merged;
    }
  }
  if (merged > kMaxRowDims) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: the leading dimensions of the tensors merge into %d strided dimensions; at most %d "
         "are supported",
         op, merged, kMaxRowDims);
  }
  shape.ndim = merged;
  for (int d = 0; d < merged; ++d) {
    shape.extent[d] = merged_extent[d];
    for (int t = 0; t < count; ++t) strides[t].stride[d] = merged_stride[t][d];
  }
  return shape;
}

}  // namespace llmk
