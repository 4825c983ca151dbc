// The context behind the opaque llmk_context handle. It is immutable once created, apart from the
// cuBLASLt engine's caches, which guard themselves: that is what makes one context safe to use
// from several threads at once.
#pragma once

#include <memory>

#include "llmk.h"

namespace llmk {
class Cublaslt;  // ops/matmul/cublaslt.hpp
}  // namespace llmk
struct CUctx_st;  // cuda.h's CUcontext is a CUctx_st*

struct llmk_context {
  llmk_backend backend;
  int device;    // CUDA ordinal; -1 for the CPU
  int sm_count;  // multiprocessors of that device (0 for the CPU)
  int cc_major;  // compute capability
  int cc_minor;
  CUctx_st* driver_context;  // the device's primary context, which the runtime's streams use;
                             // NULL on the CPU or where the driver would not say
  std::unique_ptr<llmk::Cublaslt> cublaslt;  // a CUDA context's matmul engine; NULL on the CPU
};

namespace llmk {

// ctx itself, or a LLMK_ERROR_NULL_POINTER failure naming the op.
const llmk_context& require_context(const char* op, const llmk_context* ctx);

inline bool is_cuda(const llmk_context& ctx) { return ctx.backend == LLMK_BACKEND_CUDA; }

}  // namespace llmk
