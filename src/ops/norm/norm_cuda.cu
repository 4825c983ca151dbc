// The CUDA backend entry of the normalization ops: dispatch on dtype to the instantiations in
// generated/norm_<dtype>.cu (whose launches report their own failures).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/cuda_util.hpp"
#include "norm.hpp"

namespace llmk {
namespace norm_launch {
template <class T>
void launch_norm(const char* op, const NormParams& p, int sm_count, cudaStream_t stream);
}  // namespace norm_launch

void norm_cuda(const char* op, const NormParams& p, const llmk_context& ctx, void* stream_handle) {
  using norm_launch::launch_norm;
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F32: launch_norm<float>(op, p, ctx.sm_count, stream); break;
    case LLMK_DTYPE_F16: launch_norm<__half>(op, p, ctx.sm_count, stream); break;
    case LLMK_DTYPE_BF16: launch_norm<__nv_bfloat16>(op, p, ctx.sm_count, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "norm_cuda: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
