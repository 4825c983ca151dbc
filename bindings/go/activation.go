package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_bias_activation(void* ctx, void* x_data, llmkgo_view x_view,
                                            int has_bias, void* bias_data, llmkgo_view bias_view,
                                            int32_t activation, void* y_data,
                                            llmkgo_view y_view, void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor bias = llmkgo_tensor(bias_data, bias_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(
      llmk_bias_activation(ctx, &x, has_bias ? &bias : NULL, (llmk_activation)activation, &y,
                           stream));
}

static llmkgo_result llmkgo_gated_activation(void* ctx, void* gate_data, llmkgo_view gate_view,
                                             void* up_data, llmkgo_view up_view,
                                             int32_t activation, void* y_data,
                                             llmkgo_view y_view, void* stream) {
  const llmk_tensor gate = llmkgo_tensor(gate_data, gate_view);
  const llmk_tensor up = llmkgo_tensor(up_data, up_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(
      llmk_gated_activation(ctx, &gate, &up, (llmk_activation)activation, &y, stream));
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Activation mirrors llmk_activation: the elementwise function a of BiasActivation and
// GatedActivation.
type Activation int32

// The values of llmk_activation.
const (
	ActivationIdentity Activation = C.LLMK_ACTIVATION_IDENTITY  // a(x) = x
	ActivationGELU     Activation = C.LLMK_ACTIVATION_GELU      // exact: x/2 * (1 + erf(x / sqrt(2)))
	ActivationGELUTanh Activation = C.LLMK_ACTIVATION_GELU_TANH // x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
	ActivationSiLU     Activation = C.LLMK_ACTIVATION_SILU      // x * sigmoid(x)
	ActivationReLU     Activation = C.LLMK_ACTIVATION_RELU      // max(x, 0)
)

// String is the name of the C constant without its prefix, in lower case, e.g. "gelu_tanh".
func (a Activation) String() string {
	switch a {
	case ActivationIdentity:
		return "identity"
	case ActivationGELU:
		return "gelu"
	case ActivationGELUTanh:
		return "gelu_tanh"
	case ActivationSiLU:
		return "silu"
	case ActivationReLU:
		return "relu"
	}
	return fmt.Sprintf("Activation(%d)", int32(a))
}

// The activations work elementwise over tensors [..., n] whose last dimension is contiguous; the
// leading dimensions may have any strides, each tensor its own (merging into at most 3, as for the
// norms). All tensors share one dtype: F32, F16 or BF16. Each output element is rounded once.

// BiasActivation computes y = a(x + bias): bias + GELU (either form), or, with a nil bias, plain
// GELU, SiLU or ReLU. x and y have one shape [..., n]; bias is [n], contiguous. y may be exactly x
// (in place); any other overlap fails with StatusOverlap.
func BiasActivation(ctx *Context, x Tensor, bias *Tensor, activation Activation, y Tensor, stream Stream) error {
	hasBias := C.int(0)
	var biasData unsafe.Pointer
	var biasView C.llmkgo_view
	if bias != nil {
		hasBias, biasData, biasView = 1, bias.data, bias.view()
	}
	r := C.llmkgo_bias_activation(ctx.ptr(), x.data, x.view(), hasBias, biasData, biasView,
		C.int32_t(activation), y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}

// GatedActivation computes y = a(gate) * up: SwiGLU with ActivationSiLU, GeGLU with ActivationGELU
// or ActivationGELUTanh. gate, up and y have one shape [..., n], each its own strides. For the
// fused [..., 2n] layout [gate | up] of vLLM's silu_and_mul, pass gate = the first n columns and
// up = the same view n elements further (a slice of a Go slice, or DeviceBuffer.TensorAt). y may
// be exactly gate or exactly up (in place); any other overlap fails with StatusOverlap.
func GatedActivation(ctx *Context, gate, up Tensor, activation Activation, y Tensor, stream Stream) error {
	r := C.llmkgo_gated_activation(ctx.ptr(), gate.data, gate.view(), up.data, up.view(),
		C.int32_t(activation), y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}
