/*
 * llmk: CUDA kernels for transformer inference behind a stable C ABI.
 *
 * This header is the whole public API. It compiles as C99 and as C++, pulls in no CUDA header,
 * and every symbol it declares starts with llmk_ / LLMK_.
 *
 * Conventions that hold for every function below:
 *
 *  - Status. Every function that can fail returns llmk_status (LLMK_SUCCESS == 0). On failure,
 *    llmk_last_error_message() on the same thread says which argument was wrong and why, e.g.
 *    "rms_norm: weight has 4095 elements, x rows have 4096". All argument checks run before any
 *    work is launched, so a failed call leaves its outputs untouched. Nothing aborts, prints or
 *    exits.
 *
 *  - Tensors. A tensor argument is an llmk_tensor: a view that owns nothing. Shapes and strides
 *    are counted in elements (not bytes), strides are >= 0, and the data pointer points at the
 *    view's first element and is aligned to the element size. An optional tensor is passed as a
 *    NULL llmk_tensor pointer.
 *
 *  - Contexts and memory spaces. An llmk_context is bound to the CPU or to one CUDA device. On a
 *    CUDA context every tensor must live in device (or managed) memory of that device and ops are
 *    launched asynchronously on the stream argument; nothing synchronizes, allocates device memory
 *    or changes the caller's current device behind the caller's back, so every op can be captured
 *    into a CUDA graph (llmk_matmul_tune, a start-up call that synchronizes and allocates, is the
 *    one exception, and says so). On a CPU context tensors live in host memory, ops run to
 *    completion on the calling thread and the stream argument is ignored (pass NULL).
 *
 *  - Threads. A context may be used from several threads at once, each with its own stream.
 *
 *  - Configs. Options that will grow come in a struct passed by const pointer whose first field
 *    is struct_size; fill it with its llmk_*_config_init function, then set what differs. The
 *    library reads only the caller's struct_size bytes and gives later fields their defaults, so
 *    code built against an older header keeps working.
 *
 *  - ABI. Enum values are explicit and append-only; a removed value is never reused. The shared
 *    library's SONAME carries LLMK_ABI_VERSION (libllmk.so.0); bindings compare it with
 *    llmk_abi_version() when they load the library.
 */
#ifndef LLMK_H
#define LLMK_H

#include <stddef.h>
#include <stdint.h>

#define LLMK_VERSION_MAJOR 0
#define LLMK_VERSION_MINOR 1
#define LLMK_VERSION_PATCH 0
/* Bumped on any incompatible change of this header; equals the SONAME's major number. */
#define LLMK_ABI_VERSION 0

/* The most dimensions a tensor view can have. */
#define LLMK_MAX_DIMS 8

#if defined(LLMK_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define LLMK_API __attribute__((visibility("default")))
#else
#define LLMK_API
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LLMK_NODISCARD __attribute__((warn_unused_result))
#else
#define LLMK_NODISCARD
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_status {
  LLMK_SUCCESS = 0,
  /* A required pointer (context, tensor, data, out-parameter) is NULL. */
  LLMK_ERROR_NULL_POINTER = 1,
  /* A tensor's dtype is not one the op takes. */
  LLMK_ERROR_UNSUPPORTED_DTYPE = 2,
  /* Two tensors that must share a dtype do not. */
  LLMK_ERROR_DTYPE_MISMATCH = 3,
  /* A tensor has a number of dimensions the op does not take. */
  LLMK_ERROR_INVALID_NDIM = 4,
  /* A negative extent. */
  LLMK_ERROR_INVALID_SHAPE = 5,
  /* Two tensors whose shapes must agree do not. */
  LLMK_ERROR_SHAPE_MISMATCH = 6,
  /* A negative stride, or a view whose furthest element lies beyond what 64-bit offsets reach. */
  LLMK_ERROR_INVALID_STRIDE = 7,
  /* A dimension that must have stride 1 does not. */
  LLMK_ERROR_NOT_CONTIGUOUS = 8,
  /* A data pointer that is not a multiple of the element size. */
  LLMK_ERROR_MISALIGNED = 9,
  /* An output overlaps an input, another output or itself in a way the op does not allow. */
  LLMK_ERROR_OVERLAP = 10,
  /* Host memory passed to a CUDA context (where the CUDA runtime can tell). */
  LLMK_ERROR_WRONG_MEMORY_SPACE = 11,
  /* Device memory, or a stream, of another device than the context's. */
  LLMK_ERROR_WRONG_DEVICE = 12,
  /* A scalar argument out of its range (eps, device ordinal, enum value), or a stream the CUDA
   * runtime reports as invalid. A stream must be NULL or a live stream: a dangling handle is
   * undefined behaviour, as everywhere in CUDA. */
  LLMK_ERROR_INVALID_VALUE = 13,
  /* A valid request this backend cannot serve. */
  LLMK_ERROR_UNSUPPORTED = 14,
  /* No usable CUDA device or driver. */
  LLMK_ERROR_NO_DEVICE = 15,
  LLMK_ERROR_OUT_OF_MEMORY = 16,
  /* A CUDA call failed; the CUDA context is still usable. */
  LLMK_ERROR_CUDA = 17,
  /* An earlier asynchronous failure (illegal address, trap, ...) poisoned the CUDA context of the
   * device: nothing more can run on it in this process. */
  LLMK_ERROR_CUDA_CONTEXT_LOST = 18,
  LLMK_ERROR_INTERNAL = 19
} llmk_status;

/* A static, human-readable name for a status ("shape mismatch"); never NULL. */
LLMK_API const char* llmk_status_string(llmk_status status);

/* The detail message of the calling thread's most recent llmk call that returns an llmk_status:
 * what went wrong, or "" if it succeeded. Functions that return no status leave it alone. Valid
 * until the next such call on the same thread. Never NULL. */
