// The normalization ops (rms_norm, add_rms_norm, layer_norm) as their backends see them: one
// params struct of checked pointers and strides, and one entry per backend.
#pragma once

#include "core/context.hpp"
#include "core/rows.hpp"

namespace llmk {

enum class NormKind { rms, add_rms, layer };

struct NormParams {
  NormKind kind;
  llmk_dtype dtype;  // of every tensor
  int64_t hidden;    // elements per row, > 0
  RowShape rows;     // count > 0
  const void* x;
  RowStrides x_strides;
  void* residual;  // add_rms: read, then overwritten with x + residual
  RowStrides residual_strides;
  const void* weight;  // [hidden], contiguous
  const void* bias;    // layer: [hidden] or null
  void* y;
  RowStrides y_strides;
  float eps;
};

// The reference: f64 accumulation, each output rounded once.
void norm_cpu(const NormParams& p);

// Launches on `stream` of the current device (the caller has set it); fails with
// LLMK_ERROR_CUDA or LLMK_ERROR_CUDA_CONTEXT_LOST if the launch does.
void norm_cuda(const char* op, const NormParams& p, const llmk_context& ctx, void* stream);

}  // namespace llmk
