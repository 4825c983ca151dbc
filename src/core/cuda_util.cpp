#include "cuda_util.hpp"

namespace llmk {

llmk_status status_from_cuda(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return LLMK_SUCCESS;
    case cudaErrorMemoryAllocation: return LLMK_ERROR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable: return LLMK_ERROR_NO_DEVICE;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed: return LLMK_ERROR_CUDA_CONTEXT_LOST;
    default: return LLMK_ERROR_CUDA;
  }
}

void fail_cuda(const char* what, cudaError_t error) {
  const llmk_status status = status_from_cuda(error);
  if (status == LLMK_ERROR_CUDA_CONTEXT_LOST) {
    fail(status, "%s: %s (an earlier asynchronous failure; the CUDA context is lost)", what,
         cudaGetErrorString(error));
  }
  fail(status, "%s: %s", what, cudaGetErrorString(error));
}

void* driver_function(const char* name) {
  void* entry = nullptr;
  cudaDriverEntryPointQueryResult found;
  if (cudaGetDriverEntryPointByVersion(name, &entry, 12000, cudaEnableDefault, &found) !=
          cudaSuccess ||
      found != cudaDriverEntryPointSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return entry;
}

DeviceGuard::DeviceGuard(int device) {
  int current = 0;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  if (current != device) {
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    previous_ = current;
  }
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

}  // namespace llmk
