// The launch of the attention kernel (attention_kernels.cuh) for one dtype and head_dim: whether
// soft-cap or dropout is on becomes the EXTRAS template argument here, and the kernel gets the
// shared memory its tiles need. Each (dtype, head_dim) lives in a generated translation unit
// (CMakeLists.txt, attention_instance.cu.in) so that they compile in parallel; attention_cuda.cu
// prepares the arguments and dispatches.
#pragma once

#include <cuda_runtime.h>

#include "attention_kernels.cuh"
#include "core/cuda_util.hpp"
#include "core/launch.cuh"

namespace llmk {
namespace attention_launch {

template <class T, int D, bool EXTRAS>
void launch_variant(const attention_kernels::KernelArgs& args, dim3 grid, cudaStream_t stream) {
  constexpr auto kernel = &attention_kernels::attention_kernel<T, D, EXTRAS>;
  constexpr int kSmemBytes = attention_kernels::smem_bytes<D>();
  // Above 48 KiB of dynamic shared memory a kernel must opt in, per device; setting it on every
  // launch is a host-side attribute write, cheaper than tracking which devices have it.
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
             "attention: cudaFuncSetAttribute");
  cuda_launch<kernel>("attention", grid, attention_kernels::kThreads, kSmemBytes, stream, args);
}

template <class T, int D>
void launch_attention(const attention_kernels::KernelArgs& args, dim3 grid, bool extras,
                      cudaStream_t stream) {
  if (extras) {
    launch_variant<T, D, true>(args, grid, stream);
  } else {
    launch_variant<T, D, false>(args, grid, stream);
  }
}

}  // namespace attention_launch
}  // namespace llmk
