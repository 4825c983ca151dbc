// The activation ops (bias_activation, gated_activation) as their backends see them: one params
// struct of checked pointers and strides, and one entry per backend.
#pragma once

#include "core/context.hpp"
#include "core/rows.hpp"

namespace llmk {

// What the activation is applied to, and what the result is multiplied by.
enum class ActivationForm {
  plain,  // y = a(x): bias_activation without a bias
  bias,   // y = a(x + bias)
  gated,  // y = a(gate) * up
};

struct ActivationParams {
  ActivationForm form;
  llmk_activation activation;
  llmk_dtype dtype;  // of every tensor
  int64_t n;         // elements per row, > 0
  RowShape rows;     // count > 0
  const void* x;     // bias_activation's x, gated_activation's gate
  RowStrides x_strides;
  const void* bias;  // bias: [n], contiguous
  const void* up;    // gated
  RowStrides up_strides;
  void* y;  // may be exactly x, or exactly up
  RowStrides y_strides;
};

// Fails with LLMK_ERROR_INVALID_VALUE, naming `name`, unless `value` is an llmk_activation.
void check_activation(const char* op, const char* name, int32_t value);

// The reference: f64 math, each output rounded once.
void activation_cpu(const ActivationParams& p);
// a(v) in f64, the formulas of llmk.h: what every CPU reference applies.
double activate(llmk_activation activation, double v);

// Launches on `stream` of the current device (the caller has set it); fails with
// LLMK_ERROR_CUDA or LLMK_ERROR_CUDA_CONTEXT_LOST if the launch does.
void activation_cuda(const ActivationParams& p, void* stream);

}  // namespace llmk
