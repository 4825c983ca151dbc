package llmk

/*
#include "llmkgo.h"

static llmk_rope_config llmkgo_rope_config_defaults(void) {
  llmk_rope_config config;
  llmk_rope_config_init(&config);
  return config;
}

static llmkgo_result llmkgo_rope(void* ctx, llmk_rope_config config, void* positions_data,
                                 llmkgo_view positions_view, void* q_data, llmkgo_view q_view,
                                 int has_k, void* k_data, llmkgo_view k_view, int has_cache,
                                 void* cache_data, llmkgo_view cache_view, void* stream) {
  const llmk_tensor positions = llmkgo_tensor(positions_data, positions_view);
  const llmk_tensor q = llmkgo_tensor(q_data, q_view);
  const llmk_tensor k = llmkgo_tensor(k_data, k_view);
  const llmk_tensor cache = llmkgo_tensor(cache_data, cache_view);
  return llmkgo_result_of(llmk_rope(ctx, &config, &positions, &q, has_k ? &k : NULL,
                                    has_cache ? &cache : NULL, stream));
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// RopeStyle mirrors llmk_rope_style: which dimensions of a head RoPE rotates together.
type RopeStyle int32

// The values of llmk_rope_style.
const (
	// RopeNeoX pairs dimensions (i, i + rotaryDim/2): GPT-NeoX, Hugging Face Llama, vLLM's
	// is_neox_style=True.
	RopeNeoX RopeStyle = C.LLMK_ROPE_NEOX
	// RopeGPTJ pairs dimensions (2i, 2i + 1): GPT-J, Meta's original Llama, vLLM's
	// is_neox_style=False.
	RopeGPTJ RopeStyle = C.LLMK_ROPE_GPTJ
)

// String is the name of the C constant without its prefix, in lower case: "neox" or "gptj".
func (s RopeStyle) String() string {
	switch s {
	case RopeNeoX:
		return "neox"
	case RopeGPTJ:
		return "gptj"
	}
	return fmt.Sprintf("RopeStyle(%d)", int32(s))
}

// RopeConfig holds RoPE's options, the fields of llmk_rope_config. Start from DefaultRopeConfig
// and change what differs: the zero value is not a valid configuration (its Theta is 0).
type RopeConfig struct {
	Style RopeStyle // default RopeNeoX
	// RotaryDim is the number of dimensions rotated, from the start of each head: even and at most
	// head_dim; 0 (the default) means head_dim. The dimensions past it are left as they are.
	RotaryDim int32
	// Theta is the base of the frequencies: pair i turns by position * Theta^(-2i / RotaryDim).
	// Default 10000.
	Theta float64
	// Llama 3.1's frequency scaling, on when Llama3Factor > 0 (the default 0 is off); llmk.h
	// gives the formula. Llama 3.1 uses 8, 1, 4 and 8192.
	Llama3Factor              float64
	Llama3LowFreqFactor       float64
	Llama3HighFreqFactor      float64
	Llama3OriginalMaxPosition float64
}

// DefaultRopeConfig is the library's default configuration (llmk_rope_config_init).
func DefaultRopeConfig() RopeConfig {
	c := C.llmkgo_rope_config_defaults()
	return RopeConfig{
		Style:                     RopeStyle(c.style),
		RotaryDim:                 int32(c.rotary_dim),
		Theta:                     float64(c.theta),
		Llama3Factor:              float64(c.llama3_factor),
		Llama3LowFreqFactor:       float64(c.llama3_low_freq_factor),
		Llama3HighFreqFactor:      float64(c.llama3_high_freq_factor),
		Llama3OriginalMaxPosition: float64(c.llama3_original_max_position),
	}
}

// toC is the llmk_rope_config of c. It sets every field of the header the package is built
// against (llmkgo.h checks that there are no others), so no default is needed from the library.
func (c RopeConfig) toC() C.llmk_rope_config {
	return C.llmk_rope_config{
		struct_size:                  C.sizeof_llmk_rope_config,
		style:                        C.int32_t(c.Style),
		rotary_dim:                   C.int32_t(c.RotaryDim),
		theta:                        C.double(c.Theta),
		llama3_factor:                C.double(c.Llama3Factor),
		llama3_low_freq_factor:       C.double(c.Llama3LowFreqFactor),
		llama3_high_freq_factor:      C.double(c.Llama3HighFreqFactor),
		llama3_original_max_position: C.double(c.Llama3OriginalMaxPosition),
	}
}

// Rope rotates q and k in place by each token's position: in every head, each pair (a, b) of
// rotary dimensions becomes (a cos - b sin, b cos + a sin) for the pair's angle at positions[t].
//
// q is [tokens, q_heads, head_dim]; k is [tokens, kv_heads, head_dim], or nil to rotate q alone.
// They share one dtype, F32, F16 or BF16; head_dim is contiguous, token and head strides are free
// (q and k may be slices of one fused QKV buffer) but q and k may not overlap. positions is
// [tokens], I32 or I64, any stride.
//
// cosSinCache is nil, or [max_position, rotaryDim] in F32 or q's dtype with its last dimension
// contiguous, as vLLM builds it: row p holds the cosines of position p's rotaryDim/2 angles, then
// their sines. With a cache, Theta and the Llama 3 scaling are unused and positions must lie in
// [0, max_position): a CPU context refuses others with StatusInvalidValue before touching q and k;
// a CUDA context does not read positions on the host and gives such a token NaN in its rotated
// dimensions instead. Without a cache the angles are computed, for any position.
func Rope(ctx *Context, config RopeConfig, positions, q Tensor, k, cosSinCache *Tensor, stream Stream) error {
	hasK, hasCache := C.int(0), C.int(0)
	var kData, cacheData unsafe.Pointer
	var kView, cacheView C.llmkgo_view
	if k != nil {
		hasK, kData, kView = 1, k.data, k.view()
	}
	if cosSinCache != nil {
		hasCache, cacheData, cacheView = 1, cosSinCache.data, cosSinCache.view()
	}
	r := C.llmkgo_rope(ctx.ptr(), config.toC(), positions.data, positions.view(), q.data, q.view(),
		hasK, kData, kView, hasCache, cacheData, cacheView, unsafe.Pointer(stream))
	return resultError(&r)
}
