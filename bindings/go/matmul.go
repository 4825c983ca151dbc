package llmk

/*
#include "llmkgo.h"

static llmk_matmul_config llmkgo_matmul_config_defaults(void) {
  llmk_matmul_config config;
  llmk_matmul_config_init(&config);
  return config;
}

static llmkgo_result llmkgo_matmul(void* ctx, llmk_matmul_config config, void* a_data,
                                   llmkgo_view a_view, void* b_data, llmkgo_view b_view, int has_c,
                                   void* c_data, llmkgo_view c_view, int has_bias,
                                   void* bias_data, llmkgo_view bias_view, void* d_data,
                                   llmkgo_view d_view, void* stream) {
  const llmk_tensor a = llmkgo_tensor(a_data, a_view);
  const llmk_tensor b = llmkgo_tensor(b_data, b_view);
  const llmk_tensor c = llmkgo_tensor(c_data, c_view);
  const llmk_tensor bias = llmkgo_tensor(bias_data, bias_view);
  const llmk_tensor d = llmkgo_tensor(d_data, d_view);
  return llmkgo_result_of(llmk_matmul(ctx, &config, &a, &b, has_c ? &c : NULL,
                                      has_bias ? &bias : NULL, &d, stream));
}

static llmkgo_result llmkgo_matmul_path_for(void* ctx, llmk_matmul_config config, void* a_data,
                                            llmkgo_view a_view, void* b_data, llmkgo_view b_view,
                                            int has_c, void* c_data, llmkgo_view c_view,
                                            int has_bias, void* bias_data, llmkgo_view bias_view,
                                            void* d_data, llmkgo_view d_view, int32_t* path) {
  const llmk_tensor a = llmkgo_tensor(a_data, a_view);
  const llmk_tensor b = llmkgo_tensor(b_data, b_view);
  const llmk_tensor c = llmkgo_tensor(c_data, c_view);
  const llmk_tensor bias = llmkgo_tensor(bias_data, bias_view);
  const llmk_tensor d = llmkgo_tensor(d_data, d_view);
  return llmkgo_result_of(llmk_matmul_path_for(ctx, &config, &a, &b, has_c ? &c : NULL,
                                               has_bias ? &bias : NULL, &d, path));
}

static llmkgo_result llmkgo_matmul_tune(void* ctx, llmk_matmul_config config, void* a_data,
                                        llmkgo_view a_view, void* b_data, llmkgo_view b_view,
                                        int has_c, void* c_data, llmkgo_view c_view, int has_bias,
                                        void* bias_data, llmkgo_view bias_view, void* d_data,
                                        llmkgo_view d_view, void* stream,
                                        llmk_matmul_tuning* tuning) {
  const llmk_tensor a = llmkgo_tensor(a_data, a_view);
  const llmk_tensor b = llmkgo_tensor(b_data, b_view);
  const llmk_tensor c = llmkgo_tensor(c_data, c_view);
  const llmk_tensor bias = llmkgo_tensor(bias_data, bias_view);
  const llmk_tensor d = llmkgo_tensor(d_data, d_view);
  tuning->struct_size = sizeof *tuning;
  return llmkgo_result_of(llmk_matmul_tune(ctx, &config, &a, &b, has_c ? &c : NULL,
                                           has_bias ? &bias : NULL, &d, stream, tuning));
}

static llmkgo_result llmkgo_matmul_cache_stats(void* ctx, int64_t* plans,
                                               int64_t* heuristic_queries, int64_t* workspaces) {
  return llmkgo_result_of(llmk_matmul_cache_stats(ctx, plans, heuristic_queries, workspaces));
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// MatmulPath mirrors llmk_matmul_path: the engine of a matmul on a CUDA context.
type MatmulPath int32

// The values of llmk_matmul_path.
const (
	// MatmulPathAuto is llmk's choice, as its benchmarks measured: the GEMV where it beats
	// cuBLASLt, else cuBLASLt.
	MatmulPathAuto MatmulPath = C.LLMK_MATMUL_PATH_AUTO
	// MatmulPathCuBLASLt is always cuBLASLt.
	MatmulPathCuBLASLt MatmulPath = C.LLMK_MATMUL_PATH_CUBLASLT
	// MatmulPathGEMV is llmk's GEMV for decode-sized M; a call it cannot take fails with
	// StatusUnsupported.
	MatmulPathGEMV MatmulPath = C.LLMK_MATMUL_PATH_GEMV
)

// String is the name of the C constant without its prefix, in lower case: "auto", "cublaslt" or
// "gemv".
func (p MatmulPath) String() string {
	switch p {
	case MatmulPathAuto:
		return "auto"
	case MatmulPathCuBLASLt:
		return "cublaslt"
	case MatmulPathGEMV:
		return "gemv"
	}
	return fmt.Sprintf("MatmulPath(%d)", int32(p))
}

// MatmulConfig holds matmul's options, the fields of llmk_matmul_config. Start from
// DefaultMatmulConfig and change what differs: the zero value is not the default (its Alpha is
// 0).
type MatmulConfig struct {
	Alpha float32 // scales A B; default 1
	Beta  float32 // scales C; default 0, which does not read C
	// Activation is applied last, after the bias. Default ActivationIdentity.
	Activation Activation
	// AllowTF32 lets cuBLASLt round F32 inputs to TF32 (10-bit mantissa) on tensor cores.
	// Default false.
	AllowTF32 bool
	// Path is the engine on a CUDA context (ignored on the CPU). Default MatmulPathAuto.
	Path MatmulPath
}

// DefaultMatmulConfig is the library's default configuration (llmk_matmul_config_init).
func DefaultMatmulConfig() MatmulConfig {
	c := C.llmkgo_matmul_config_defaults()
	return MatmulConfig{
		Alpha:      float32(c.alpha),
		Beta:       float32(c.beta),
		Activation: Activation(c.activation),
		AllowTF32:  c.allow_tf32 != 0,
		Path:       MatmulPath(c.path),
	}
}

// toC is the llmk_matmul_config of c. It sets every field of the header the package is built
// against (llmkgo.h checks that there are no others), so no default is needed from the library.
func (c MatmulConfig) toC() C.llmk_matmul_config {
	return C.llmk_matmul_config{
		struct_size: C.sizeof_llmk_matmul_config,
		alpha:       C.float(c.Alpha),
		beta:        C.float(c.Beta),
		activation:  C.int32_t(c.Activation),
		allow_tf32:  boolToC(c.AllowTF32),
		path:        C.int32_t(c.Path),
	}
}

func boolToC(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

// optional is an optional tensor as the helpers take it: a flag, the data pointer and the view.
func optional(t *Tensor) (C.int, unsafe.Pointer, C.llmkgo_view) {
	if t == nil {
		return 0, nil, C.llmkgo_view{}
	}
	return 1, t.data, t.view()
}

// Matmul computes D = a(alpha * A B + beta * C + bias), with a, b, c and d the tensors A, B, C
// and D, and a, alpha and beta from config.
//
// A is [M, K], B [K, N], C and D [M, N], or [batch, ...] of each (below); bias is [N], contiguous,
// added to every row of D. c is nil when Beta is 0 (it is not read), bias nil for no bias. One
// dtype for every tensor: F32, F16 or BF16. Accumulation is f32 (f64 on the CPU), and each
// element of D is rounded once; F32 inputs are multiplied in full f32 unless AllowTF32.
//
// Layouts come from the strides, nothing is copied: every matrix is row-major (its last dimension
// has stride 1) or column-major (its second-to-last has), with a leading dimension (the other
// stride) at least its extent. A transposed view is just the other of the two: nn.Linear's
// y = x W^T, with W [N, K] row-major, is B = the view of W with shape [K, N] and strides [1, K].
// A view that is neither fails with StatusNotContiguous or StatusInvalidStride, and a bias with a
// column-major D with StatusUnsupported. C has the layout (row- or column-major) of D, with its
// own leading dimension.
//
// A D of rank 3 is a batch of products: A, B and C have rank 3 with the same batch, each with its
// own batch stride (0 repeats one matrix), or rank 2 (one matrix for every product). D's batches
// may not overlap. D may be exactly C (in place); it overlaps nothing else. M, N or batch 0 is a
// successful no-op.
//
// On a CUDA context the engine is cuBLASLt, or for decode-sized M (a few rows) llmk's own GEMV:
// config.Path picks one, MatmulPathFor says which a call takes, and llmk.h says where the GEMV can
// run. The context caches cuBLASLt's plans per shape (Context.MatmulCacheStats) and sets aside
// 32 MiB of cuBLASLt workspace per stream on the first cuBLASLt matmul on that stream: before
// capturing a stream into a CUDA graph, run one matmul on it.
func Matmul(ctx *Context, config MatmulConfig, a, b Tensor, c, bias *Tensor, d Tensor, stream Stream) error {
	hasC, cData, cView := optional(c)
	hasBias, biasData, biasView := optional(bias)
	r := C.llmkgo_matmul(ctx.ptr(), config.toC(), a.data, a.view(), b.data, b.view(), hasC, cData,
		cView, hasBias, biasData, biasView, d.data, d.view(), unsafe.Pointer(stream))
	return resultError(&r)
}

// MatmulPathFor is the engine Matmul would take for these arguments on a CUDA context:
// MatmulPathCuBLASLt or MatmulPathGEMV, never MatmulPathAuto. The arguments are checked as Matmul
// checks them, and no tensor is read or written. On a CPU context the answer is the CUDA one for
// a device like the H200 llmk is tuned on.
func MatmulPathFor(ctx *Context, config MatmulConfig, a, b Tensor, c, bias *Tensor, d Tensor) (MatmulPath, error) {
	hasC, cData, cView := optional(c)
	hasBias, biasData, biasView := optional(bias)
	var path C.int32_t
	r := C.llmkgo_matmul_path_for(ctx.ptr(), config.toC(), a.data, a.view(), b.data, b.view(), hasC,
		cData, cView, hasBias, biasData, biasView, d.data, d.view(), &path)
	if err := resultError(&r); err != nil {
		return 0, err
	}
	return MatmulPath(path), nil
}

// MatmulTuning is what MatmulTune measured, the fields of llmk_matmul_tuning: all 0 where there
// was nothing to tune (a CPU context, or a call that takes the GEMV).
type MatmulTuning struct {
	Candidates int32 // cuBLASLt algorithms timed; 0 where there was nothing to tune
	// Chosen is the pinned algorithm's rank in the heuristic's order (below 8); 0 is its first.
	Chosen   int32
	FirstUs  float32 // median time of one GEMM with the heuristic's first algorithm, in microseconds
	ChosenUs float32 // the same with the pinned one; FirstUs when Chosen is 0
}

// MatmulTune is Matmul, with cuBLASLt's algorithm chosen by timing instead of by its heuristic.
// It takes the arguments of Matmul, checks them as Matmul does and computes the same D.
//
// Where the call takes cuBLASLt, it asks the heuristic for up to 8 algorithms, times each on
// stream, and pins the fastest in the context's plan cache for this call's shape, layouts, dtype,
// epilogue and alignments: every later Matmul with the same key runs it, with no further
// heuristic query (Context.MatmulCacheStats). The heuristic's first choice stays unless another is
// at least 2% faster. Then it computes D as Matmul does. The candidates write into D, or, when D
// is C with Beta != 0, into scratch memory the size of D that the call allocates and frees; D
// ends as one Matmul would leave it.
//
// It is a start-up call, not a hot-path one: it synchronizes the stream and allocates, and a
// stream being captured into a CUDA graph fails with StatusUnsupported. Tuning a key again
// re-times it. The times are of the GEMM alone (with ActivationGELU or ActivationSiLU, not the
// activation pass after it). On a CPU context, and where the call takes the GEMV, there is nothing
// to tune: it is Matmul, and the MatmulTuning is all 0.
func MatmulTune(ctx *Context, config MatmulConfig, a, b Tensor, c, bias *Tensor, d Tensor, stream Stream) (MatmulTuning, error) {
	hasC, cData, cView := optional(c)
	hasBias, biasData, biasView := optional(bias)
	var tuning C.llmk_matmul_tuning
	r := C.llmkgo_matmul_tune(ctx.ptr(), config.toC(), a.data, a.view(), b.data, b.view(), hasC, cData,
		cView, hasBias, biasData, biasView, d.data, d.view(), unsafe.Pointer(stream), &tuning)
	if err := resultError(&r); err != nil {
		return MatmulTuning{}, err
	}
	return MatmulTuning{Candidates: int32(tuning.candidates), Chosen: int32(tuning.chosen),
		FirstUs: float32(tuning.first_us), ChosenUs: float32(tuning.chosen_us)}, nil
}

// MatmulCacheStats is what a context's matmul plan cache has done so far; all 0 on a CPU context.
type MatmulCacheStats struct {
	Plans            int64 // distinct plans cached (per shape, layout, dtype and epilogue)
	HeuristicQueries int64 // cuBLASLt heuristic queries made: one per plan
	Workspaces       int64 // cuBLASLt workspaces set aside: one per stream
}

// MatmulCacheStats reads the counters of the context's matmul plan cache: a second call of one
// shape adds no plan and no heuristic query.
func (c *Context) MatmulCacheStats() (MatmulCacheStats, error) {
	var plans, queries, workspaces C.int64_t
	r := C.llmkgo_matmul_cache_stats(c.ptr(), &plans, &queries, &workspaces)
	if err := resultError(&r); err != nil {
		return MatmulCacheStats{}, err
	}
	return MatmulCacheStats{Plans: int64(plans), HeuristicQueries: int64(queries),
		Workspaces: int64(workspaces)}, nil
}
