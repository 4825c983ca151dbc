// The CUDA backend entry of the activation ops: dispatch on dtype to the instantiations in
// generated/activation_<dtype>.cu (whose launches report their own failures).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "activation.hpp"
#include "core/context.hpp"
#include "core/cuda_util.hpp"

namespace llmk {
namespace activation_launch {
template <class T>
void launch_activation(const ActivationParams& p, cudaStream_t stream);
}  // namespace activation_launch

void activation_cuda(const ActivationParams& p, void* stream_handle) {
  using activation_launch::launch_activation;
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F32: launch_activation<float>(p, stream); break;
    case LLMK_DTYPE_F16: launch_activation<__half>(p, stream); break;
    case LLMK_DTYPE_BF16: launch_activation<__nv_bfloat16>(p, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "activation_cuda: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
