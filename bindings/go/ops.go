package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_rms_norm(void* ctx, void* x_data, llmkgo_view x_view,
                                     void* weight_data, llmkgo_view weight_view, float eps,
                                     void* y_data, llmkgo_view y_view, void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor weight = llmkgo_tensor(weight_data, weight_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(llmk_rms_norm(ctx, &x, &weight, eps, &y, stream));
}

static llmkgo_result llmkgo_add_rms_norm(void* ctx, void* x_data, llmkgo_view x_view,
                                         void* residual_data, llmkgo_view residual_view,
                                         void* weight_data, llmkgo_view weight_view, float eps,
                                         void* y_data, llmkgo_view y_view, void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor residual = llmkgo_tensor(residual_data, residual_view);
  const llmk_tensor weight = llmkgo_tensor(weight_data, weight_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(llmk_add_rms_norm(ctx, &x, &residual, &weight, eps, &y, stream));
}

static llmkgo_result llmkgo_layer_norm(void* ctx, void* x_data, llmkgo_view x_view,
                                       void* weight_data, llmkgo_view weight_view, int has_bias,
                                       void* bias_data, llmkgo_view bias_view, float eps,
                                       void* y_data, llmkgo_view y_view, void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor weight = llmkgo_tensor(weight_data, weight_view);
  const llmk_tensor bias = llmkgo_tensor(bias_data, bias_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(
      llmk_layer_norm(ctx, &x, &weight, has_bias ? &bias : NULL, eps, &y, stream));
}
*/
import "C"

import "unsafe"

// The ops below normalize x of shape [..., hidden] row by row over its last dimension. x, y (and
// residual) share one shape; their last dimension is contiguous, the leading ones may have any
// strides. weight and bias have shape [hidden], contiguous. All tensors share one dtype: F32, F16
// or BF16. eps must be finite and >= 0. y may be exactly x (same data, shape and strides) for in
// place use; any other overlap of an output with another tensor fails with StatusOverlap.
//
// A tensor's data pointer reaches C as an argument of its own, which cgo keeps reachable for the
// whole call, so a Go slice behind a Tensor cannot be collected while the library uses it. On a
// CUDA context the library refuses Go memory (StatusWrongMemorySpace) instead of keeping a
// pointer to it past the call.

// RMSNorm computes y = x / sqrt(mean(x^2) + eps) * weight.
func RMSNorm(ctx *Context, x, weight Tensor, eps float32, y Tensor, stream Stream) error {
	r := C.llmkgo_rms_norm(ctx.ptr(), x.data, x.view(), weight.data, weight.view(), C.float(eps),
		y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}

// AddRMSNorm computes residual = x + residual (rounded to the dtype), overwriting residual, then
// y = RMSNorm(residual): the sum is what the next layer's skip connection adds. residual may
// overlap no other tensor.
func AddRMSNorm(ctx *Context, x, residual, weight Tensor, eps float32, y Tensor, stream Stream) error {
	r := C.llmkgo_add_rms_norm(ctx.ptr(), x.data, x.view(), residual.data, residual.view(),
		weight.data, weight.view(), C.float(eps), y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}

// LayerNorm computes y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, var being the biased
// variance. A nil bias means no bias.
func LayerNorm(ctx *Context, x, weight Tensor, bias *Tensor, eps float32, y Tensor, stream Stream) error {
	hasBias := C.int(0)
	var biasData unsafe.Pointer
	var biasView C.llmkgo_view
	if bias != nil {
		hasBias, biasData, biasView = 1, bias.data, bias.view()
	}
	r := C.llmkgo_layer_norm(ctx.ptr(), x.data, x.view(), weight.data, weight.view(), hasBias,
		biasData, biasView, C.float(eps), y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}
