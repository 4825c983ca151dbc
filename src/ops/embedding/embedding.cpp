// The C entry of llmk_embedding: every argument check, then the backend.
#include "embedding.hpp"

#include <optional>

#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

constexpr const char* kOp = "embedding";

void run_embedding(llmk_context* ctx_handle, const llmk_tensor* ids_view,
                   const llmk_tensor* table_view, const llmk_tensor* y_view, void* stream) {
  const llmk_context& ctx = require_context(kOp, ctx_handle);
  const Arg ids{"ids", ids_view}, table{"table", table_view}, y{"y", y_view};
  for (const Arg& a : {ids, table, y}) check_view(kOp, a);

  check_dtype(kOp, ids, {LLMK_DTYPE_I32, LLMK_DTYPE_I64});
  check_dtype(kOp, table, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  check_same_dtype(kOp, table, y);

  check_ndim(kOp, ids, 1, 1);
  check_ndim(kOp, table, 2, 2);
  check_ndim(kOp, y, 2, 2);
  const int64_t tokens = ids_view->shape[0], hidden = table_view->shape[1];
  if (y_view->shape[0] != tokens) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: y has %lld rows, ids has %lld tokens", kOp,
         static_cast<long long>(y_view->shape[0]), static_cast<long long>(tokens));
  }
  if (y_view->shape[1] != hidden) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: y rows have %lld elements, table rows have %lld", kOp,
         static_cast<long long>(y_view->shape[1]), static_cast<long long>(hidden));
  }
  check_unit_stride(kOp, table, 1);
  check_unit_stride(kOp, y, 1);

  check_not_self_overlapping(kOp, y);
  check_no_overlap(kOp, y, ids, false);
  check_no_overlap(kOp, y, table, false);

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {ids, table, y}) check_memory(ctx, kOp, a);
    check_stream(ctx, kOp, stream);
  }

  if (numel(*y_view) == 0) return;

  EmbeddingParams p{};
  p.dtype = static_cast<llmk_dtype>(table_view->dtype);
  p.element_bytes = dtype_bits(p.dtype) / 8;
  p.tokens = tokens;
  p.vocab = table_view->shape[0];
  p.hidden = hidden;
  p.ids = ids_view->data;
  p.ids_dtype = static_cast<llmk_dtype>(ids_view->dtype);
  p.ids_stride = ids_view->strides[0];
  p.table = table_view->data;
  p.table_stride = table_view->strides[0];
  p.y = y_view->data;
  p.y_stride = y_view->strides[0];

  if (is_cuda(ctx)) {
    embedding_cuda(p, stream);
  } else {
    embedding_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

extern "C" {

LLMK_API llmk_status llmk_embedding(llmk_context* ctx, const llmk_tensor* ids,
                                    const llmk_tensor* table, const llmk_tensor* y, void* stream) {
  return llmk::api_call([&] { llmk::run_embedding(ctx, ids, table, y, stream); });
}

}  // extern "C"
