/* llmk demo: the three norms on a 4096 x 4096 f32 batch, on the GPU where there is one, else on
 * the CPU backend. Each result is checked against a plain C computation in double precision and
 * each op is timed (wall clock, synchronized).
 *
 * Plain C99 against include/llmk.h, as an inference engine would use it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmk.h"

enum { ROWS = 4096, HIDDEN = 4096, REPEATS = 20 };

static int check(llmk_status status, const char* what) {
  if (status != LLMK_SUCCESS) {
    fprintf(stderr, "%s: %s: %s\n", what, llmk_status_string(status), llmk_last_error_message());
    exit(1);
  }
  return 0;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static llmk_tensor matrix(void* data, int64_t rows, int64_t cols) {
  llmk_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = LLMK_DTYPE_F32;
  t.ndim = 2;
  t.shape[0] = rows;
  t.shape[1] = cols;
  t.strides[0] = cols;
  t.strides[1] = 1;
  return t;
}

static float uniform(unsigned* state) {
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* Largest |got - want| / max|want| over the batch, with want computed in double. */
static double rms_norm_error(const float* x, const float* w, const float* got, int layer) {
  double worst = 0.0, scale = 0.0;
  for (int r = 0; r < ROWS; ++r) {
    const float* row = x + (size_t)r * HIDDEN;
    double mean = 0.0, sum_squares = 0.0;
    if (layer) {
      for (int i = 0; i < HIDDEN; ++i) mean += row[i];
      mean /= HIDDEN;
    }
    for (int i = 0; i < HIDDEN; ++i) sum_squares += (row[i] - mean) * (row[i] - mean);
    const double inv = 1.0 / sqrt(sum_squares / HIDDEN + (layer ? 1e-5 : 1e-6));
    for (int i = 0; i < HIDDEN; ++i) {
      const double want = (row[i] - mean) * inv * w[i];
      const double diff = fabs(got[(size_t)r * HIDDEN + i] - want);
      if (diff > worst) worst = diff;
      if (fabs(want) > scale) scale = fabs(want);
    }
  }
  return worst / scale;
}

int main(void) {
  int32_t devices = 0;
  check(llmk_cuda_device_count(&devices), "cuda_device_count");
  const llmk_backend backend = devices > 0 ? LLMK_BACKEND_CUDA : LLMK_BACKEND_CPU;
  llmk_context* ctx = NULL;
  check(llmk_context_create(backend, 0, &ctx), "context_create");
  printf("llmk %s on %s\n", llmk_version(), devices > 0 ? "CUDA device 0" : "the CPU (no GPU)");

  const size_t n = (size_t)ROWS * HIDDEN, bytes = n * sizeof(float);
  float *x = malloc(bytes), *residual = malloc(bytes), *w = malloc(HIDDEN * sizeof(float)),
        *y = malloc(bytes), *summed = malloc(bytes);
  unsigned seed = 42;
  for (size_t i = 0; i < n; ++i) x[i] = uniform(&seed), residual[i] = uniform(&seed);
  for (int i = 0; i < HIDDEN; ++i) w[i] = 1.0f + 0.2f * uniform(&seed);
  for (size_t i = 0; i < n; ++i) summed[i] = x[i] + residual[i];

  /* llmk_malloc gives device memory on a CUDA context and host memory on a CPU one, so the same
   * code runs on either. */
  void *dx, *dr, *dw, *dy;
  check(llmk_malloc(ctx, bytes, &dx), "malloc");
  check(llmk_malloc(ctx, bytes, &dr), "malloc");
  check(llmk_malloc(ctx, HIDDEN * sizeof(float), &dw), "malloc");
  check(llmk_malloc(ctx, bytes, &dy), "malloc");
  check(llmk_memcpy(ctx, dx, x, bytes, NULL), "memcpy");
  check(llmk_memcpy(ctx, dw, w, HIDDEN * sizeof(float), NULL), "memcpy");
  const llmk_tensor tx = matrix(dx, ROWS, HIDDEN), tr = matrix(dr, ROWS, HIDDEN),
                    ty = matrix(dy, ROWS, HIDDEN);
  llmk_tensor tw = matrix(dw, 1, HIDDEN);
  tw.ndim = 1;
  tw.shape[0] = HIDDEN;
  tw.strides[0] = 1;

  const char* names[] = {"rms_norm", "add_rms_norm", "layer_norm"};
  for (int op = 0; op < 3; ++op) {
    double seconds = 0.0;
    for (int rep = 0; rep < (backend == LLMK_BACKEND_CUDA ? REPEATS : 1); ++rep) {
      /* add_rms_norm updates residual in place: start each repeat from the same residual. */
      check(llmk_memcpy(ctx, dr, residual, bytes, NULL), "memcpy");
      check(llmk_synchronize(ctx, NULL), "synchronize");
      const double start = now_seconds();
      if (op == 0) check(llmk_rms_norm(ctx, &tx, &tw, 1e-6f, &ty, NULL), names[op]);
      if (op == 1) check(llmk_add_rms_norm(ctx, &tx, &tr, &tw, 1e-6f, &ty, NULL), names[op]);
      if (op == 2) check(llmk_layer_norm(ctx, &tx, &tw, NULL, 1e-5f, &ty, NULL), names[op]);
      check(llmk_synchronize(ctx, NULL), "synchronize");
      if (rep > 0 || backend == LLMK_BACKEND_CPU) seconds += now_seconds() - start;
    }
    const int timed = backend == LLMK_BACKEND_CUDA ? REPEATS - 1 : 1;
    check(llmk_memcpy(ctx, y, dy, bytes, NULL), "memcpy");
    check(llmk_synchronize(ctx, NULL), "synchronize");
    const double error = rms_norm_error(op == 1 ? summed : x, w, y, op == 2);
    const double us = 1e6 * seconds / timed;
    const double gbs = (op == 1 ? 4.0 : 2.0) * (double)bytes / (us * 1e3);
    printf("%-13s %dx%d f32: %9.1f us  %7.1f GB/s  max error %.1e  %s\n", names[op], ROWS, HIDDEN,
           us, gbs, error, error < 1e-5 ? "ok" : "WRONG");
    if (error >= 1e-5) return 1;
  }

  check(llmk_free(ctx, dx), "free");
  check(llmk_free(ctx, dr), "free");
  check(llmk_free(ctx, dw), "free");
  check(llmk_free(ctx, dy), "free");
  llmk_context_destroy(ctx);
  free(x), free(residual), free(w), free(y), free(summed);
  return 0;
}
