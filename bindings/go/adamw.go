package llmk

/*
#include "llmkgo.h"

static llmk_adamw_config llmkgo_adamw_config_defaults(void) {
  llmk_adamw_config config;
  llmk_adamw_config_init(&config);
  return config;
}

static llmkgo_result llmkgo_adamw_step(void* ctx, llmk_adamw_config config, void* param_data,
                                       llmkgo_view param_view, void* grad_data,
                                       llmkgo_view grad_view, void* exp_avg_data,
                                       llmkgo_view exp_avg_view, void* exp_avg_sq_data,
                                       llmkgo_view exp_avg_sq_view, void* stream) {
  const llmk_tensor param = llmkgo_tensor(param_data, param_view);
  const llmk_tensor grad = llmkgo_tensor(grad_data, grad_view);
  const llmk_tensor exp_avg = llmkgo_tensor(exp_avg_data, exp_avg_view);
  const llmk_tensor exp_avg_sq = llmkgo_tensor(exp_avg_sq_data, exp_avg_sq_view);
  return llmkgo_result_of(
      llmk_adamw_step(ctx, &config, &param, &grad, &exp_avg, &exp_avg_sq, stream));
}
*/
import "C"

import "unsafe"

// AdamWConfig holds AdamW's hyperparameters, the fields of llmk_adamw_config. Start from
// DefaultAdamWConfig and change what differs: the zero value is not a valid configuration (its
// Eps and Step are 0).
type AdamWConfig struct {
	LR          float64 // default 1e-3; >= 0
	Beta1       float64 // default 0.9; in [0, 1)
	Beta2       float64 // default 0.999; in [0, 1)
	Eps         float64 // default 1e-8; > 0
	WeightDecay float64 // default 1e-2; >= 0
	// Step is this update's number, counted from 1 (the default): bias correction depends on it,
	// so the caller increments it for every step.
	Step int64
}

// DefaultAdamWConfig is torch.optim.AdamW's defaults, step 1, as llmk_adamw_config_init fills
// them.
func DefaultAdamWConfig() AdamWConfig {
	c := C.llmkgo_adamw_config_defaults()
	return AdamWConfig{
		LR:          float64(c.lr),
		Beta1:       float64(c.beta1),
		Beta2:       float64(c.beta2),
		Eps:         float64(c.eps),
		WeightDecay: float64(c.weight_decay),
		Step:        int64(c.step),
	}
}

// toC is the llmk_adamw_config of c. It sets every field of the header the package is built
// against (llmkgo.h checks that there are no others), so no default is needed from the library.
func (c AdamWConfig) toC() C.llmk_adamw_config {
	return C.llmk_adamw_config{
		struct_size:  C.sizeof_llmk_adamw_config,
		lr:           C.double(c.LR),
		beta1:        C.double(c.Beta1),
		beta2:        C.double(c.Beta2),
		eps:          C.double(c.Eps),
		weight_decay: C.double(c.WeightDecay),
		step:         C.int64_t(c.Step),
	}
}

// AdamWStep makes one AdamW step (decoupled weight decay) in place, elementwise, as
// torch.optim.AdamW does:
//
//	param      = param * (1 - lr * weight_decay)
//	exp_avg    = beta1 * exp_avg + (1 - beta1) * grad
//	exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad^2
//	param      = param - lr / (1 - beta1^step)
//	                     * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)
//
// param, expAvg and expAvgSq are F32; grad is F32, F16 or BF16. All four have one shape [..., n],
// last dimension contiguous, leading dimensions with any strides (merging into at most 3); param,
// expAvg and expAvgSq overlap nothing.
func AdamWStep(ctx *Context, config AdamWConfig, param, grad, expAvg, expAvgSq Tensor, stream Stream) error {
	r := C.llmkgo_adamw_step(ctx.ptr(), config.toC(), param.data, param.view(), grad.data,
		grad.view(), expAvg.data, expAvg.view(), expAvgSq.data, expAvgSq.view(),
		unsafe.Pointer(stream))
	return resultError(&r)
}
