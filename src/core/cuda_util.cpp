#include "cuda_util.hpp"

#include <cuda.h>

#include "launch.cuh"

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

namespace {

using DriverLaunch = CUresult (*)(CUfunction function, unsigned grid_x, unsigned grid_y,
                                  unsigned grid_z, unsigned block_x, unsigned block_y,
                                  unsigned block_z, unsigned shared_bytes, CUstream stream,
                                  void** args, void** extra);

}  // namespace

cudaKernel_t kernel_handle(const void* kernel) {
  cudaKernel_t handle = nullptr;
  if (cudaGetKernel(&handle, kernel) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return handle;
}

void launch_by_handle(const char* op, cudaKernel_t handle, const void* kernel, dim3 grid,
                      dim3 block, size_t shared_bytes, cudaStream_t stream, void** args) {
  static const auto driver_launch =
      reinterpret_cast<DriverLaunch>(driver_function("cuLaunchKernel"));
  auto runtime_launch = [&] {
    const cudaError_t error = cudaLaunchKernel(kernel, grid, block, args, shared_bytes, stream);
    if (error != cudaSuccess) cudaGetLastError();
    return error;
  };
  cudaError_t error;
  if (handle != nullptr && driver_launch != nullptr) {
    // A CUkernel stands for its function in the current context; CUresult and cudaError_t share
    // the codes of every failure a launch reports.
    error = static_cast<cudaError_t>(driver_launch(
        reinterpret_cast<CUfunction>(handle), grid.x, grid.y, grid.z, block.x, block.y, block.z,
        static_cast<unsigned>(shared_bytes), static_cast<CUstream>(stream), args, nullptr));
    // A thread that has made no CUDA call yet has no current context (CUDA_ERROR_INVALID_CONTEXT):
    // the runtime binds the device's primary context to it, as <<<>>> would, and the thread's
    // later launches take the driver's path.
    if (error == cudaErrorDeviceUninitialized) error = runtime_launch();
  } else {
    error = runtime_launch();
  }
  if (error != cudaSuccess) fail_cuda(op, error);
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
