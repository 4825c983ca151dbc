// PLACEHOLDER until this op lands: every entry refuses with LLMK_ERROR_UNSUPPORTED.
#include "core/error.hpp"
extern "C" {
LLMK_API llmk_status llmk_bias_activation(llmk_context*, const llmk_tensor*, const llmk_tensor*,
                                          llmk_activation, const llmk_tensor*, void*) {
  return llmk::api_call([] { llmk::fail(LLMK_ERROR_UNSUPPORTED, "not built yet"); });
}
LLMK_API llmk_status llmk_gated_activation(llmk_context*, const llmk_tensor*, const llmk_tensor*,
                                           llmk_activation, const llmk_tensor*, void*) {
  return llmk::api_call([] { llmk::fail(LLMK_ERROR_UNSUPPORTED, "not built yet"); });
}
}
