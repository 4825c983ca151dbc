// PLACEHOLDER until this op lands: every entry refuses with LLMK_ERROR_UNSUPPORTED.
#include "core/error.hpp"
extern "C" {
LLMK_API llmk_status llmk_rope(llmk_context*, const llmk_rope_config*, const llmk_tensor*,
                               const llmk_tensor*, const llmk_tensor*, const llmk_tensor*, void*) {
  return llmk::api_call([] { llmk::fail(LLMK_ERROR_UNSUPPORTED, "not built yet"); });
}
}
extern "C" LLMK_API void llmk_rope_config_init(llmk_rope_config* config) {
  if (config == nullptr) return;
  *config = llmk_rope_config{};
  config->struct_size = sizeof(llmk_rope_config);
  config->style = LLMK_ROPE_NEOX;
  config->theta = 10000.0;
}
