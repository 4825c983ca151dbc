#include "context.hpp"

#include <cuda.h>

#include <new>
#include <utility>

#include "cuda_util.hpp"
#include "ops/matmul/cublaslt.hpp"

namespace llmk {

const llmk_context& require_context(const char* op, const llmk_context* ctx) {
  if (ctx == nullptr) fail(LLMK_ERROR_NULL_POINTER, "%s: ctx is NULL", op);
  return *ctx;
}

namespace {

int cuda_device_count() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error == cudaSuccess) return count;
  cudaGetLastError();  // clear it: no driver or no GPU is an answer here, not a failure
  if (status_from_cuda(error) == LLMK_ERROR_NO_DEVICE) return 0;
  fail_cuda("cudaGetDeviceCount", error);
}

// The driver's current context: after the runtime has initialized a device on this thread, that
// device's primary context. NULL if the driver would not say.
CUcontext current_driver_context() {
  using GetCurrent = CUresult (*)(CUcontext*);
  const auto get_current = reinterpret_cast<GetCurrent>(driver_function("cuCtxGetCurrent"));
  CUcontext current = nullptr;
  if (get_current == nullptr || get_current(&current) != CUDA_SUCCESS) return nullptr;
  return current;
}

llmk_context make_cuda_context(int device) {
  const int count = cuda_device_count();
  if (count == 0) fail(LLMK_ERROR_NO_DEVICE, "context_create: no CUDA device or driver found");
  if (device < 0 || device >= count) {
    fail(LLMK_ERROR_INVALID_VALUE, "context_create: device %d does not exist (%d CUDA devices)",
         device, count);
  }
  DeviceGuard guard(device);
  check_cuda(cudaFree(nullptr), "context_create: initializing the CUDA context");
  llmk_context ctx{LLMK_BACKEND_CUDA, device, 0, 0, 0, current_driver_context(), nullptr};
  check_cuda(cudaDeviceGetAttribute(&ctx.sm_count, cudaDevAttrMultiProcessorCount, device),
             "context_create: cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&ctx.cc_major, cudaDevAttrComputeCapabilityMajor, device),
             "context_create: cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&ctx.cc_minor, cudaDevAttrComputeCapabilityMinor, device),
             "context_create: cudaDeviceGetAttribute");
  if (!has_kernel_image_for_current_device()) {
    cudaGetLastError();
    fail(LLMK_ERROR_UNSUPPORTED,
         "context_create: this libllmk has no code for device %d (compute capability %d.%d); "
         "rebuild it with that architecture in CMAKE_CUDA_ARCHITECTURES",
         device, ctx.cc_major, ctx.cc_minor);
  }
  ctx.cublaslt = std::make_unique<Cublaslt>(device);
  return ctx;
}

}  // namespace
}  // namespace llmk

using namespace llmk;

extern "C" {

LLMK_API llmk_status llmk_cuda_device_count(int32_t* count) {
  return api_call([&] {
    if (count == nullptr) fail(LLMK_ERROR_NULL_POINTER, "cuda_device_count: count is NULL");
    *count = cuda_device_count();
  });
}

LLMK_API llmk_status llmk_context_create(llmk_backend backend, int32_t device, llmk_context** out) {
  return api_call([&] {
    if (out == nullptr) fail(LLMK_ERROR_NULL_POINTER, "context_create: out is NULL");
    llmk_context ctx{};
    switch (static_cast<int>(backend)) {  // an int: callers may pass values beyond the enum's
      case LLMK_BACKEND_CPU:
        ctx = llmk_context{LLMK_BACKEND_CPU, -1, 0, 0, 0, nullptr, nullptr};
        break;
      case LLMK_BACKEND_CUDA: ctx = make_cuda_context(device); break;
      default:
        fail(LLMK_ERROR_INVALID_VALUE, "context_create: backend %d is not an llmk_backend",
             static_cast<int>(backend));
    }
    *out = new llmk_context(std::move(ctx));
  });
}

LLMK_API void llmk_context_destroy(llmk_context* ctx) { delete ctx; }

LLMK_API llmk_status llmk_context_info(const llmk_context* ctx, llmk_backend* backend,
                                       int32_t* device) {
  return api_call([&] {
    const llmk_context& c = require_context("context_info", ctx);
    if (backend != nullptr) *backend = c.backend;
    if (device != nullptr) *device = c.device;
  });
}

}  // extern "C"
