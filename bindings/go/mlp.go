package llmk

/*
#include "llmkgo.h"

static llmk_mlp_config llmkgo_mlp_config_defaults(void) {
  llmk_mlp_config config;
  llmk_mlp_config_init(&config);
  return config;
}

static llmkgo_result llmkgo_ffn_workspace_size(void* ctx, void* x_data, llmkgo_view x_view,
                                               void* w1_data, llmkgo_view w1_view,
                                               size_t* bytes) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor w1 = llmkgo_tensor(w1_data, w1_view);
  return llmkgo_result_of(llmk_ffn_workspace_size(ctx, &x, &w1, bytes));
}

static llmkgo_result llmkgo_ffn(void* ctx, llmk_mlp_config config, void* x_data,
                                llmkgo_view x_view, void* w1_data, llmkgo_view w1_view,
                                int has_b1, void* b1_data, llmkgo_view b1_view, void* w2_data,
                                llmkgo_view w2_view, int has_b2, void* b2_data,
                                llmkgo_view b2_view, int32_t activation, void* workspace,
                                size_t workspace_bytes, void* y_data, llmkgo_view y_view,
                                void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor w1 = llmkgo_tensor(w1_data, w1_view);
  const llmk_tensor b1 = llmkgo_tensor(b1_data, b1_view);
  const llmk_tensor w2 = llmkgo_tensor(w2_data, w2_view);
  const llmk_tensor b2 = llmkgo_tensor(b2_data, b2_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(llmk_ffn(ctx, &config, &x, &w1, has_b1 ? &b1 : NULL, &w2,
                                   has_b2 ? &b2 : NULL, (llmk_activation)activation, workspace,
                                   workspace_bytes, &y, stream));
}

static llmkgo_result llmkgo_gated_mlp_workspace_size(void* ctx, void* x_data, llmkgo_view x_view,
                                                     void* w_gate_data, llmkgo_view w_gate_view,
                                                     size_t* bytes) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor w_gate = llmkgo_tensor(w_gate_data, w_gate_view);
  return llmkgo_result_of(llmk_gated_mlp_workspace_size(ctx, &x, &w_gate, bytes));
}

static llmkgo_result llmkgo_gated_mlp(void* ctx, llmk_mlp_config config, void* x_data,
                                      llmkgo_view x_view, void* w_gate_data,
                                      llmkgo_view w_gate_view, void* w_up_data,
                                      llmkgo_view w_up_view, void* w_down_data,
                                      llmkgo_view w_down_view, int32_t activation,
                                      void* workspace, size_t workspace_bytes, void* y_data,
                                      llmkgo_view y_view, void* stream) {
  const llmk_tensor x = llmkgo_tensor(x_data, x_view);
  const llmk_tensor w_gate = llmkgo_tensor(w_gate_data, w_gate_view);
  const llmk_tensor w_up = llmkgo_tensor(w_up_data, w_up_view);
  const llmk_tensor w_down = llmkgo_tensor(w_down_data, w_down_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(llmk_gated_mlp(ctx, &config, &x, &w_gate, &w_up, &w_down,
                                         (llmk_activation)activation, workspace,
                                         workspace_bytes, &y, stream));
}
*/
import "C"

import "unsafe"

// MLPConfig holds the options of FFN and GatedMLP, the fields of llmk_mlp_config. Start from
// DefaultMLPConfig and change what differs.
type MLPConfig struct {
	// AllowTF32 lets cuBLASLt round F32 inputs to TF32 in every GEMM, as in MatmulConfig.
	// Default false.
	AllowTF32 bool
	// Path is the engine of every GEMM on a CUDA context. Default MatmulPathAuto.
	Path MatmulPath
	// Tune runs every cuBLASLt GEMM of the block as MatmulTune runs it: its algorithms are timed
	// and the fastest pinned in the context's plan cache, so later calls with the same shapes,
	// dtype and pointer alignments (the same x, y and workspace, typically) run it with no further
	// query. Such a call is a start-up call: it synchronizes and allocates, and a stream being
	// captured is refused with StatusUnsupported. Default false.
	Tune bool
}

// DefaultMLPConfig is the library's default configuration (llmk_mlp_config_init).
func DefaultMLPConfig() MLPConfig {
	c := C.llmkgo_mlp_config_defaults()
	return MLPConfig{AllowTF32: c.allow_tf32 != 0, Path: MatmulPath(c.path), Tune: c.tune != 0}
}

// toC is the llmk_mlp_config of c. It sets every field of the header the package is built
// against (llmkgo.h checks that there are no others), so no default is needed from the library.
func (c MLPConfig) toC() C.llmk_mlp_config {
	return C.llmk_mlp_config{
		struct_size: C.sizeof_llmk_mlp_config,
		allow_tf32:  boolToC(c.AllowTF32),
		path:        C.int32_t(c.Path),
		tune:        boolToC(c.Tune),
	}
}

// Workspace is scratch memory that an op uses during one call, such as the intermediate
// activations of FFN and GatedMLP: memory in the context's space (device memory of a CUDA
// context, host memory of a CPU one) of at least the bytes the op's size query returns, aligned as
// the op needs (16 bytes for the MLP ops; memory from NewDeviceBuffer is aligned to 256). Its
// contents before and after a call mean nothing. The zero Workspace is none (NULL, 0 bytes),
// which an op that needs no scratch for its shapes accepts.
//
// On a CUDA context the op may use the memory until the work launched on its stream completes:
// keep it allocated, and unused by other work, until then.
type Workspace struct {
	data  unsafe.Pointer
	bytes int
}

