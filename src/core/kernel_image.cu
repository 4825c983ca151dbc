// A kernel that is never launched: asking the runtime for its attributes tells whether this
// library carries code for the current device, so a context can refuse an unsupported GPU up front
// instead of failing at the first launch.
#include "cuda_util.hpp"

namespace llmk {
namespace {
__global__ void kernel_image_probe() {}
}  // namespace

bool has_kernel_image_for_current_device() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, kernel_image_probe) == cudaSuccess;
}

}  // namespace llmk
