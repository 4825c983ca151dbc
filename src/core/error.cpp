#include "error.hpp"

#include <cstdarg>
#include <cstdio>

namespace llmk {
namespace {

// One buffer per thread, so concurrent calls never see each other's messages. Fixed size: setting
// an error never allocates and the buffer needs no destructor at thread exit.
thread_local char error_message[512];

}  // namespace

void clear_error() { error_message[0] = '\0'; }

void set_error(const char* message) {
  std::snprintf(error_message, sizeof error_message, "%s", message);
}

void fail(llmk_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(error_message, sizeof error_message, format, args);
  va_end(args);
  throw Failure(status);
}

}  // namespace llmk

extern "C" {

LLMK_API const char* llmk_last_error_message(void) { return llmk::error_message; }

LLMK_API const char* llmk_status_string(llmk_status status) {
  switch (static_cast<int>(status)) {  // an int: callers may pass values beyond the enum's
    case LLMK_SUCCESS: return "success";
    case LLMK_ERROR_NULL_POINTER: return "null pointer";
    case LLMK_ERROR_UNSUPPORTED_DTYPE: return "unsupported dtype";
    case LLMK_ERROR_DTYPE_MISMATCH: return "dtype mismatch";
    case LLMK_ERROR_INVALID_NDIM: return "invalid number of dimensions";
    case LLMK_ERROR_INVALID_SHAPE: return "invalid shape";
    case LLMK_ERROR_SHAPE_MISMATCH: return "shape mismatch";
    case LLMK_ERROR_INVALID_STRIDE: return "invalid stride";
    case LLMK_ERROR_NOT_CONTIGUOUS: return "not contiguous";
    case LLMK_ERROR_MISALIGNED: return "misaligned pointer";
    case LLMK_ERROR_OVERLAP: return "overlapping tensors";
    case LLMK_ERROR_WRONG_MEMORY_SPACE: return "wrong memory space";
    case LLMK_ERROR_WRONG_DEVICE: return "wrong device";
    case LLMK_ERROR_INVALID_VALUE: return "invalid value";
    case LLMK_ERROR_UNSUPPORTED: return "unsupported";
    case LLMK_ERROR_NO_DEVICE: return "no CUDA device";
    case LLMK_ERROR_OUT_OF_MEMORY: return "out of memory";
    case LLMK_ERROR_CUDA: return "CUDA error";
    case LLMK_ERROR_CUDA_CONTEXT_LOST: return "CUDA context lost";
    case LLMK_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

}  // extern "C"