// Workspace is the whole buffer as a workspace.
func (b *DeviceBuffer) Workspace() Workspace {
	return Workspace{data: b.ptr, bytes: b.bytes}
}

// WorkspaceFromBytes views Go memory as a workspace, for a CPU context (a CUDA context refuses
// host memory). Go does not promise that a []byte starts on 16 bytes: the library refuses a
// misaligned one with StatusMisaligned, so slice an aligned part out of a larger allocation. The
// Workspace keeps the slice alive.
func WorkspaceFromBytes(data []byte) Workspace {
	return Workspace{data: firstElement(data), bytes: len(data)}
}

// WorkspaceFromPointer views memory the binding knows nothing about, such as device memory from
// another CUDA library, as a workspace of `bytes` bytes. The caller guarantees that it is valid
// for that many bytes while ops use it. data must not point to Go memory that holds Go pointers.
func WorkspaceFromPointer(data unsafe.Pointer, bytes int) Workspace {
	return Workspace{data: data, bytes: bytes}
}

// Data is the address of the first byte (nil for none).
func (w Workspace) Data() unsafe.Pointer { return w.data }

// Len is the size in bytes.
func (w Workspace) Len() int { return w.bytes }

// size is the workspace's byte count for C; a negative one (from WorkspaceFromPointer) is refused.
func (w Workspace) size(op string) (C.size_t, error) {
	if w.bytes < 0 {
		return 0, argError(StatusInvalidValue, "%s: workspace has %d bytes", op, w.bytes)
	}
	return C.size_t(w.bytes), nil
}

// FFNWorkspaceSize is the bytes of workspace FFN needs for x [tokens, d_model] and w1
// [d_ff, d_model]. No tensor is read.
func FFNWorkspaceSize(ctx *Context, x, w1 Tensor) (int, error) {
	var bytes C.size_t
	r := C.llmkgo_ffn_workspace_size(ctx.ptr(), x.data, x.view(), w1.data, w1.view(), &bytes)
	if err := resultError(&r); err != nil {
		return 0, err
	}
	return int(bytes), nil
}

// FFN computes y = a(x W1^T + b1) W2^T + b2, the MLP of GPT-2 / BERT style blocks, in one call.
//
// The weights are nn.Linear's, [out_features, in_features], last dimension contiguous, row stride
// free: w1 is [d_ff, d_model], w2 [d_model, d_ff]. b1 ([d_ff]) and b2 ([d_model]) are contiguous,
// or nil. x and y are [tokens, d_model], last dimension contiguous, row strides free; y overlaps
// no input. One dtype for every tensor: F32, F16 or BF16. The intermediate activations live in
// workspace, of at least FFNWorkspaceSize bytes (see Workspace).
//
// Each GEMM runs as Matmul would (same engines, same numerics), the activation fused into the
// first, and the intermediate is rounded to the dtype as separate calls would round it.
func FFN(ctx *Context, config MLPConfig, x, w1 Tensor, b1 *Tensor, w2 Tensor, b2 *Tensor,
	activation Activation, workspace Workspace, y Tensor, stream Stream) error {
	bytes, err := workspace.size("ffn")
	if err != nil {
		return err
	}
	hasB1, b1Data, b1View := optional(b1)
	hasB2, b2Data, b2View := optional(b2)
	r := C.llmkgo_ffn(ctx.ptr(), config.toC(), x.data, x.view(), w1.data, w1.view(), hasB1, b1Data,
		b1View, w2.data, w2.view(), hasB2, b2Data, b2View, C.int32_t(activation), workspace.data,
		bytes, y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}

// GatedMLPWorkspaceSize is the bytes of workspace GatedMLP needs for x [tokens, d_model] and
// wGate [d_ff, d_model]. No tensor is read.
func GatedMLPWorkspaceSize(ctx *Context, x, wGate Tensor) (int, error) {
	var bytes C.size_t
	r := C.llmkgo_gated_mlp_workspace_size(ctx.ptr(), x.data, x.view(), wGate.data, wGate.view(),
		&bytes)
	if err := resultError(&r); err != nil {
		return 0, err
	}
	return int(bytes), nil
}

// GatedMLP computes y = (a(x Wg^T) * (x Wu^T)) Wd^T: the Llama / Mistral MLP with ActivationSiLU
// (SwiGLU), GeGLU with ActivationGELU or ActivationGELUTanh.
//
// wGate and wUp are [d_ff, d_model], wDown [d_model, d_ff]. vLLM's fused [2 d_ff, d_model]
// gate_up weight is two views of one buffer: wGate its first d_ff rows, wUp the next d_ff (a
// slice of a Go slice, or DeviceBuffer.TensorAt at element d_ff * d_model). x, y, the dtype and
// workspace (at least GatedMLPWorkspaceSize bytes) are as for FFN.
//
// For a few tokens (the GEMV engine) one kernel reads both weights and applies a(gate) * up in f32
// before writing; for more, one GEMM (two when wGate and wUp are not one fused buffer) writes
// [gate | up], rounded to the dtype, and GatedActivation's kernel combines them.
func GatedMLP(ctx *Context, config MLPConfig, x, wGate, wUp, wDown Tensor, activation Activation,
	workspace Workspace, y Tensor, stream Stream) error {
	bytes, err := workspace.size("gated_mlp")
	if err != nil {
		return err
	}
	r := C.llmkgo_gated_mlp(ctx.ptr(), config.toC(), x.data, x.view(), wGate.data, wGate.view(),
		wUp.data, wUp.view(), wDown.data, wDown.view(), C.int32_t(activation), workspace.data,
		bytes, y.data, y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}