LLMK_API const char* llmk_last_error_message(void);

/* ---------------------------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------------------------- */

/* "MAJOR.MINOR.PATCH" of the loaded library. */
LLMK_API const char* llmk_version(void);
/* LLMK_ABI_VERSION of the loaded library. */
LLMK_API int32_t llmk_abi_version(void);

/* ---------------------------------------------------------------------------------------------
 * Data types and tensor views
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_dtype {
  LLMK_DTYPE_F32 = 0,
  LLMK_DTYPE_F16 = 1, /* IEEE binary16 */
  LLMK_DTYPE_BF16 = 2,
  LLMK_DTYPE_I8 = 3,
  LLMK_DTYPE_U8 = 4,
  LLMK_DTYPE_I32 = 5,
  /* Signed 4-bit integers packed two to a byte, element 2i in the low nibble of byte i. Shapes
   * and strides count elements; the packed dimension has stride 1 and an even extent. */
  LLMK_DTYPE_I4 = 6,
  LLMK_DTYPE_I64 = 7
} llmk_dtype;

/* Bits per element of a dtype (4 for LLMK_DTYPE_I4), or 0 for a value that is not a dtype. */
LLMK_API int32_t llmk_dtype_bits(llmk_dtype dtype);

/* A strided view of memory that llmk does not own.
 * Element (i0, ..., i{ndim-1}) lives at data + sum(ik * strides[k]) elements.
 * Entries of shape and strides at and beyond ndim are ignored. The struct is plain data with
 * inline arrays, so every language can build it in place without pointers to arrays. */
typedef struct llmk_tensor {
  void* data;
  int32_t dtype; /* an llmk_dtype; a fixed-width field keeps the layout the same everywhere */
  int32_t ndim;  /* 0 ... LLMK_MAX_DIMS */
  int64_t shape[LLMK_MAX_DIMS];
  int64_t strides[LLMK_MAX_DIMS];
} llmk_tensor;

/* ---------------------------------------------------------------------------------------------
 * Contexts
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_backend {
  LLMK_BACKEND_CPU = 0, /* the reference implementation of every op, over host memory */
  LLMK_BACKEND_CUDA = 1 /* one CUDA device */
} llmk_backend;

typedef struct llmk_context llmk_context;

/* Number of CUDA devices usable by llmk; 0 (and LLMK_SUCCESS) when there is no driver or GPU. */
LLMK_API LLMK_NODISCARD llmk_status llmk_cuda_device_count(int32_t* count);

/* Creates a context for the CPU (device is ignored) or for CUDA device `device`. A CUDA context
 * initializes that device's primary CUDA context and reads its properties once, up front. */
LLMK_API LLMK_NODISCARD llmk_status llmk_context_create(llmk_backend backend, int32_t device,
                                                        llmk_context** out);

/* Releases a context. NULL is accepted. Work already launched with it is not waited for. */
LLMK_API void llmk_context_destroy(llmk_context* ctx);

/* The backend and device a context was created with (device is -1 for the CPU). Either out
 * pointer may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status llmk_context_info(const llmk_context* ctx,
                                                      llmk_backend* backend, int32_t* device);

/* ---------------------------------------------------------------------------------------------
 * Memory, for callers with no CUDA runtime of their own (the bindings' tests and demos).
 * ------------------------------------------------------------------------------------------- */

/* Allocates `bytes` (> 0) of device memory on the context's device, or of host memory on a CPU
 * context, aligned to 256 bytes. This is not for hot paths: it may synchronize the device. */
LLMK_API LLMK_NODISCARD llmk_status llmk_malloc(llmk_context* ctx, size_t bytes, void** out);

/* Frees memory from llmk_malloc on the same context. NULL is accepted. */
LLMK_API LLMK_NODISCARD llmk_status llmk_free(llmk_context* ctx, void* ptr);

/* Copies `bytes` between any two of host and device memory, ordered on `stream`; the CUDA runtime
 * tells the direction from the pointers. The two ranges must not overlap. Reading a host
 * destination is safe only after llmk_synchronize on that stream. On a CPU context this is
 * memcpy. */
LLMK_API LLMK_NODISCARD llmk_status llmk_memcpy(llmk_context* ctx, void* dst, const void* src,
                                                size_t bytes, void* stream);

/* Waits for all work on `stream` (a cudaStream_t; NULL is the legacy default stream). Returns
 * LLMK_ERROR_CUDA_CONTEXT_LOST if that work failed asynchronously. No-op on a CPU context. */
