// Allocation and copies for callers that have no CUDA runtime of their own.
#include <cstdlib>
#include <cstring>

#include "context.hpp"
#include "cuda_util.hpp"
#include "tensor.hpp"

using namespace llmk;

namespace {
constexpr size_t kAlignment = 256;
}

extern "C" {

LLMK_API llmk_status llmk_malloc(llmk_context* ctx, size_t bytes, void** out) {
  return api_call([&] {
    const llmk_context& c = require_context("malloc", ctx);
    if (out == nullptr) fail(LLMK_ERROR_NULL_POINTER, "malloc: out is NULL");
    if (bytes == 0) fail(LLMK_ERROR_INVALID_VALUE, "malloc: bytes is 0");
    void* ptr = nullptr;
    if (is_cuda(c)) {
      DeviceGuard guard(c.device);
      const cudaError_t error = cudaMalloc(&ptr, bytes);
      if (error != cudaSuccess) {
        cudaGetLastError();
        fail(status_from_cuda(error), "malloc: %zu bytes on device %d: %s", bytes, c.device,
             cudaGetErrorString(error));
      }
    } else {
      if (bytes > SIZE_MAX - kAlignment) {
        fail(LLMK_ERROR_OUT_OF_MEMORY, "malloc: %zu bytes of host memory", bytes);
      }
      ptr = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
      if (ptr == nullptr) fail(LLMK_ERROR_OUT_OF_MEMORY, "malloc: %zu bytes of host memory", bytes);
    }
    *out = ptr;
  });
}

LLMK_API llmk_status llmk_free(llmk_context* ctx, void* ptr) {
  return api_call([&] {
    const llmk_context& c = require_context("free", ctx);
    if (ptr == nullptr) return;
    if (is_cuda(c)) {
      DeviceGuard guard(c.device);
      check_cuda(cudaFree(ptr), "free");
    } else {
      std::free(ptr);
    }
  });
}

LLMK_API llmk_status llmk_memcpy(llmk_context* ctx, void* dst, const void* src, size_t bytes,
                                 void* stream) {
  return api_call([&] {
    const llmk_context& c = require_context("memcpy", ctx);
    if (bytes == 0) return;
    if (dst == nullptr) fail(LLMK_ERROR_NULL_POINTER, "memcpy: dst is NULL");
    if (src == nullptr) fail(LLMK_ERROR_NULL_POINTER, "memcpy: src is NULL");
    if (is_cuda(c)) {
      DeviceGuard guard(c.device);
      check_stream(c, "memcpy", stream);
      check_cuda(
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)),
          "memcpy");
    } else {
      std::memcpy(dst, src, bytes);
    }
  });
}

LLMK_API llmk_status llmk_synchronize(llmk_context* ctx, void* stream) {
  return api_call([&] {
    const llmk_context& c = require_context("synchronize", ctx);
    if (!is_cuda(c)) return;
    DeviceGuard guard(c.device);
    check_stream(c, "synchronize", stream);
    check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "synchronize");
  });
}

}  // extern "C"
