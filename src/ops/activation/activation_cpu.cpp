// Reference activations on the CPU: the formulas of llmk.h in float64, each output rounded once.
// It is the oracle the GPU tests compare against, so it favours being obviously right over speed.
//
//   bias_activation:   y = a(x + bias)      (bias optional)
//   gated_activation:  y = a(gate) * up
#include <cmath>

#include "activation.hpp"
#include "core/error.hpp"
#include "core/numeric.hpp"

namespace llmk {

double activate(llmk_activation activation, double v) {
  switch (activation) {
    case LLMK_ACTIVATION_IDENTITY: return v;
    // x * Phi(x), with Phi(x) = erfc(-x / sqrt(2)) / 2: the same as x/2 * (1 + erf(x / sqrt(2))),
    // without its cancellation for negative x.
    case LLMK_ACTIVATION_GELU: return 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    case LLMK_ACTIVATION_GELU_TANH: {
      const double sqrt_2_over_pi = std::sqrt(2.0 / M_PI);
      return 0.5 * v * (1.0 + std::tanh(sqrt_2_over_pi * (v + 0.044715 * v * v * v)));
    }
    case LLMK_ACTIVATION_SILU: return v / (1.0 + std::exp(-v));
    case LLMK_ACTIVATION_RELU: return v < 0.0 ? 0.0 : v;
  }
  fail(LLMK_ERROR_INTERNAL, "activation_cpu: activation %d reached the backend", activation);
}

namespace {

template <llmk_dtype D>
void activation_rows(const ActivationParams& p) {
  using E = Element<D>;
  using T = typename E::Storage;
  const T* bias = static_cast<const T*>(p.bias);
  for (int64_t r = 0; r < p.rows.count; ++r) {
    const T* x = static_cast<const T*>(p.x) + row_offset(p.rows, p.x_strides, r);
    T* y = static_cast<T*>(p.y) + row_offset(p.rows, p.y_strides, r);
    const T* up = p.form == ActivationForm::gated
                      ? static_cast<const T*>(p.up) + row_offset(p.rows, p.up_strides, r)
                      : nullptr;
    for (int64_t i = 0; i < p.n; ++i) {
      double v = E::load(x[i]);
      if (p.form == ActivationForm::bias) v += E::load(bias[i]);
      double out = activate(p.activation, v);
      if (p.form == ActivationForm::gated) out *= E::load(up[i]);
      y[i] = E::store(out);  // after every read of element i: y may be x or up
    }
  }
}

}  // namespace

void activation_cpu(const ActivationParams& p) {
  switch (p.dtype) {
    case LLMK_DTYPE_F32: return activation_rows<LLMK_DTYPE_F32>(p);
    case LLMK_DTYPE_F16: return activation_rows<LLMK_DTYPE_F16>(p);
    case LLMK_DTYPE_BF16: return activation_rows<LLMK_DTYPE_BF16>(p);
    default: fail(LLMK_ERROR_INTERNAL, "activation_cpu: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
