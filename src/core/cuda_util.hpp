// CUDA runtime plumbing for host code: error mapping, and the guard that makes each call run on the
// context's device without changing the caller's current device.
#pragma once

#include <cuda_runtime_api.h>

#include "error.hpp"

namespace llmk {

// Sticky errors (the CUDA context is lost) map to LLMK_ERROR_CUDA_CONTEXT_LOST, so callers can
// tell them from bad arguments and from failures the process recovers from.
llmk_status status_from_cuda(cudaError_t error);

[[noreturn]] void fail_cuda(const char* what, cudaError_t error);

inline void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess) fail_cuda(what, error);
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;  // the caller's device, restored on exit; -1 when it was already ours
};

// A function of the CUDA driver API, found through the runtime so that libllmk links no libcuda;
// null where the driver does not offer it. The checks ask the driver where it answers a common
// question (whose memory, whose stream) in less host time than the runtime (bench/NOTES.md).
void* driver_function(const char* name);

// Whether this build of libllmk carries machine code or PTX the current device can run.
bool has_kernel_image_for_current_device();

}  // namespace llmk
