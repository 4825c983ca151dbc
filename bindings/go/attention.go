package llmk

/*
#include "llmkgo.h"

static llmk_attention_config llmkgo_attention_config_defaults(void) {
  llmk_attention_config config;
  llmk_attention_config_init(&config);
  return config;
}

static llmkgo_result llmkgo_attention(void* ctx, llmk_attention_config config, void* q_data,
                                      llmkgo_view q_view, void* k_data, llmkgo_view k_view,
                                      void* v_data, llmkgo_view v_view, void* o_data,
                                      llmkgo_view o_view, int has_lse, void* lse_data,
                                      llmkgo_view lse_view, void* stream) {
  const llmk_tensor q = llmkgo_tensor(q_data, q_view);
  const llmk_tensor k = llmkgo_tensor(k_data, k_view);
  const llmk_tensor v = llmkgo_tensor(v_data, v_view);
  const llmk_tensor o = llmkgo_tensor(o_data, o_view);
  const llmk_tensor lse = llmkgo_tensor(lse_data, lse_view);
  return llmkgo_result_of(
      llmk_attention(ctx, &config, &q, &k, &v, &o, has_lse ? &lse : NULL, stream));
}

static llmkgo_result llmkgo_attention_varlen(
    void* ctx, llmk_attention_config config, void* q_data, llmkgo_view q_view, void* k_data,
    llmkgo_view k_view, void* v_data, llmkgo_view v_view, void* cu_seqlens_q_data,
    llmkgo_view cu_seqlens_q_view, void* cu_seqlens_k_data, llmkgo_view cu_seqlens_k_view,
    int64_t max_seqlen_q, void* o_data, llmkgo_view o_view, int has_lse, void* lse_data,
    llmkgo_view lse_view, void* stream) {
  const llmk_tensor q = llmkgo_tensor(q_data, q_view);
  const llmk_tensor k = llmkgo_tensor(k_data, k_view);
  const llmk_tensor v = llmkgo_tensor(v_data, v_view);
  const llmk_tensor cu_seqlens_q = llmkgo_tensor(cu_seqlens_q_data, cu_seqlens_q_view);
  const llmk_tensor cu_seqlens_k = llmkgo_tensor(cu_seqlens_k_data, cu_seqlens_k_view);
  const llmk_tensor o = llmkgo_tensor(o_data, o_view);
  const llmk_tensor lse = llmkgo_tensor(lse_data, lse_view);
  return llmkgo_result_of(llmk_attention_varlen(ctx, &config, &q, &k, &v, &cu_seqlens_q,
                                                &cu_seqlens_k, max_seqlen_q, &o,
                                                has_lse ? &lse : NULL, stream));
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// AttentionKernel mirrors llmk_attention_kernel: the kernel of an attention call on a CUDA
// context.
type AttentionKernel int32

// The values of llmk_attention_kernel.
const (
	// AttentionKernelAuto is AttentionKernelHopper where it can run the call, else
	// AttentionKernelPortable.
	AttentionKernelAuto AttentionKernel = C.LLMK_ATTENTION_KERNEL_AUTO
	// AttentionKernelPortable is the mma.sync kernel (FlashAttention-2's design): every GPU from
	// sm_80 on, every head_dim and option.
	AttentionKernelPortable AttentionKernel = C.LLMK_ATTENTION_KERNEL_PORTABLE
	// AttentionKernelHopper is the wgmma kernel (FlashAttention-3's road): an sm_90 GPU (H100,
	// H200) with a library built for sm_90a, head_dim 64 or 128, no soft-cap and no dropout. A
	// call it cannot take fails with StatusUnsupported, naming why.
	AttentionKernelHopper AttentionKernel = C.LLMK_ATTENTION_KERNEL_HOPPER
)

// String is the name of the C constant without its prefix, in lower case: "auto", "portable" or
// "hopper".
func (k AttentionKernel) String() string {
	switch k {
	case AttentionKernelAuto:
		return "auto"
	case AttentionKernelPortable:
		return "portable"
	case AttentionKernelHopper:
		return "hopper"
	}
	return fmt.Sprintf("AttentionKernel(%d)", int32(k))
}

// AttentionConfig holds attention's options, the fields of llmk_attention_config. Start from
// DefaultAttentionConfig and change what differs: the zero value is not the default (its windows
// are 0, which lets each query see only its own key position).
type AttentionConfig struct {
	// Scale multiplies the scores q . k: finite and > 0; 0 (the default) means 1/sqrt(head_dim).
	Scale float32
	// Causal is the causal mask, bottom-right aligned: the same as WindowRight = 0 (and it wins
	// over a wider WindowRight). Default false.
	Causal bool
	// WindowLeft and WindowRight are the sliding window around query i's key position
	// p = i + kv_len - q_len: key j is visible when p - WindowLeft <= j <= p + WindowRight.
	// Each is >= 0, or -1 (the default) for no limit on that side.
	WindowLeft  int32
	WindowRight int32
	// Softcap c > 0 turns each score s into c * tanh(s / c) (Gemma 2, Grok); 0 (the default) is
	// none.
	Softcap float32
	// DropoutP is the probability that dropout zeroes each attention weight (the kept ones are
	// scaled by 1 / (1 - DropoutP)), in [0, 1); 0 (the default) is no dropout. For fine-tuning.
	DropoutP float32
	// DropoutOffset is the fourth word of the Philox 4x32-10 counter, DropoutSeed its key: the
	// dropout mask is a function of them alone, the same on every backend (llmk.h gives the
	// counter). Default 0 and 0.
	DropoutOffset uint32
	DropoutSeed   uint64
	// Kernel is the kernel on a CUDA context (ignored on the CPU). Default AttentionKernelAuto.
	Kernel AttentionKernel
}

// DefaultAttentionConfig is the library's default configuration (llmk_attention_config_init):
// no mask, scale 1/sqrt(head_dim), no soft-cap, no dropout, AttentionKernelAuto.
func DefaultAttentionConfig() AttentionConfig {
	c := C.llmkgo_attention_config_defaults()
	return AttentionConfig{
		Scale:         float32(c.scale),
		Causal:        c.causal != 0,
		WindowLeft:    int32(c.window_left),
		WindowRight:   int32(c.window_right),
		Softcap:       float32(c.softcap),
		DropoutP:      float32(c.dropout_p),
		DropoutOffset: uint32(c.dropout_offset),
		DropoutSeed:   uint64(c.dropout_seed),
		Kernel:        AttentionKernel(c.kernel),
	}
}

// toC is the llmk_attention_config of c. It sets every field of the header the package is built
// against (llmkgo.h checks that there are no others), so no default is needed from the library.
func (c AttentionConfig) toC() C.llmk_attention_config {
	return C.llmk_attention_config{
		struct_size:    C.sizeof_llmk_attention_config,
		scale:          C.float(c.Scale),
		causal:         boolToC(c.Causal),
		window_left:    C.int32_t(c.WindowLeft),
		window_right:   C.int32_t(c.WindowRight),
		softcap:        C.float(c.Softcap),
		dropout_p:      C.float(c.DropoutP),
		dropout_offset: C.uint32_t(c.DropoutOffset),
		dropout_seed:   C.uint64_t(c.DropoutSeed),
		kernel:         C.int32_t(c.Kernel),
	}
}

// Attention computes o = softmax(scale * q k^T + mask) v over a padded batch, exactly, without
// writing the score matrix to memory (flash attention).
//
// q and o are [batch, q_len, q_heads, head_dim]; k and v are [batch, kv_len, kv_heads, head_dim]:
// every sequence has q_len queries and kv_len keys. Each tensor has its own batch, sequence and
// head strides, so BSHD and BHSD views and slices of one fused QKV buffer work without a copy;
// head_dim is contiguous, every other stride a multiple of 8 elements and every data pointer
// 16-byte aligned (else StatusMisaligned: memory from NewDeviceBuffer is aligned to 256 bytes,
// while Go does not promise that a slice starts on 16 bytes, so slice an aligned part out of a
// larger allocation). One dtype, F16 or BF16, for q, k, v and o; the math is f32 on CUDA (f64 on
// the CPU) and each element of o is rounded once. head_dim is 64, 96, 128 or 256 (others fail
// with StatusUnsupported). GQA and MQA: q_heads is a multiple of kv_heads, and query head h reads
// kv head h / (q_heads / kv_heads).
//
// The queries are the last q_len positions of their sequence (bottom-right alignment, as in
// FlashAttention 2.1+), and config's causal mask and windows count from there. A query that sees
// no key gets o = 0 and a log-sum-exp of -Inf.
//
// lse is nil, or an F32 [batch, q_heads, q_len] (any strides) that receives the natural
// log-sum-exp of each query's visible scores (before dropout). o overlaps no input and lse
// overlaps nothing. No queries (or batch 0) is a successful no-op.
func Attention(ctx *Context, config AttentionConfig, q, k, v, o Tensor, lse *Tensor, stream Stream) error {
	hasLSE, lseData, lseView := optional(lse)
	r := C.llmkgo_attention(ctx.ptr(), config.toC(), q.data, q.view(), k.data, k.view(), v.data,
		v.view(), o.data, o.view(), hasLSE, lseData, lseView, unsafe.Pointer(stream))
	return resultError(&r)
}

// AttentionVarlen is Attention over packed sequences of different lengths, as flash-attention's
// varlen API.
//
// q and o are [total_q, q_heads, head_dim]; k and v are [total_k, kv_heads, head_dim]; strides,
// dtypes and head_dim are as for Attention. cuSeqlensQ and cuSeqlensK are [batch + 1], I32,
// contiguous: sequence s has queries cuSeqlensQ[s] ... cuSeqlensQ[s+1] - 1 and keys likewise; they
// start at 0, never decrease and end at most at total_q and total_k. maxSeqlenQ bounds the
// queries of one sequence (> 0 when total_q > 0): the CUDA grid is sized from it. lse is nil, or
// an F32 [q_heads, total_q] (any strides).
//
// A CPU context checks the offsets on the host and refuses bad ones with StatusInvalidValue before
// writing anything. A CUDA context does not read them on the host: a sequence whose offsets break
// the rules gets NaN in the rows of o and lse they name, nothing out of bounds is read or written,
// and the other sequences are computed as usual.
func AttentionVarlen(ctx *Context, config AttentionConfig, q, k, v, cuSeqlensQ, cuSeqlensK Tensor,
	maxSeqlenQ int64, o Tensor, lse *Tensor, stream Stream) error {
	hasLSE, lseData, lseView := optional(lse)
	r := C.llmkgo_attention_varlen(ctx.ptr(), config.toC(), q.data, q.view(), k.data, k.view(),
		v.data, v.view(), cuSeqlensQ.data, cuSeqlensQ.view(), cuSeqlensK.data, cuSeqlensK.view(),
		C.int64_t(maxSeqlenQ), o.data, o.view(), hasLSE, lseData, lseView, unsafe.Pointer(stream))
	return resultError(&r)
}
