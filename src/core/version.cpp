#include "llmk.h"
#include "numeric.hpp"

#define LLMK_STRINGIFY_(x) #x
#define LLMK_STRINGIFY(x) LLMK_STRINGIFY_(x)

extern "C" {

LLMK_API const char* llmk_version(void) {
  return LLMK_STRINGIFY(LLMK_VERSION_MAJOR) "." LLMK_STRINGIFY(
      LLMK_VERSION_MINOR) "." LLMK_STRINGIFY(LLMK_VERSION_PATCH);
}

LLMK_API int32_t llmk_abi_version(void) { return LLMK_ABI_VERSION; }

LLMK_API int32_t llmk_dtype_bits(llmk_dtype dtype) { return llmk::dtype_bits(dtype); }

}  // extern "C"
