// llmk_adamw_step as its backends see it: one params struct of checked pointers and strides, the
// step's scalars in f64, and one entry per backend.
#pragma once

#include "core/context.hpp"
#include "core/rows.hpp"

namespace llmk {

struct AdamWParams {
  llmk_dtype grad_dtype;  // F32, F16 or BF16; the three other tensors are F32
  // Elements per row: the last dimension, times the innermost leading dimensions whose rows lie
  // back to back in every tensor (a contiguous tensor is one row).
  int64_t columns;
  RowShape rows;  // count > 0
  float* param;
  RowStrides param_strides;
  const void* grad;
  RowStrides grad_strides;
  float* exp_avg;
  RowStrides exp_avg_strides;
  float* exp_avg_sq;
  RowStrides exp_avg_sq_strides;

  // The hyperparameters, checked, and what they give for this step, in f64 once per call.
  double beta1, beta2, eps;
  double decay;                  // 1 - lr * weight_decay
  double step_size;              // lr / (1 - beta1^step)
  double bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

// The reference: f64 math, each output rounded once.
void adamw_cpu(const AdamWParams& p);

// Launches on `stream` of the current device (the caller has set it); fails with
// LLMK_ERROR_CUDA or LLMK_ERROR_CUDA_CONTEXT_LOST if the launch does.
void adamw_cuda(const AdamWParams& p, void* stream);

}  // namespace llmk
