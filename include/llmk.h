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
 *    into a CUDA graph. On a CPU context tensors live in host memory, ops run to completion on the
 *    calling thread and the stream argument is ignored (pass NULL).
 *
 *  - Threads. A context may be used from several threads at once, each with its own stream.
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

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LLMK_H */
