// The C entries of the activation ops: every argument check, then the backend.
#include "activation.hpp"

#include <optional>

#include "core/cuda_util.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

// x is bias_activation's x or gated_activation's gate; `second` is the bias (may be absent) or
// up, as `form` says.
void run_activation(const char* op, ActivationForm form, llmk_context* ctx_handle, Arg x,
                    Arg second, llmk_activation activation, Arg y, void* stream) {
  const llmk_context& ctx = require_context(op, ctx_handle);
  const bool gated = form == ActivationForm::gated;
  const bool has_bias = form == ActivationForm::bias;

  check_view(op, x);
  if (gated || has_bias) check_view(op, second);
  check_view(op, y);

  check_dtype(op, x, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  if (gated || has_bias) check_same_dtype(op, x, second);
  check_same_dtype(op, x, y);

  check_ndim(op, x, 1, LLMK_MAX_DIMS);
  if (gated) check_same_shape(op, x, second);
  check_same_shape(op, x, y);
  const int last = x.tensor->ndim - 1;
  const int64_t n = x.tensor->shape[last];
  if (has_bias) {
    check_ndim(op, second, 1, 1);
    if (second.tensor->shape[0] != n) {
      fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: bias has %lld elements, x rows have %lld", op,
           static_cast<long long>(second.tensor->shape[0]), static_cast<long long>(n));
    }
    check_unit_stride(op, second, 0);
  }
  check_unit_stride(op, x, last);
  if (gated) check_unit_stride(op, second, last);
  check_unit_stride(op, y, last);

  check_not_self_overlapping(op, y);
  check_no_overlap(op, y, x, /*allow_identical=*/true);
  if (gated || has_bias) check_no_overlap(op, y, second, /*allow_identical=*/gated);

  check_activation(op, "activation", activation);

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {x, second, y}) {
      if (a.tensor != nullptr) check_memory(ctx, op, a);
    }
    check_stream(ctx, op, stream);
  }

  if (numel(*x.tensor) == 0) return;

  ActivationParams p{};
  const llmk_tensor* row_tensors[] = {x.tensor, y.tensor, gated ? second.tensor : x.tensor};
  RowStrides strides[3];
  p.rows = merge_rows(op, row_tensors, strides, 3);
  p.form = form;
  p.activation = activation;
  p.dtype = static_cast<llmk_dtype>(x.tensor->dtype);
  p.n = n;
  p.x = x.tensor->data;
  p.x_strides = strides[0];
  p.y = y.tensor->data;
  p.y_strides = strides[1];
  if (has_bias) p.bias = second.tensor->data;
  if (gated) {
    p.up = second.tensor->data;
    p.up_strides = strides[2];
  }

  if (is_cuda(ctx)) {
    activation_cuda(p, stream);
  } else {
    activation_cpu(p);
  }
}

}  // namespace

void check_activation(const char* op, const char* name, int32_t value) {
  if (value < LLMK_ACTIVATION_IDENTITY || value > LLMK_ACTIVATION_RELU) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: %s is %d, which is not an llmk_activation", op, name,
         value);
  }
}

}  // namespace llmk

using llmk::ActivationForm;

extern "C" {

LLMK_API llmk_status llmk_bias_activation(llmk_context* ctx, const llmk_tensor* x,
                                          const llmk_tensor* bias, llmk_activation activation,
                                          const llmk_tensor* y, void* stream) {
  return llmk::api_call([&] {
    llmk::run_activation("bias_activation",
                         bias != nullptr ? ActivationForm::bias : ActivationForm::plain, ctx,
                         {"x", x}, {"bias", bias}, activation, {"y", y}, stream);
  });
}

LLMK_API llmk_status llmk_gated_activation(llmk_context* ctx, const llmk_tensor* gate,
                                           const llmk_tensor* up, llmk_activation activation,
                                           const llmk_tensor* y, void* stream) {
  return llmk::api_call([&] {
    llmk::run_activation("gated_activation", ActivationForm::gated, ctx, {"gate", gate}, {"up", up},
                         activation, {"y", y}, stream);
  });
}

}  // extern "C"
