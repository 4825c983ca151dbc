/* Links against an installed libllmk and runs one op on the CPU: proof that the headers, the
 * library and its package files work outside the build tree. */
#include <stdio.h>

#include "llmk.h"

int main(void) {
  float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, y[4];
  llmk_tensor tx = {0}, tw = {0}, ty = {0};
  tx.data = x, tw.data = w, ty.data = y;
  tx.ndim = tw.ndim = ty.ndim = 1;
  tx.shape[0] = tw.shape[0] = ty.shape[0] = 4;
  tx.strides[0] = tw.strides[0] = ty.strides[0] = 1;
  llmk_context* ctx = NULL;
  if (llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx) != LLMK_SUCCESS) return 1;
  const llmk_status status = llmk_rms_norm(ctx, &tx, &tw, 0.0f, &ty, NULL);
  llmk_context_destroy(ctx);
  if (status != LLMK_SUCCESS || llmk_abi_version() != LLMK_ABI_VERSION) return 1;
  printf("llmk %s installed: rms_norm(1, 2, 3, 4)[3] = %.4f\n", llmk_version(), y[3]);
  return 0;
}
