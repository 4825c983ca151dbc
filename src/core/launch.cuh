// Kernel launches. cuda_launch<kernel>(op, grid, block, shared_bytes, stream, args...) is
// kernel<<<grid, block, shared_bytes, stream>>>(args...) issued through the driver's
// cuLaunchKernel with the kernel's context-independent handle (cudaGetKernel, looked up once per
// kernel: the kernel is a template argument so that each has its own): on the H200 machine that
// costs 0.1-0.2 us less host time per launch than the runtime's <<<>>>, which a call on one row
// notices (bench/NOTES.md, v9). Where the driver or the handle is not available, or the calling
// thread has no current context yet, it takes cudaLaunchKernel. A launch that fails (an earlier
// asynchronous failure included) fails the op at once, naming it.
#pragma once

#include <cuda_runtime.h>

#include <tuple>
#include <utility>

#include "cuda_util.hpp"

namespace llmk {

// The kernel's context-independent handle, or null where the runtime does not give one.
cudaKernel_t kernel_handle(const void* kernel);

// Launches the kernel whose handle is `handle` (or, if null, whose host stub is `kernel`); fails
// with the launch's CUDA status, naming `op`.
void launch_by_handle(const char* op, cudaKernel_t handle, const void* kernel, dim3 grid,
                      dim3 block, size_t shared_bytes, cudaStream_t stream, void** args);

template <class Kernel>
struct KernelParameters;
template <class... Params>
struct KernelParameters<void (*)(Params...)> {
  using Tuple = std::tuple<Params...>;
};

template <auto kernel, class... Args>
void cuda_launch(const char* op, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                 Args&&... args) {
  static const cudaKernel_t handle = kernel_handle(reinterpret_cast<const void*>(kernel));
  // The arguments converted to the kernel's parameter types, as <<<>>> converts them.
  typename KernelParameters<decltype(kernel)>::Tuple values(std::forward<Args>(args)...);
  std::apply(
      [&](auto&... value) {
        void* pointers[] = {&value..., nullptr};
        launch_by_handle(op, handle, reinterpret_cast<const void*>(kernel), grid, block,
                         shared_bytes, stream, pointers);
      },
      values);
}

}  // namespace llmk
