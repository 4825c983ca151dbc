// Reference AdamW on the CPU: the header's formulas in float64, each output rounded once to f32.
// It is the oracle the GPU tests compare against, so it favours being obviously right over speed.
//
//   param      = param * (1 - lr * weight_decay)
//   exp_avg    = beta1 * exp_avg + (1 - beta1) * grad
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad^2
//   param      = param - step_size * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)
//
// The update uses the new moments before their rounding to f32.
#include <cmath>

#include "adamw.hpp"
#include "core/error.hpp"
#include "core/numeric.hpp"

namespace llmk {
namespace {

template <class GradLoader>
void adamw_rows(const AdamWParams& p, GradLoader&& grad_at) {
  for (int64_t r = 0; r < p.rows.count; ++r) {
    float* param = p.param + row_offset(p.rows, p.param_strides, r);
    float* exp_avg = p.exp_avg + row_offset(p.rows, p.exp_avg_strides, r);
    float* exp_avg_sq = p.exp_avg_sq + row_offset(p.rows, p.exp_avg_sq_strides, r);
    const int64_t grad_row = row_offset(p.rows, p.grad_strides, r);
    for (int64_t i = 0; i < p.columns; ++i) {
      const double g = grad_at(grad_row + i);
      const double m = p.beta1 * exp_avg[i] + (1.0 - p.beta1) * g;
      const double v = p.beta2 * exp_avg_sq[i] + (1.0 - p.beta2) * g * g;
      const double denom = std::sqrt(v) / p.bias_correction2_sqrt + p.eps;
      param[i] = static_cast<float>(param[i] * p.decay - p.step_size * m / denom);
      exp_avg[i] = static_cast<float>(m);
      exp_avg_sq[i] = static_cast<float>(v);
    }
  }
}

}  // namespace

void adamw_cpu(const AdamWParams& p) {
  switch (p.grad_dtype) {
    case LLMK_DTYPE_F32: {
      const auto* grad = static_cast<const float*>(p.grad);
      return adamw_rows(p, [&](int64_t i) { return double{grad[i]}; });
    }
    case LLMK_DTYPE_F16: {
      const auto* grad = static_cast<const uint16_t*>(p.grad);
      return adamw_rows(p, [&](int64_t i) { return f16_to_double(grad[i]); });
    }
    case LLMK_DTYPE_BF16: {
      const auto* grad = static_cast<const uint16_t*>(p.grad);
      return adamw_rows(p, [&](int64_t i) { return bf16_to_double(grad[i]); });
    }
    default:
      fail(LLMK_ERROR_INTERNAL, "adamw_cpu: grad dtype %d reached the backend", p.grad_dtype);
  }
}

}  // namespace llmk
