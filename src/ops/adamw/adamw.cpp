// The C entries of AdamW: every argument check, the step's scalars in f64, then the backend.
#include "adamw.hpp"

#include <cmath>
#include <optional>

#include "core/config.hpp"
#include "core/cuda_util.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

constexpr const char* kOp = "adamw_step";

void check_config(const llmk_adamw_config& c) {
  if (!(std::isfinite(c.lr) && c.lr >= 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->lr is %g; it must be finite and >= 0", kOp, c.lr);
  }
  if (!(c.beta1 >= 0.0 && c.beta1 < 1.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->beta1 is %g; it must lie in [0, 1)", kOp, c.beta1);
  }
  if (!(c.beta2 >= 0.0 && c.beta2 < 1.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->beta2 is %g; it must lie in [0, 1)", kOp, c.beta2);
  }
  if (!(std::isfinite(c.eps) && c.eps > 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->eps is %g; it must be finite and > 0", kOp, c.eps);
  }
  if (!(std::isfinite(c.weight_decay) && c.weight_decay >= 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->weight_decay is %g; it must be finite and >= 0",
         kOp, c.weight_decay);
  }
  if (c.step < 1) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->step is %lld; steps count from 1", kOp,
         static_cast<long long>(c.step));
  }
}

void run_adamw(llmk_context* ctx_handle, const llmk_adamw_config* config_arg,
               const llmk_tensor* param_view, const llmk_tensor* grad_view,
               const llmk_tensor* exp_avg_view, const llmk_tensor* exp_avg_sq_view, void* stream) {
  const llmk_context& ctx = require_context(kOp, ctx_handle);
  const llmk_adamw_config config =
      read_config(kOp, "config", config_arg, sizeof(llmk_adamw_config), llmk_adamw_config_init);
  const Arg param{"param", param_view}, grad{"grad", grad_view}, exp_avg{"exp_avg", exp_avg_view},
      exp_avg_sq{"exp_avg_sq", exp_avg_sq_view};
  const Arg outputs[] = {param, exp_avg, exp_avg_sq};

  for (const Arg& a : {param, grad, exp_avg, exp_avg_sq}) check_view(kOp, a);
  for (const Arg& a : outputs) check_dtype(kOp, a, {LLMK_DTYPE_F32});
  check_dtype(kOp, grad, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});

  check_ndim(kOp, param, 1, LLMK_MAX_DIMS);
  for (const Arg& a : {grad, exp_avg, exp_avg_sq}) check_same_shape(kOp, param, a);
  const int last = param_view->ndim - 1;
  for (const Arg& a : {param, grad, exp_avg, exp_avg_sq}) check_unit_stride(kOp, a, last);

  for (const Arg& a : outputs) check_not_self_overlapping(kOp, a);
  check_no_overlap(kOp, param, grad, false);
  check_no_overlap(kOp, param, exp_avg, false);
  check_no_overlap(kOp, param, exp_avg_sq, false);
  check_no_overlap(kOp, exp_avg, grad, false);
  check_no_overlap(kOp, exp_avg, exp_avg_sq, false);
  check_no_overlap(kOp, exp_avg_sq, grad, false);

  check_config(config);

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {param, grad, exp_avg, exp_avg_sq}) check_memory(ctx, kOp, a);
    check_stream(ctx, kOp, stream);
  }

  if (numel(*param_view) == 0) return;

  AdamWParams p{};
  const llmk_tensor* row_tensors[] = {param_view, grad_view, exp_avg_view, exp_avg_sq_view};
  RowStrides strides[4];
  p.rows = merge_rows(kOp, row_tensors, strides, 4);
  p.columns = param_view->shape[last];
  // Rows that follow each other without a gap in every tensor are one longer row: a contiguous
  // tensor becomes a single row, however it is shaped, and the kernel sees one long stream.
  while (p.rows.ndim > 0) {
    const int inner = p.rows.ndim - 1;
    bool back_to_back = true;
    for (const RowStrides& s : strides) back_to_back &= s.stride[inner] == p.columns;
    if (!back_to_back) break;
    p.columns *= p.rows.extent[inner];
    p.rows.count /= p.rows.extent[inner];
    for (RowStrides& s : strides) s.stride[inner] = 0;
    p.rows.extent[inner] = 0;
    p.rows.ndim = inner;
  }
  p.grad_dtype = static_cast<llmk_dtype>(grad_view->dtype);
  p.param = static_cast<float*>(param_view->data);
  p.param_strides = strides[0];
  p.grad = grad_view->data;
  p.grad_strides = strides[1];
  p.exp_avg = static_cast<float*>(exp_avg_view->data);
  p.exp_avg_strides = strides[2];
  p.exp_avg_sq = static_cast<float*>(exp_avg_sq_view->data);
  p.exp_avg_sq_strides = strides[3];

  const double step = static_cast<double>(config.step);
  p.beta1 = config.beta1;
  p.beta2 = config.beta2;
  p.eps = config.eps;
  p.decay = 1.0 - config.lr * config.weight_decay;
  p.step_size = config.lr / (1.0 - std::pow(config.beta1, step));
  p.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(config.beta2, step));

  if (is_cuda(ctx)) {
    adamw_cuda(p, stream);
  } else {
    adamw_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

extern "C" {

LLMK_API void llmk_adamw_config_init(llmk_adamw_config* config) {
  if (config == nullptr) return;
  *config = llmk_adamw_config{};
  config->struct_size = sizeof(llmk_adamw_config);
  config->lr = 1e-3;
  config->beta1 = 0.9;
  config->beta2 = 0.999;
  config->eps = 1e-8;
  config->weight_decay = 1e-2;
  config->step = 1;
}

LLMK_API llmk_status llmk_adamw_step(llmk_context* ctx, const llmk_adamw_config* config,
                                     const llmk_tensor* param, const llmk_tensor* grad,
                                     const llmk_tensor* exp_avg, const llmk_tensor* exp_avg_sq,
                                     void* stream) {
  return llmk::api_call(
      [&] { llmk::run_adamw(ctx, config, param, grad, exp_avg, exp_avg_sq, stream); });
}

}  // extern "C"