LLMK_API LLMK_NODISCARD llmk_status llmk_synchronize(llmk_context* ctx, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Normalization
 *
 * x has shape [..., hidden]: every index of the leading dimensions is one row, normalized over
 * the last dimension. The last dimension of x, y and residual must be contiguous (stride 1); the
 * leading dimensions may have any strides, on each tensor its own, as long as they merge into at
 * most 3 strided dimensions (a [batch, seq, hidden] view always does; more is refused with
 * LLMK_ERROR_UNSUPPORTED). weight (and bias) have shape
 * [hidden], contiguous. Activations and parameters share one dtype: F32, F16 or BF16;
 * accumulation is in f32 on CUDA (f64 on the CPU), and each output element is rounded once.
 * eps must be finite and >= 0. Zero rows is a successful no-op.
 *
 * In place: y may be exactly x (same data pointer, shape and strides). Any other overlap between
 * an output and another tensor is refused with LLMK_ERROR_OVERLAP.
 * ------------------------------------------------------------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * weight */
LLMK_API LLMK_NODISCARD llmk_status llmk_rms_norm(llmk_context* ctx, const llmk_tensor* x,
                                                  const llmk_tensor* weight, float eps,
                                                  const llmk_tensor* y, void* stream);

/* residual = x + residual (rounded to the dtype), then y = rms_norm(residual, weight, eps).
 * residual is read and overwritten in place: the sum the next layer's skip connection needs, as
 * in vLLM and FlashInfer's fused_add_rmsnorm. y may be exactly x; residual may overlap nothing. */
LLMK_API LLMK_NODISCARD llmk_status llmk_add_rms_norm(llmk_context* ctx, const llmk_tensor* x,
                                                      const llmk_tensor* residual,
                                                      const llmk_tensor* weight, float eps,
                                                      const llmk_tensor* y, void* stream);

/* y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, var being the biased variance.
 * bias may be NULL (no bias). */
LLMK_API LLMK_NODISCARD llmk_status llmk_layer_norm(llmk_context* ctx, const llmk_tensor* x,
                                                    const llmk_tensor* weight,
                                                    const llmk_tensor* bias, float eps,
                                                    const llmk_tensor* y, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Activations
 *
 * Elementwise over tensors [..., n]. The last dimension of every tensor is contiguous; the
 * leading dimensions may have any strides, each tensor its own, merging into at most 3 (as for
 * the norms). All tensors share one dtype: F32, F16 or BF16. The math is f32 on CUDA and f64 on
 * the CPU, with no intermediate rounding: each output element is rounded once.
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_activation {
  LLMK_ACTIVATION_IDENTITY = 0,  /* a(x) = x */
  LLMK_ACTIVATION_GELU = 1,      /* exact: x * Phi(x) = x/2 * (1 + erf(x / sqrt(2))) */
  LLMK_ACTIVATION_GELU_TANH = 2, /* x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) */
  LLMK_ACTIVATION_SILU = 3,      /* x * sigmoid(x) = x / (1 + exp(-x)) */
  LLMK_ACTIVATION_RELU = 4       /* max(x, 0) */
} llmk_activation;

/* y = a(x + bias): bias + GELU (either form), or plain GELU, SiLU or ReLU when bias is NULL.
 * x and y: [..., n]; bias: [n], contiguous, or NULL. y may be exactly x (in place); any other
 * overlap is refused. */
LLMK_API LLMK_NODISCARD llmk_status llmk_bias_activation(llmk_context* ctx, const llmk_tensor* x,
                                                         const llmk_tensor* bias,
                                                         llmk_activation activation,
                                                         const llmk_tensor* y, void* stream);

/* y = a(gate) * up: SwiGLU with SILU, GeGLU with GELU or GELU_TANH.
 * gate, up and y: [..., n], one shape, each with its own strides. vLLM and FlashInfer's
 * silu_and_mul / gelu_and_mul take x = [..., 2n] holding [gate | up] along its last dimension:
 * pass gate = x's first n columns (x's data, shape [..., n], x's strides) and up = the same view
 * starting n elements further; two separate tensors work the same way. y may be exactly gate or
 * exactly up (in place); any other overlap is refused. */
LLMK_API LLMK_NODISCARD llmk_status llmk_gated_activation(llmk_context* ctx,
                                                          const llmk_tensor* gate,
                                                          const llmk_tensor* up,
                                                          llmk_activation activation,
                                                          const llmk_tensor* y, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Rotary position embedding (RoPE)
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_rope_style {
  /* Pairs (i, i + rotary_dim/2): GPT-NeoX, Hugging Face Llama, vLLM's is_neox_style=True. */
  LLMK_ROPE_NEOX = 0,
  /* Pairs (2i, 2i + 1): GPT-J, Meta's original Llama, vLLM's is_neox_style=False. */
  LLMK_ROPE_GPTJ = 1
} llmk_rope_style;

/* RoPE's options. Fill with llmk_rope_config_init, then change what differs. */
typedef struct llmk_rope_config {
  size_t struct_size; /* sizeof(llmk_rope_config), set by llmk_rope_config_init */
  int32_t style;      /* an llmk_rope_style; default LLMK_ROPE_NEOX */
  /* The dimensions rotated, from the start of each head: even, <= head_dim and <= 512; 0 (the
   * default) means head_dim. The dimensions past it are left as they are (partial rotary). A
   * larger rotary_dim is refused with LLMK_ERROR_UNSUPPORTED. */
  int32_t rotary_dim;
  /* Pair i (0 <= i < rotary_dim/2) turns by position * theta^(-2i / rotary_dim). Default 10000. */
  double theta;
  /* Llama 3.1's frequency scaling, on when llama3_factor > 0 (default 0: off). With wavelength
   * w = 2 pi / f of a pair's frequency f, L = llama3_original_max_position,
   * lo = llama3_low_freq_factor and hi = llama3_high_freq_factor: f is kept where w < L / hi,
   * divided by llama3_factor where w > L / lo, and in between blended as
   * (1 - s) f / llama3_factor + s f with s = (L / w - lo) / (hi - lo). Llama 3.1 uses 8, 1, 4
   * and 8192. */
  double llama3_factor;
  double llama3_low_freq_factor;
  double llama3_high_freq_factor;
  double llama3_original_max_position;
} llmk_rope_config;

/* Fills `config` with the defaults above (and its struct_size). */
LLMK_API void llmk_rope_config_init(llmk_rope_config* config);

/* Rotates q and k in place by each token's position: in every head, each pair (a, b) of rotary
 * dimensions becomes (a cos - b sin, b cos + a sin) for the pair's angle at positions[t].
 *
 * q: [tokens, q_heads, head_dim]; k: [tokens, kv_heads, head_dim], or NULL to rotate q alone.
 * One dtype, F32, F16 or BF16; head_dim contiguous; token and head strides free, so q and k may
 * be slices of one fused QKV buffer; q and k may not overlap. positions: [tokens], I32 or I64,
 * any stride.
 *
 * cos_sin_cache: NULL, or [max_position, rotary_dim] in F32 or q's dtype, last dimension
 * contiguous, as vLLM builds it: row p holds the cosines of position p's rotary_dim/2 angles,
 * then their sines. With a cache, theta and the Llama 3 scaling are not used, and positions
 * must lie in [0, max_position): the CPU backend refuses any other with LLMK_ERROR_INVALID_VALUE
 * before touching q and k; a CUDA context does not read positions on the host, so there a token
 * with such a position gets NaN in its rotated dimensions, and nothing out of bounds is read.
 * Without a cache, the angles are computed (reduced modulo 2 pi in f64), so any position,
 * negative ones included, rotates accurately to the output dtype. */
LLMK_API LLMK_NODISCARD llmk_status llmk_rope(llmk_context* ctx, const llmk_rope_config* config,
                                              const llmk_tensor* positions, const llmk_tensor* q,
                                              const llmk_tensor* k,
                                              const llmk_tensor* cos_sin_cache, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Embedding
 * ------------------------------------------------------------------------------------------- */

/* y[t] = table[ids[t]]: the rows of an embedding table gathered by token id.
 * ids: [tokens], I32 or I64, any stride. table: [vocab, hidden]; y: [tokens, hidden]; one dtype,
 * F32, F16 or BF16; last dimension contiguous, row strides free; y overlaps neither input.
 * An id outside [0, vocab): the CPU backend refuses the call with LLMK_ERROR_INVALID_VALUE, naming
 * the token, before writing anything; a CUDA context does not read ids on the host, so there that
 * token's row of y is filled with NaN, and nothing out of bounds is read. The CUDA kernel indexes
 * in 32 bits: 2^31 or more tokens is refused with LLMK_ERROR_UNSUPPORTED (y alone would not fit
 * in a GPU's memory). */
LLMK_API LLMK_NODISCARD llmk_status llmk_embedding(llmk_context* ctx, const llmk_tensor* ids,
                                                   const llmk_tensor* table, const llmk_tensor* y,
                                                   void* stream);

/* ---------------------------------------------------------------------------------------------
 * KV caches
 *
 * The two cache layouts llmk's attention ops read, for K and for V alike:
 *  - contiguous: [batch, max_seq, kv_heads, head_dim]; the token of sequence b at position p is
 *    row [b, p];
 *  - paged: [num_pages, page_size, kv_heads, head_dim]; slot s = page * page_size + offset is
 *    row [s / page_size, s % page_size], and a block table maps each sequence's pages.
 * Any strides, except that head_dim is contiguous; K and V caches have one shape, each its own
 * strides. A cache has the dtype of the k and v written into it: F32, F16 or BF16.
 * A contiguous cache is the paged layout with page_size = max_seq and slot b * max_seq + p, so
 * llmk_paged_kv_cache_write also fills a contiguous cache from any per-token positions.
 * The CUDA kernels index in 32 bits: a call that copies 2^31 or more (token, head) rows, or a
 * paged cache of 2^31 or more slots, is refused with LLMK_ERROR_UNSUPPORTED (at any real
 * head_dim, neither fits in a GPU's memory).
 * ------------------------------------------------------------------------------------------- */

/* Appends new tokens to contiguous caches, as flash_attn_with_kvcache does: token i of sequence
 * b goes to position cache_seqlens[b] + i.
 * k, v: [batch, new_len, kv_heads, head_dim], one dtype with the caches, head_dim contiguous,
 * other strides free. cache_seqlens: [batch], I32 or I64, any stride. k_cache, v_cache: the
 * contiguous layout above, of the same batch, kv_heads and head_dim; they overlap nothing.
 * cache_seqlens[b] must lie in [0, max_seq - new_len]: the CPU backend refuses any other with
 * LLMK_ERROR_INVALID_VALUE before writing; a CUDA context does not read it on the host, so there
 * a token whose position falls outside [0, max_seq) is not written, and nothing out of bounds
 * is. */
LLMK_API LLMK_NODISCARD llmk_status llmk_kv_cache_write(llmk_context* ctx, const llmk_tensor* k,
                                                        const llmk_tensor* v,
                                                        const llmk_tensor* cache_seqlens,
                                                        const llmk_tensor* k_cache,
                                                        const llmk_tensor* v_cache, void* stream);

/* Stores tokens into paged caches through a slot mapping, as vLLM's reshape_and_cache does:
 * token t goes to slot slot_mapping[t]; a negative slot means the token is skipped (padding).
 * k, v: [tokens, kv_heads, head_dim], one dtype with the caches, head_dim contiguous, other
 * strides free. slot_mapping: [tokens], I32 or I64, any stride. k_cache, v_cache: the paged
 * layout above, of the same kv_heads and head_dim; they overlap nothing. Where two tokens
 * share a slot, each element there ends up holding one of the two tokens' values.
 * A slot >= num_pages * page_size: the CPU backend refuses it with LLMK_ERROR_INVALID_VALUE
 * before writing; a CUDA context does not read slot_mapping on the host, so there that token is
 * not written, and nothing out of bounds is. */
LLMK_API LLMK_NODISCARD llmk_status llmk_paged_kv_cache_write(
    llmk_context* ctx, const llmk_tensor* k, const llmk_tensor* v, const llmk_tensor* slot_mapping,
    const llmk_tensor* k_cache, const llmk_tensor* v_cache, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Matrix multiplication
 *
 * D = a(alpha * A B + beta * C + bias), with
 *   A: [M, K], B: [K, N], C and D: [M, N], or [batch, ...] of each (see below);
 *   bias: NULL or [N], contiguous, added to every row of D;
 *   a: an llmk_activation.
 * One dtype for every tensor: F32, F16 or BF16. Accumulation is f32 (f64 on the CPU), and each
 * element of D is rounded once. F32 inputs are multiplied in full f32 unless the config allows
 * TF32.
 *
 * Layouts come from the strides, nothing is copied: every matrix is row-major (its last
 * dimension has stride 1) or column-major (its second-to-last dimension has stride 1), with a
 * leading dimension (the other stride) at least its extent. A transposed view is just the other
 * of the two: nn.Linear's y = x W^T, with W [N, K] row-major, is B = W^T, the view of W with
 * shape [K, N] and strides [1, K]. A view that is neither (no unit stride, or a leading dimension
 * smaller than the extent) is refused with LLMK_ERROR_NOT_CONTIGUOUS or LLMK_ERROR_INVALID_STRIDE;
 * so is a bias with a column-major D (LLMK_ERROR_UNSUPPORTED), which cuBLASLt cannot take.
 * C has the layout (row- or column-major) of D, with its own leading dimension.
 *
 * Batches: D of rank 3 is a batch of products. A, B and C have rank 3 with the same batch, each
 * with its own batch stride (0 repeats one matrix for every product), or rank 2 (one matrix for
 * every product). D's batches may not overlap.
 *
 * D may be exactly C (same data, shape and strides); it overlaps nothing else. beta == 0 does not
 * read C, which may then be NULL. M == 0, N == 0 or batch 0 is a successful no-op; K == 0 (an
 * empty sum) is refused with LLMK_ERROR_UNSUPPORTED, on both backends, as cuBLASLt refuses it.
 *
 * Engines, on a CUDA context: cuBLASLt, or for decode-sized M (a few rows) a GEMV kernel of
 * llmk's own that streams B once at memory bandwidth. The GEMV runs where M <= 16, batch is 1,
 * B is column-major (the nn.Linear weight), A and D (and C) are row-major, and the data pointers
 * and leading dimensions of A and B are multiples of 16 bytes (A's only when M > 1). A column-
 * major D (and C) is computed as the product D^T = B^T A^T, so it takes the GEMV on the same
 * layouts of A and B when N <= 16. LLMK_MATMUL_PATH_AUTO takes it where the benchmarks found it
 * faster than cuBLASLt (bench/results/): on the H200 with CUDA 13's cuBLASLt that is M == 1 in
 * f16 and bf16 with K >= 256, except 2048 < K < 3072, where cuBLASLt measured faster; M == 2
 * where K >= 1024 and K % 1024 <= K / 10 (the two-row GEMV leaves the rest to one warp); M == 3
 * or 4 where K >= 256 and K % 256 <= K / 16 (the same for the four-row GEMV's groups); and
 * M = 5 to 8 where N <= K / 2, K >= 128 and K % 128 <= K / 16. gated_mlp's fused gate and up
 * GEMV groups K alike: AUTO takes it at one or two tokens where K >= 1024 and
 * K % 1024 <= K / 10, and at three or four where K >= 256 and K % 256 <= K / 16. Elsewhere AUTO
 * takes cuBLASLt, and the GEMV runs when asked for.
 * llmk_matmul_path_for says which engine a call takes. cuBLASLt fuses bias, ReLU and GELU_TANH into
 * its epilogue; with GELU (exact) or SILU it adds the bias, and one more elementwise pass over D
 * applies the activation. The GEMV fuses all.
 *
 * No per-call overhead: the context holds the cuBLASLt handle and caches its heuristic's answer
 * per shape, layout, dtype and epilogue (llmk_matmul_cache_stats counts the queries); or, once
 * llmk_matmul_tune has timed the candidates for a shape, the fastest. cuBLASLt's
 * workspace is memory the context sets aside per stream, 32 MiB, on the first cuBLASLt matmul on
 * that stream; later calls allocate nothing. A workspace lives as long as the context, keyed by
 * the stream handle. So that a call can be captured into a CUDA graph, run one matmul on the
 * stream before capturing it: a capture that would need to set aside the stream's workspace is
 * refused with LLMK_ERROR_UNSUPPORTED. Setting one aside calls cudaMalloc, which CUDA does not
 * allow while another thread captures in cudaStreamCaptureModeGlobal.
 * ------------------------------------------------------------------------------------------- */

typedef enum llmk_matmul_path {
  LLMK_MATMUL_PATH_AUTO = 0,     /* llmk's choice, as measured (see above) */
  LLMK_MATMUL_PATH_CUBLASLT = 1, /* always cuBLASLt */
  /* llmk's GEMV; a call it cannot take (see above) is refused with LLMK_ERROR_UNSUPPORTED */
  LLMK_MATMUL_PATH_GEMV = 2
} llmk_matmul_path;

/* matmul's options. Fill with llmk_matmul_config_init, then change what differs. */
typedef struct llmk_matmul_config {
  size_t struct_size; /* sizeof(llmk_matmul_config), set by llmk_matmul_config_init */
  float alpha;        /* default 1 */
  float beta;         /* default 0 */
  int32_t activation; /* an llmk_activation; default LLMK_ACTIVATION_IDENTITY */
  /* Nonzero lets cuBLASLt round F32 inputs to TF32 (10-bit mantissa) on tensor cores. Default 0. */
  int32_t allow_tf32;
  int32_t path; /* an llmk_matmul_path; default LLMK_MATMUL_PATH_AUTO; ignored on the CPU */
} llmk_matmul_config;

/* Fills `config` with the defaults above (and its struct_size). */
LLMK_API void llmk_matmul_config_init(llmk_matmul_config* config);

/* D = a(alpha * A B + beta * C + bias), as described above. c and bias may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status llmk_matmul(llmk_context* ctx, const llmk_matmul_config* config,
                                                const llmk_tensor* a, const llmk_tensor* b,
                                                const llmk_tensor* c, const llmk_tensor* bias,
                                                const llmk_tensor* d, void* stream);

/* The engine llmk_matmul would take for these arguments (checked as llmk_matmul checks them):
 * LLMK_MATMUL_PATH_CUBLASLT or LLMK_MATMUL_PATH_GEMV, never AUTO. On a CPU context the answer is
 * the CUDA one for a device like the H200 llmk is tuned on. */
LLMK_API LLMK_NODISCARD llmk_status llmk_matmul_path_for(
    llmk_context* ctx, const llmk_matmul_config* config, const llmk_tensor* a, const llmk_tensor* b,
    const llmk_tensor* c, const llmk_tensor* bias, const llmk_tensor* d, int32_t* path);

/* What llmk_matmul_tune measured. Set struct_size to sizeof(llmk_matmul_tuning) before the call:
 * the library writes only the fields that fit in struct_size bytes. */
typedef struct llmk_matmul_tuning {
  size_t struct_size;
  int32_t candidates; /* cuBLASLt algorithms timed; 0 where there was nothing to tune */
  int32_t chosen;     /* the pinned algorithm's rank in the heuristic's order; 0 is its first */
  float first_us;     /* median time of one GEMM with the heuristic's first algorithm */
  float chosen_us;    /* the same with the pinned one; first_us when chosen is 0 */
} llmk_matmul_tuning;

/* llmk_matmul, with cuBLASLt's algorithm chosen by timing instead of by its heuristic. Where the
 * call takes cuBLASLt, it asks the heuristic for up to 8 algorithms, times each on `stream`, and
 * pins the fastest in the plan cache for this call's shape, layouts, dtype, epilogue and
 * alignments: every later matmul with the same key runs it, with no further query. The
 * heuristic's first choice stays unless another is at least 2% faster. Then it computes D as
 * llmk_matmul does. The candidates write into D, or, when D is C with beta != 0, into scratch
 * memory the size of D that the call allocates and frees.
 *
 * It is a start-up call, not a hot-path one: it synchronizes the stream and allocates, and a
 * stream being captured is refused with LLMK_ERROR_UNSUPPORTED. Tuning a key again re-times it.
 * The times are of the GEMM alone (with GELU or SILU, not the activation pass after it). On a CPU
 * context, and where the call takes the GEMV, there is nothing to tune: it is llmk_matmul, and
 * reports 0 candidates and 0 times. tuning may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status llmk_matmul_tune(llmk_context* ctx,
                                                     const llmk_matmul_config* config,
                                                     const llmk_tensor* a, const llmk_tensor* b,
                                                     const llmk_tensor* c, const llmk_tensor* bias,
                                                     const llmk_tensor* d, void* stream,
                                                     llmk_matmul_tuning* tuning);

/* What the context's matmul plan cache has done so far (all 0 on a CPU context): distinct plans
 * cached, cuBLASLt heuristic queries made (one per plan), and workspaces set aside (one per
 * stream). Either out pointer may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status llmk_matmul_cache_stats(const llmk_context* ctx, int64_t* plans,
                                                            int64_t* heuristic_queries,
                                                            int64_t* workspaces);

/* ---------------------------------------------------------------------------------------------
 * Feed-forward blocks
 *
 * Whole MLP blocks in one call, over nn.Linear weights: y = ... x W^T ..., each weight W of shape
 * [out_features, in_features], last dimension contiguous, row stride free. x: [tokens, d_model]
 * and y: [tokens, d_model], last dimension contiguous, row strides free; one dtype for every
 * tensor: F32, F16 or BF16. y overlaps no input. d_model and d_ff must be > 0 (an empty sum is
 * refused, as in matmul); no tokens is a successful no-op.
 *
 * The intermediate activations live in `workspace`, device memory (host memory on a CPU context)
 * of at least the bytes the *_workspace_size function returns for these shapes, aligned to 16
 * bytes, overlapping no tensor. Each GEMM runs as llmk_matmul would (same engines, same
 * numerics), and the intermediate is rounded to the dtype, as separate calls would round it;
 * only gated_mlp's GEMV engine keeps gate and up in f32 until it has combined them.
 * ------------------------------------------------------------------------------------------- */

/* Options of llmk_ffn and llmk_gated_mlp. Fill with llmk_mlp_config_init. */
typedef struct llmk_mlp_config {
  size_t struct_size; /* sizeof(llmk_mlp_config), set by llmk_mlp_config_init */
  int32_t allow_tf32; /* as in llmk_matmul_config; default 0 */
  int32_t path;       /* an llmk_matmul_path for every GEMM; default LLMK_MATMUL_PATH_AUTO */
  /* Nonzero runs every cuBLASLt GEMM of the block as llmk_matmul_tune runs it: its candidate
   * algorithms are timed and the fastest pinned in the plan cache, so later calls with the same
   * shapes, dtype and pointer alignments (the same x, y and workspace, typically) run it with no
   * query. Such a call is a start-up call, as llmk_matmul_tune is: it synchronizes and allocates,
   * and a stream being captured is refused with LLMK_ERROR_UNSUPPORTED. The GEMV engine and the
   * CPU have nothing to tune. Default 0. */
  int32_t tune;
} llmk_mlp_config;

/* Fills `config` with the defaults above (and its struct_size). */
LLMK_API void llmk_mlp_config_init(llmk_mlp_config* config);

/* Bytes of workspace llmk_ffn needs for x [tokens, d_model] and w1 [d_ff, d_model]. */
LLMK_API LLMK_NODISCARD llmk_status llmk_ffn_workspace_size(llmk_context* ctx, const llmk_tensor* x,
                                                            const llmk_tensor* w1, size_t* bytes);

/* y = a(x W1^T + b1) W2^T + b2. w1: [d_ff, d_model], w2: [d_model, d_ff]; b1: [d_ff] and
 * b2: [d_model], contiguous, or NULL. a is fused into the first GEMM (cuBLASLt fuses bias, ReLU
 * and GELU_TANH; see matmul for GELU and SILU). */
LLMK_API LLMK_NODISCARD llmk_status llmk_ffn(llmk_context* ctx, const llmk_mlp_config* config,
                                             const llmk_tensor* x, const llmk_tensor* w1,
                                             const llmk_tensor* b1, const llmk_tensor* w2,
                                             const llmk_tensor* b2, llmk_activation activation,
                                             void* workspace, size_t workspace_bytes,
                                             const llmk_tensor* y, void* stream);

/* Bytes of workspace llmk_gated_mlp needs for x [tokens, d_model] and w_gate [d_ff, d_model]. */
LLMK_API LLMK_NODISCARD llmk_status llmk_gated_mlp_workspace_size(llmk_context* ctx,
                                                                  const llmk_tensor* x,
                                                                  const llmk_tensor* w_gate,
                                                                  size_t* bytes);

/* y = (a(x Wg^T) * (x Wu^T)) Wd^T: the Llama / Mistral MLP with SILU (SwiGLU), GeGLU with
 * GELU or GELU_TANH, or any other llmk_activation. w_gate and w_up: [d_ff, d_model]; w_down:
 * [d_model, d_ff]. A fused [2 d_ff, d_model] gate_up weight (vLLM's) is passed as two views: w_gate
 * its first d_ff rows, w_up the next d_ff. For a few tokens (the GEMV engine) one kernel reads both
 * weights and applies a(gate) * up before writing; for more, one GEMM (two when w_gate and w_up are
 * not one fused buffer) writes [gate | up], and llmk_gated_activation's kernel combines them. */
LLMK_API LLMK_NODISCARD llmk_status llmk_gated_mlp(llmk_context* ctx, const llmk_mlp_config* config,
                                                   const llmk_tensor* x, const llmk_tensor* w_gate,
                                                   const llmk_tensor* w_up,
                                                   const llmk_tensor* w_down,
                                                   llmk_activation activation, void* workspace,
                                                   size_t workspace_bytes, const llmk_tensor* y,
                                                   void* stream);

/* ---------------------------------------------------------------------------------------------
 * Attention (prefill)
 *
 * O = softmax(scale * Q K^T + mask) V for every sequence and query head, exact, without ever
 * writing the score matrix to memory (flash attention). Two entries share one kernel:
 *   llmk_attention: a padded batch. q and o: [batch, q_len, q_heads, head_dim]; k and v:
 *     [batch, kv_len, kv_heads, head_dim]. Every sequence has q_len queries and kv_len keys.
 *   llmk_attention_varlen: packed sequences of different lengths, as flash-attention's varlen API.
 *     q and o: [total_q, q_heads, head_dim]; k and v: [total_k, kv_heads, head_dim];
 *     cu_seqlens_q and cu_seqlens_k: [batch + 1], I32, contiguous: sequence s has queries
 *     cu_seqlens_q[s] ... cu_seqlens_q[s + 1] - 1 and keys likewise.
 * Every tensor has its own batch (or token), sequence and head strides, so BSHD and BHSD views and
 * slices of one fused QKV buffer work without a copy; head_dim is contiguous (stride 1), every
 * other stride is a multiple of 8 elements and every data pointer 16-byte aligned (else
 * LLMK_ERROR_MISALIGNED). One dtype, F16 or BF16, for q, k, v and o; scores, softmax and
 * accumulation are f32 on CUDA (f64 on the CPU) and each output element is rounded once.
 * head_dim is 64, 96, 128 or 256 (any other is refused with LLMK_ERROR_UNSUPPORTED). GQA and MQA:
 * q_heads is a multiple of kv_heads, and query head h reads kv head h / (q_heads / kv_heads); K
 * and V are never copied per query head.
 *
 * The mask. Query i and key j count from 0 within their sequence of q_len queries and kv_len
 * keys; the queries are the last q_len positions of the sequence (bottom-right alignment, as in
 * FlashAttention 2.1+), so query i sits at key position i + kv_len - q_len. Key j is visible to
 * query i when
 *   j <= i + kv_len - q_len + window_right   (if window_right >= 0), and
 *   j >= i + kv_len - q_len - window_left    (if window_left >= 0).
 * causal is the same as window_right = 0 (with window_right > 0 too: causal wins). A query with
 * no visible key (a causal query when q_len > kv_len, an empty sequence of keys) gets O = 0 and a
 * log-sum-exp of -infinity.
 *
 * The score of query i and key j is s = scale * q_i . k_j, or with a soft-cap c > 0,
 * s = c * tanh(scale * q_i . k_j / c) (Gemma 2, Grok). lse, when not NULL, receives the natural
 * log-sum-exp of each query's visible scores, in F32: [batch, q_heads, q_len] for llmk_attention
 * and [q_heads, total_q] for llmk_attention_varlen (flash-attention's layouts), any strides.
 *
 * Dropout (for fine-tuning; off by default) zeroes each probability with probability dropout_p
 * and scales the kept ones by 1 / (1 - dropout_p); lse is that of the scores, before dropout
 * (a query whose visible keys are all dropped gets O = 0 and a finite lse).
 * The mask is a function of the seed and offset alone, the same on both backends: with Philox
 * 4x32-10 (Salmon et al. 2011), key (low, high 32 bits of dropout_seed) and counter
 * (j / 4, i, s * q_heads + h, dropout_offset) for sequence s and query head h, the element is
 * dropped when word j % 4 of the output is below floor(dropout_p * 2^32).
 *
 * o overlaps no input and lse overlaps nothing. No queries (or batch 0) is a successful no-op.
 * Rows of o and lse past cu_seqlens_q[batch] are left as they are.
 * On a CPU context llmk_attention_varlen checks cu_seqlens on the host (non-decreasing, from 0,
 * ending at most at total_q and total_k, no query sequence longer than max_seqlen_q) and refuses
 * bad ones with LLMK_ERROR_INVALID_VALUE before writing anything. A CUDA context does not read
 * them on the host: there a sequence whose offsets break those rules gets NaN in the rows of o
 * and lse its offsets name (within [0, total_q) and its first max_seqlen_q queries), nothing
 * out of bounds is read or written, and the other sequences are computed as usual.
 * ------------------------------------------------------------------------------------------- */

/* The CUDA kernel that runs an attention call. Both compute the same thing (the rule above and
 * the tests' tolerances hold for each); they differ in speed and reach. */
typedef enum llmk_attention_kernel {
  /* HOPPER where it can run the call, else PORTABLE */
  LLMK_ATTENTION_KERNEL_AUTO = 0,
  /* mma.sync tensor cores (FlashAttention-2's design): every GPU from sm_80 on, every head_dim
   * and option */
  LLMK_ATTENTION_KERNEL_PORTABLE = 1,
  /* wgmma tensor cores reading shared memory (FlashAttention-3's road), ~1.35x PORTABLE's speed
   * on an H200: sm_90 GPUs (H100, H200) with a library built for sm_90a, head_dim 64 and 128,
   * no soft-cap and no dropout. A call it cannot take is refused with LLMK_ERROR_UNSUPPORTED. */
  LLMK_ATTENTION_KERNEL_HOPPER = 2
} llmk_attention_kernel;

/* Attention's options. Fill with llmk_attention_config_init, then change what differs. */
typedef struct llmk_attention_config {
  size_t struct_size;      /* sizeof(llmk_attention_config), set by llmk_attention_config_init */
  float scale;             /* finite and > 0; 0 (the default) means 1 / sqrt(head_dim) */
  int32_t causal;          /* nonzero: causal (window_right = 0), bottom-right aligned. Default 0 */
  int32_t window_left;     /* >= 0, or -1 (the default) for no left limit */
  int32_t window_right;    /* >= 0, or -1 (the default) for no right limit */
  float softcap;           /* the soft-cap c: finite and > 0, or 0 (the default) for none */
  float dropout_p;         /* in [0, 1); default 0 */
  uint32_t dropout_offset; /* the fourth Philox counter word; default 0 */
  uint64_t dropout_seed;   /* the Philox key; default 0 */
  int32_t
      kernel; /* an llmk_attention_kernel; default LLMK_ATTENTION_KERNEL_AUTO; ignored on the CPU */
} llmk_attention_config;

/* Fills `config` with the defaults above (and its struct_size). */
LLMK_API void llmk_attention_config_init(llmk_attention_config* config);

/* Attention over a padded batch, as described above. lse may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status llmk_attention(llmk_context* ctx,
                                                   const llmk_attention_config* config,
                                                   const llmk_tensor* q, const llmk_tensor* k,
                                                   const llmk_tensor* v, const llmk_tensor* o,
                                                   const llmk_tensor* lse, void* stream);

/* Attention over packed sequences of different lengths, as described above. max_seqlen_q (> 0
 * when total_q > 0) bounds the queries of one sequence: the CUDA grid is sized from it, as in
 * flash-attention. lse may be NULL. */
LLMK_API LLMK_NODISCARD llmk_status
llmk_attention_varlen(llmk_context* ctx, const llmk_attention_config* config, const llmk_tensor* q,
                      const llmk_tensor* k, const llmk_tensor* v, const llmk_tensor* cu_seqlens_q,
                      const llmk_tensor* cu_seqlens_k, int64_t max_seqlen_q, const llmk_tensor* o,
                      const llmk_tensor* lse, void* stream);

/* ---------------------------------------------------------------------------------------------
 * Optimizer
 * ------------------------------------------------------------------------------------------- */

/* AdamW's hyperparameters. Fill with llmk_adamw_config_init, then change what differs. */
typedef struct llmk_adamw_config {
  size_t struct_size;  /* sizeof(llmk_adamw_config), set by llmk_adamw_config_init */
  double lr;           /* default 1e-3; >= 0 */
  double beta1;        /* default 0.9; in [0, 1) */
  double beta2;        /* default 0.999; in [0, 1) */
  double eps;          /* default 1e-8; > 0 */
  double weight_decay; /* default 1e-2; >= 0 */
  int64_t step;        /* this update's number, counted from 1 (the default) */
} llmk_adamw_config;

/* Fills `config` with torch.optim.AdamW's defaults (and its struct_size), step 1. */
LLMK_API void llmk_adamw_config_init(llmk_adamw_config* config);

/* One AdamW step (decoupled weight decay), in place, elementwise, as torch.optim.AdamW:
 *   param      = param * (1 - lr * weight_decay)
 *   exp_avg    = beta1 * exp_avg + (1 - beta1) * grad
 *   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad^2
 *   param      = param - lr / (1 - beta1^step)
 *                        * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)
 * param, exp_avg and exp_avg_sq are F32; grad is F32, F16 or BF16. All four have one shape
 * [..., n], last dimension contiguous, leading dimensions with any strides (merging into at most
 * 3); param, exp_avg and exp_avg_sq overlap nothing. The CUDA kernel reads each tensor once and
 * writes each of the three once; the math is f32 there (f64 on the CPU), the scalars that depend
 * on step computed once in f64. */
LLMK_API LLMK_NODISCARD llmk_status llmk_adamw_step(llmk_context* ctx,
                                                    const llmk_adamw_config* config,
                                                    const llmk_tensor* param,
                                                    const llmk_tensor* grad,
                                                    const llmk_tensor* exp_avg,
                                                    const llmk_tensor* exp_avg_sq, void* stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LLMK_H */
