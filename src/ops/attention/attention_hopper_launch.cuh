// The launch of the Hopper attention kernel (attention_hopper_kernels.cuh) for one dtype and
// head_dim. Each (dtype, head_dim) lives in a generated translation unit built for sm_90a only
// (CMakeLists.txt, attention_hopper_instance.cu.in); attention_cuda.cu decides when it runs.
#pragma once

#include <cuda_runtime.h>

#include "attention_hopper_kernels.cuh"
#include "core/cuda_util.hpp"
#include "core/launch.cuh"

namespace llmk {
namespace attention_launch {

template <class T, int D>
void launch_attention_hopper(const attention_kernels::KernelArgs& args, dim3 grid,
                             cudaStream_t stream) {
  constexpr auto kernel = &attention_hopper::attention_hopper_kernel<T, D>;
  constexpr int kSmemBytes = attention_hopper::smem_bytes<D>();
  // Above 48 KiB of dynamic shared memory a kernel must opt in, per device (as launch_attention).
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
             "attention: cudaFuncSetAttribute");
  cuda_launch<kernel>("attention", grid, attention_hopper::kThreads, kSmemBytes, stream, args);
}

}  // namespace attention_launch
}  // namespace llmk
