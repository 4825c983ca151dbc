// PLACEHOLDER until this op lands: every entry refuses with LLMK_ERROR_UNSUPPORTED.
#include "core/error.hpp"
extern "C" {
LLMK_API llmk_status llmk_embedding(llmk_context*, const llmk_tensor*, const llmk_tensor*,
                                    const llmk_tensor*, void*) {
  return llmk::api_call([] { llmk::fail(LLMK_ERROR_UNSUPPORTED, "not built yet"); });
}
}
