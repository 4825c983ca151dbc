// The CUDA entries of the GEMV engine, matmul_gemv and gated_gemv: dispatch on dtype to the
// instantiations in generated/gemv_<dtype>.cu (whose launches report their own failures).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/cuda_util.hpp"
#include "matmul.hpp"

namespace llmk {
namespace gemv_launch {
template <class T>
void launch_gemv(const char* op, const MatmulParams& p, const MatrixView* up, int sm_count,
                 cudaStream_t stream);
}  // namespace gemv_launch

namespace {

static_assert(kGemvMaxRows == 16, "the GEMV kernels hold 8 or 16 rows of x");

void gemv(const char* op, const MatmulParams& p, const MatrixView* up, int sms,
          void* stream_handle) {
  using gemv_launch::launch_gemv;
  if (p.m == 0 || p.n == 0) return;
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F32: launch_gemv<float>(op, p, up, sms, stream); break;
    case LLMK_DTYPE_F16: launch_gemv<__half>(op, p, up, sms, stream); break;
    case LLMK_DTYPE_BF16: launch_gemv<__nv_bfloat16>(op, p, up, sms, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "%s: dtype %d reached the GEMV engine", op, p.dtype);
  }
}

}  // namespace

void matmul_gemv(const MatmulParams& p, const llmk_context& ctx, void* stream) {
  gemv("matmul", p, nullptr, ctx.sm_count, stream);
}

void gated_gemv(const MatmulParams& gate, const MatrixView& up, const llmk_context& ctx,
                void* stream) {
  gemv("gated_mlp", gate, &up, ctx.sm_count, stream);
}

}  // namespace llmk
