// Placeholder until the GEMV engine lands (branch gemv): the GEMV path reports itself unsupported.
#include "core/error.hpp"
#include "matmul.hpp"

namespace llmk {
void matmul_gemv(const MatmulParams&, void*) {
  fail(LLMK_ERROR_UNSUPPORTED, "matmul: the GEMV engine is not built yet");
}
void gated_gemv(const MatmulParams&, const MatrixView&, void*) {
  fail(LLMK_ERROR_UNSUPPORTED, "gated_mlp: the GEMV engine is not built yet");
}
}  // namespace llmk
