// matmul as its engines see it: the checked call rewritten so that D is row-major (a column-major
// D is the transposed problem D^T = B^T A^T), each matrix a pointer, an orientation, a leading
// dimension and a batch stride, all counted in elements.
#pragma once

#include "core/context.hpp"

namespace llmk {

struct MatrixView {
  const void* data;  // NULL only for an absent C
  bool row_major;    // element (i, j) at i * ld + j; else at i + j * ld
  int64_t ld;        // >= the extent along the unit-stride side, >= 1
  int64_t batch_stride;
};

struct MatmulParams {
  llmk_dtype dtype;  // of every tensor
  int64_t batch, m, n, k;
  MatrixView a;      // [m, k]
  MatrixView b;      // [k, n]
  MatrixView c;      // [m, n], row-major; data is NULL when beta == 0
  MatrixView d;      // [m, n], row-major
  const void* bias;  // [n], contiguous, or NULL
  float alpha, beta;
  llmk_activation activation;
  bool allow_tf32;
};

// What llmk_matmul_tune measured (see llmk_matmul_tuning): all 0 where nothing was tuned.
struct MatmulTuning {
  int32_t candidates = 0, chosen = 0;
  float first_us = 0.0f, chosen_us = 0.0f;
};

// Fails with LLMK_ERROR_UNSUPPORTED when `stream` is being captured: tuning times calls and
// synchronizes the stream, which a capture cannot take.
void refuse_tuning_while_capturing(const char* op, void* stream);

// Fails with LLMK_ERROR_INVALID_VALUE, naming `name`, unless `path` is an llmk_matmul_path.
void check_path(const char* op, const char* name, int32_t path);

// Where the GEMV engine can run at all: batch 1, m <= kGemvMaxRows, A and D (and C) row-major,
// B column-major, and 16-byte aligned pointers and leading dimensions for A and B.
constexpr int64_t kGemvMaxRows = 16;
bool gemv_can_run(const MatmulParams& p);

// The k that a warp of the one-row GEMV reads per round trip (gemv_kernels.cuh, RowWarp's kGroup:
// gated_mlp's gate and up kernel reads both weights, half as much of each). The k % group
// elements left over go to one warp per row, element by element, unless matmul's kernel reads the
// row in runs (below).
constexpr int64_t kGemvRowGroup = 2048, kGatedGemvRowGroup = 1024;
// The same for the two-row kernel (gemv_kernels.cuh, PairWarp), matmul's and gated_mlp's: its
// warps read each row in groups of 1024 elements and leave the rest to one warp, element by
// element.
constexpr int64_t kGemvPairGroup = 1024;
// The same for the three- to eight-row kernel (gemv_kernels.cuh, QuadWarp): 256 elements up to four
// rows, 128 up to eight.
constexpr int64_t kGemvQuadGroup = 256, kGemvOctGroup = 128;
// The elements of a row that one load of such a warp reads: under one, all of k is leftover.
constexpr int64_t kGemvRowSegment = 256;

// Whether k holds at least one of a GEMV kernel's groups and what is left over (see kGemvRowGroup)
// is at most 1 / parts of k. Where the one-row GEMV's leftover is more than a tenth, matmul's
// kernel reads each row in contiguous runs per warp instead (gemv_kernels.cuh, RunWarp); the other
// kernels have no such form, and there AUTO takes cuBLASLt.
inline bool gemv_leftover_is_small(int64_t k, int64_t group, int64_t parts = 10) {
  return k >= group && k % group * parts <= k;
}

// The engine for a CUDA call, resolving LLMK_MATMUL_PATH_AUTO; fails with LLMK_ERROR_UNSUPPORTED
// when the GEMV is asked for and cannot run. `gated` asks for gated_mlp's gate and up GEMV.
llmk_matmul_path choose_matmul_path(const char* op, const MatmulParams& p, llmk_matmul_path asked,
                                    bool gated = false);

// Runs a checked call on ctx's backend (the caller has made a CUDA context's device current):
// the CPU reference, or the engine choose_matmul_path picks, with the activation pass cuBLASLt
// needs for GELU and SILU. An empty product is a no-op. With `tuning`, a cuBLASLt call first
// times its candidate algorithms and pins the fastest (llmk_matmul_tune).
void run_matmul(const char* op, const llmk_context& ctx, const MatmulParams& p,
                llmk_matmul_path asked, void* stream, MatmulTuning* tuning = nullptr);

// The reference: f64 sums, each element of D rounded once.
void matmul_cpu(const MatmulParams& p);

// The GEMV engine (the cuBLASLt one is ctx.cublaslt); the caller has made the device current.
void matmul_gemv(const MatmulParams& p, const llmk_context& ctx, void* stream);

// gated_mlp's fused first half on the GEMV engine: h = a(x Wg^T) * (x Wu^T), rounded once.
// gate and up are [m, k] x [k, n] problems as above that share a and d (the output h); their
// alpha is 1, beta 0 and no bias.
void gated_gemv(const MatmulParams& gate, const MatrixView& up, const llmk_context& ctx,
                void* stream);

}  // namespace llmk
