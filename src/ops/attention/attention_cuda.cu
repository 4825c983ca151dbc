// PLACEHOLDER while the kernel is written on main: replaced before anything lands.
#include "core/error.hpp"
#include "ops/attention/attention.hpp"
namespace llmk {
void attention_cuda(const AttentionParams&, const llmk_context&, void*) {
  fail(LLMK_ERROR_UNSUPPORTED, "attention: the CUDA kernel is not built yet");
}
}  // namespace llmk
