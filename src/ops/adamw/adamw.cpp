// PLACEHOLDER until this op lands: every entry refuses with LLMK_ERROR_UNSUPPORTED.
#include "core/error.hpp"
extern "C" {
LLMK_API llmk_status llmk_adamw_step(llmk_context*, const llmk_adamw_config*, const llmk_tensor*,
                                     const llmk_tensor*, const llmk_tensor*, const llmk_tensor*,
                                     void*) {
  return llmk::api_call([] { llmk::fail(LLMK_ERROR_UNSUPPORTED, "not built yet"); });
}
}
extern "C" LLMK_API void llmk_adamw_config_init(llmk_adamw_config* config) {
  if (config == nullptr) return;
  *config = llmk_adamw_config{};
  config->struct_size = sizeof(llmk_adamw_config);
  config->lr = 1e-3;
  config->beta1 = 0.9;
  config->beta2 = 0.999;
  config->eps = 1e-8;
  config->weight_decay = 1e-2;
  config->step = 1;
}
