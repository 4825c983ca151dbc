// The C entries of the normalization ops: every argument check, then the backend.
#include "norm.hpp"

#include <cmath>
#include <optional>

#include "core/cuda_util.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

void run_norm(const char* op, NormKind kind, llmk_context* ctx_handle, const llmk_tensor* x_view,
              const llmk_tensor* residual_view, const llmk_tensor* weight_view,
              const llmk_tensor* bias_view, float eps, const llmk_tensor* y_view, void* stream) {
  const llmk_context& ctx = require_context(op, ctx_handle);
  const Arg x{"x", x_view}, residual{"residual", residual_view}, weight{"weight", weight_view},
      bias{"bias", bias_view}, y{"y", y_view};
  const bool has_residual = kind == NormKind::add_rms;
  const bool has_bias = bias_view != nullptr;

  check_view(op, x);
  if (has_residual) check_view(op, residual);
  check_view(op, weight);
  if (has_bias) check_view(op, bias);
  check_view(op, y);

  check_dtype(op, x, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  if (has_residual) check_same_dtype(op, x, residual);
  check_same_dtype(op, x, weight);
  if (has_bias) check_same_dtype(op, x, bias);
  check_same_dtype(op, x, y);

  check_ndim(op, x, 1, LLMK_MAX_DIMS);
  if (has_residual) check_same_shape(op, x, residual);
  check_same_shape(op, x, y);
  const int last = x_view->ndim - 1;
  const int64_t hidden = x_view->shape[last];
  for (const Arg& parameter : {weight, bias}) {
    if (parameter.tensor == nullptr) continue;
    check_ndim(op, parameter, 1, 1);
    if (parameter.tensor->shape[0] != hidden) {
      fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %lld elements, x rows have %lld", op,
           parameter.name, static_cast<long long>(parameter.tensor->shape[0]),
           static_cast<long long>(hidden));
    }
    check_unit_stride(op, parameter, 0);
  }
  check_unit_stride(op, x, last);
  if (has_residual) check_unit_stride(op, residual, last);
  check_unit_stride(op, y, last);

  check_not_self_overlapping(op, y);
  check_no_overlap(op, y, x, /*allow_identical=*/true);
  check_no_overlap(op, y, weight, false);
  if (has_bias) check_no_overlap(op, y, bias, false);
  if (has_residual) {
    check_not_self_overlapping(op, residual);
    check_no_overlap(op, residual, x, false);
    check_no_overlap(op, residual, weight, false);
    check_no_overlap(op, y, residual, false);
  }

  if (!(std::isfinite(eps) && eps >= 0.0f)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: eps is %g; it must be finite and >= 0", op, eps);
  }

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {x, residual, weight, bias, y}) {
      if (a.tensor != nullptr) check_memory(ctx, op, a);
    }
    check_stream(ctx, op, stream);
  }

  if (numel(*x_view) == 0) return;

  NormParams p{};
  const llmk_tensor* row_tensors[] = {x_view, y_view, has_residual ? residual_view : x_view};
  RowStrides strides[3];
  p.rows = merge_rows(op, row_tensors, strides, 3);
  p.kind = kind;
  p.dtype = static_cast<llmk_dtype>(x_view->dtype);
  p.hidden = hidden;
  p.x = x_view->data;
  p.x_strides = strides[0];
  p.y = y_view->data;
  p.y_strides = strides[1];
  if (has_residual) {
    p.residual = residual_view->data;
    p.residual_strides = strides[2];
  }
  p.weight = weight_view->data;
  p.bias = has_bias ? bias_view->data : nullptr;
  p.eps = eps;

  if (is_cuda(ctx)) {
    norm_cuda(op, p, ctx, stream);
  } else {
    norm_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

using llmk::NormKind;

extern "C" {

LLMK_API llmk_status llmk_rms_norm(llmk_context* ctx, const llmk_tensor* x,
                                   const llmk_tensor* weight, float eps, const llmk_tensor* y,
                                   void* stream) {
  return llmk::api_call([&] {
    llmk::run_norm("rms_norm", NormKind::rms, ctx, x, nullptr, weight, nullptr, eps, y, stream);
  });
}

LLMK_API llmk_status llmk_add_rms_norm(llmk_context* ctx, const llmk_tensor* x,
                                       const llmk_tensor* residual, const llmk_tensor* weight,
                                       float eps, const llmk_tensor* y, void* stream) {
  return llmk::api_call([&] {
    llmk::run_norm("add_rms_norm", NormKind::add_rms, ctx, x, residual, weight, nullptr, eps, y,
                   stream);
  });
}

LLMK_API llmk_status llmk_layer_norm(llmk_context* ctx, const llmk_tensor* x,
                                     const llmk_tensor* weight, const llmk_tensor* bias, float eps,
                                     const llmk_tensor* y, void* stream) {
  return llmk::api_call([&] {
    llmk::run_norm("layer_norm", NormKind::layer, ctx, x, nullptr, weight, bias, eps, y, stream);
  });
}

}  // extern "C"
