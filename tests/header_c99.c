/* Compiles llmk.h as strict C99 (a build-time test: it only has to compile). */
#include "llmk.h"

int llmk_header_c99_check(void);

int llmk_header_c99_check(void) {
  llmk_tensor t = {0};
  t.dtype = LLMK_DTYPE_BF16;
  t.ndim = LLMK_MAX_DIMS;
  return (int)sizeof t + (int)LLMK_ERROR_INTERNAL + t.ndim;
}
