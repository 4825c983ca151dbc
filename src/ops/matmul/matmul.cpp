// The C entries of matmul: every argument check, the call rewritten for the engines (D row-major),
// and the choice of engine.
#include "matmul.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <optional>

#include "core/config.hpp"
#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
#include "core/tensor.hpp"
#include "cublaslt.hpp"
#include "ops/activation/activation.hpp"

namespace llmk {
namespace {

constexpr const char* kOp = "matmul";

// Whether AUTO takes the one-row GEMV at this k (gated: gated_mlp's gate and up kernel). Measured
// over 21 weight shapes on the H200 (bench/NOTES.md, issue 4's eleventh to fourteenth passes):
// - matmul's kernel was 1.04-1.26x faster than cuBLASLt at K = 512-28672, but tied at 1536 x 6144
//   (0.98-1.03x) and, in one run of two, at 5120 x 5120 in bf16 (1.00x; 1.04x in the other). It
//   lost at K = 2176-2560 (0.89-0.98x), rows a little longer than one 2048-element group (runs of
//   three round trips with a short last one at 2304 and 2560; at 2176, 128 elements left to one
//   warp), and at K = 64 (0.94-0.97x), under one 256-element segment, all read element by element.
// - the gated kernel leaves the k past its last 1024-element group to one warp per row, element
//   by element, as matmul's did before its runs, which then lost wherever that was over a tenth
//   of k (0.79-0.88x at K = 5120, up to 1.7x behind below K = 2048); AUTO keeps the gated kernel
//   to the rest (d_model 4096, 5120, 8192: 1.07-1.16x).
bool auto_takes_one_row_gemv(int64_t k, bool gated) {
  if (gated) return gemv_leftover_is_small(k, kGatedGemvRowGroup);
  return k >= kGemvRowSegment && (k <= kGemvRowGroup || k >= kGemvRowGroup * 3 / 2);
}

// Whether AUTO takes the GEMV for m rows of f16/bf16 (f32 was not measured against cuBLASLt):
// where it measured faster than cuBLASLt on the H200 with CUDA 13 (bench/NOTES.md, issue 4).
// - One row: auto_takes_one_row_gemv.
// - Two rows: the two-row kernel was 1.016-1.30x faster than cuBLASLt at all 14 of 21 weight
//   shapes whose k leaves at most a tenth past its last 1024-element group (2 x 4096 x 11008:
//   1.02x; 11008 x 4096: 1.12-1.14x), and 0.75-0.89x at the six that leave more (K = 512-3584; at
//   K = 64 the two tie). gated_mlp at two tokens on its fused gate/up kernel took 72.4 us at
//   d_model 4096 and 108.1-108.2 at 5120 against 74.6-74.7 and 110.3 with gate and up on
//   cuBLASLt (the down projection on the GEMV both times), and tied at 8192 (issue 4's fifteenth
//   pass). Both group k by 1024.
// - Three and four rows: the four-row kernel was 1.025-1.26x faster than cuBLASLt at all 20 of 21
//   weight shapes with K >= 256, in f16 and bf16, in two runs (4 x 4096 x 11008: 25.0-25.2 us
//   against 26.4-27.5; the closest, 4 x 5120 x 13824 bf16, 37.2 against 38.4), and gated_mlp's
//   block on its fused gate/up kernel 1.03x faster than with gate and up on cuBLASLt at d_model
//   3584, 4096 and 5120 (70.0 against 72.2 us at 4096), a tie at 8192. It reads k in groups of 256
//   and leaves the rest to one warp, element by element: with 5.9% of k left (K = 2176) it
//   was 1.05x faster, with 7.6% (K = 2216) 0.98-1.03x, and with more 0.75-0.91x (K = 200-1000), so
//   AUTO takes it where at most a sixteenth is left over (issue 4's sixteenth pass).
// - Five to eight rows: the eight-row kernel (16 W rows per warp) was 1.05-1.19x faster than
//   cuBLASLt at all six weight shapes of 14 with N <= K / 2 (down projections, GQA's key and
//   value projections: 8 x 11008 x 4096, 25.2-25.6 us against 29.2-29.7), in f16 and bf16. With
//   more outputs it won at most shapes but lost at 8192 x 28672 (0.97-0.98x) and tied in bf16 at
//   5120 x 5120 (0.99-1.00x), where cuBLASLt's bf16 kernel is 10% faster than its f16 one. Its
//   groups are 128 elements; none of the 14 shapes left any over. gated_mlp's gate and up (N > K
//   in every model measured) stay on cuBLASLt.
// - Nine to sixteen rows: MmaWarp ties or loses by up to 3% at the Llama shapes, and wins by 3-5%
//   where N is small against K, too little to call a crossover (issue 4's GEMV rework).
bool auto_takes_gemv(int64_t m, int64_t n, int64_t k, bool gated) {
  if (m == 1) return auto_takes_one_row_gemv(k, gated);
  if (m == 2) return gemv_leftover_is_small(k, kGemvPairGroup);
  if (m <= 4) return gemv_leftover_is_small(k, kGemvQuadGroup, 16);
  return m <= 8 && !gated && 2 * n <= k && gemv_leftover_is_small(k, kGemvOctGroup, 16);
}

// The row-major or column-major reading of the matrix in the last two dimensions of t, trying
// row-major first when `prefer_row_major`. The stride along an extent of 1 is free: the leading
// dimension is then the given stride where it could be one (so a padded single row keeps its
// alignment), else the other extent. An empty matrix is never read and takes any strides.
MatrixView orient(const char* op, Arg a, bool prefer_row_major) {
  const llmk_tensor& t = *a.tensor;
  const int row_dim = t.ndim - 2;
  const int64_t rows = t.shape[row_dim], cols = t.shape[row_dim + 1];
  const int64_t row_stride = t.strides[row_dim], col_stride = t.strides[row_dim + 1];
  const int64_t batch_stride = t.ndim == 3 ? t.strides[0] : 0;
  const int64_t min_row_ld = std::max<int64_t>(cols, 1), min_col_ld = std::max<int64_t>(rows, 1);
  if (rows == 0 || cols == 0) {
    return {t.data, prefer_row_major, prefer_row_major ? min_row_ld : min_col_ld, batch_stride};
  }
  const bool row_unit = cols == 1 || col_stride == 1;
  const bool col_unit = rows == 1 || row_stride == 1;
  const int64_t row_ld = rows == 1 && row_stride < min_row_ld ? min_row_ld : row_stride;
  const int64_t col_ld = cols == 1 && col_stride < min_col_ld ? min_col_ld : col_stride;
  const bool row_ok = row_unit && row_ld >= min_row_ld;
  const bool col_ok = col_unit && col_ld >= min_col_ld;
  if (row_ok && (prefer_row_major || !col_ok)) return {t.data, true, row_ld, batch_stride};
  if (col_ok) return {t.data, false, col_ld, batch_stride};
  if (!row_unit && !col_unit) {
    fail(LLMK_ERROR_NOT_CONTIGUOUS,
         "%s: %s is neither row-major nor column-major: neither of its last two dimensions has "
         "stride 1 (strides %lld, %lld)",
         op, a.name, static_cast<long long>(row_stride), static_cast<long long>(col_stride));
  }
  const bool row_side = row_unit;
  fail(LLMK_ERROR_INVALID_STRIDE,
       "%s: %s is %s with a leading dimension of %lld, less than its %lld %s; cuBLASLt cannot "
       "take overlapping %s",
       op, a.name, row_side ? "row-major" : "column-major",
       static_cast<long long>(row_side ? row_stride : col_stride),
       static_cast<long long>(row_side ? cols : rows), row_side ? "columns" : "rows",
       row_side ? "rows" : "columns");
}

void check_scalar(const char* op, const char* name, float value) {
  if (!std::isfinite(value)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->%s is %g; it must be finite", op, name, value);
  }
}

// D^T = B^T A^T: the same product with D row-major.
MatmulParams transposed(const MatmulParams& p) {
  MatmulParams t = p;
  const auto flip = [](MatrixView m) {
    m.row_major = !m.row_major;
    return m;
  };
  t.m = p.n;
  t.n = p.m;
  t.a = flip(p.b);
  t.b = flip(p.a);
  t.c = flip(p.c);
  t.d = flip(p.d);
  return t;
}

// Every check of llmk_matmul; the call as the engines take it. `path` gets the config's.
MatmulParams check_matmul(const llmk_context& ctx, const llmk_matmul_config* config_given, Arg a,
                          Arg b, Arg c, Arg bias, Arg d, void* stream, llmk_matmul_path* path) {
  const llmk_matmul_config config =
      read_config(kOp, "config", config_given, sizeof(llmk_matmul_config), llmk_matmul_config_init);
  check_scalar(kOp, "alpha", config.alpha);
  check_scalar(kOp, "beta", config.beta);
  check_activation(kOp, "config->activation", config.activation);
  check_path(kOp, "config->path", config.path);

  check_view(kOp, a);
  check_view(kOp, b);
  check_view(kOp, d);
  const bool has_c = c.tensor != nullptr, has_bias = bias.tensor != nullptr;
  if (has_c) check_view(kOp, c);
  if (has_bias) check_view(kOp, bias);
  if (config.beta != 0.0f && !has_c) {
    fail(LLMK_ERROR_NULL_POINTER, "%s: c is NULL but config->beta is %g", kOp, config.beta);
  }

  check_dtype(kOp, a, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  check_same_dtype(kOp, a, b);
  check_same_dtype(kOp, a, d);
  if (has_c) check_same_dtype(kOp, a, c);
  if (has_bias) check_same_dtype(kOp, a, bias);

  check_ndim(kOp, d, 2, 3);
  const int batched = d.tensor->ndim == 3;
  check_ndim(kOp, a, 2, 2 + batched);
  check_ndim(kOp, b, 2, 2 + batched);
  if (has_c) check_ndim(kOp, c, 2, 2 + batched);
  if (has_bias) check_ndim(kOp, bias, 1, 1);

  const llmk_tensor &ta = *a.tensor, &tb = *b.tensor, &td = *d.tensor;
  const int64_t batch = batched ? td.shape[0] : 1;
  const int64_t m = ta.shape[ta.ndim - 2], k = ta.shape[ta.ndim - 1];
  const int64_t n = tb.shape[tb.ndim - 1];
  const auto mismatch = [&](Arg t, const char* what, int64_t got, const char* source,
                            int64_t want) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %lld %s, but %s has %lld", kOp, t.name,
         static_cast<long long>(got), what, source, static_cast<long long>(want));
  };
  if (tb.shape[tb.ndim - 2] != k) mismatch(b, "rows", tb.shape[tb.ndim - 2], "a's K (columns)", k);
  if (td.shape[td.ndim - 2] != m) mismatch(d, "rows", td.shape[td.ndim - 2], "a's M (rows)", m);
  if (td.shape[td.ndim - 1] != n)
    mismatch(d, "columns", td.shape[td.ndim - 1], "b's N (columns)", n);
  for (const Arg& operand : {a, b, c}) {
    if (operand.tensor == nullptr || operand.tensor->ndim != 3) continue;
    if (operand.tensor->shape[0] != batch) {
      mismatch(operand, "batches", operand.tensor->shape[0], "d", batch);
    }
  }
  if (has_c) {
    const llmk_tensor& tc = *c.tensor;
    if (tc.shape[tc.ndim - 2] != m) mismatch(c, "rows", tc.shape[tc.ndim - 2], "d", m);
    if (tc.shape[tc.ndim - 1] != n) mismatch(c, "columns", tc.shape[tc.ndim - 1], "d", n);
  }
  if (has_bias) {
    if (bias.tensor->shape[0] != n) mismatch(bias, "elements", bias.tensor->shape[0], "d's N", n);
    check_unit_stride(kOp, bias, 0);
  }
  if (k == 0) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: a has no columns (K is 0), which cuBLASLt cannot take", kOp);
  }

  MatmulParams p{};
  p.dtype = static_cast<llmk_dtype>(ta.dtype);
  p.batch = batch;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = orient(kOp, a, /*prefer_row_major=*/true);
  p.b = orient(kOp, b, /*prefer_row_major=*/false);  // nn.Linear's W^T is column-major
  p.d = orient(kOp, d, /*prefer_row_major=*/true);
  if (has_c) {
    p.c = orient(kOp, c, p.d.row_major);
    if (p.c.row_major != p.d.row_major) {
      fail(LLMK_ERROR_UNSUPPORTED, "%s: c is %s but d is %s; c must have d's layout", kOp,
           p.c.row_major ? "row-major" : "column-major",
           p.d.row_major ? "row-major" : "column-major");
    }
    if (config.beta == 0.0f) p.c.data = nullptr;
  }
  if (has_bias && !p.d.row_major) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: a bias needs a row-major d (cuBLASLt adds it along d's columns); d is column-major",
         kOp);
  }
  p.bias = has_bias ? bias.tensor->data : nullptr;
  p.alpha = config.alpha;
  p.beta = config.beta;
  p.activation = static_cast<llmk_activation>(config.activation);
  p.allow_tf32 = config.allow_tf32 != 0;

  check_not_self_overlapping(kOp, d);
  check_no_overlap(kOp, d, a, false);
  check_no_overlap(kOp, d, b, false);
  if (has_c) check_no_overlap(kOp, d, c, /*allow_identical=*/true);
  if (has_bias) check_no_overlap(kOp, d, bias, false);

  if (is_cuda(ctx)) {
    for (const Arg& t : {a, b, c, bias, d}) {
      if (t.tensor != nullptr) check_memory(ctx, kOp, t);
    }
    check_stream(ctx, kOp, stream);
  }
  *path = static_cast<llmk_matmul_path>(config.path);
  return p.d.row_major ? p : transposed(p);
}

bool is_empty(const MatmulParams& p) { return p.batch == 0 || p.m == 0 || p.n == 0; }

}  // namespace

void check_path(const char* op, const char* name, int32_t path) {
  if (path < LLMK_MATMUL_PATH_AUTO || path > LLMK_MATMUL_PATH_GEMV) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: %s is %d, which is not an llmk_matmul_path", op, name,
         path);
  }
}

bool gemv_can_run(const MatmulParams& p) {
  const int64_t element = dtype_bits(p.dtype) / 8;
  const auto aligned = [](const void* data) { return reinterpret_cast<uintptr_t>(data) % 16 == 0; };
  // One row of A has no leading dimension to align.
  return p.batch == 1 && p.m <= kGemvMaxRows && p.a.row_major && !p.b.row_major &&
         (p.c.data == nullptr || p.c.row_major) && aligned(p.a.data) && aligned(p.b.data) &&
         (p.m == 1 || (p.a.ld * element) % 16 == 0) && (p.b.ld * element) % 16 == 0;
}

llmk_matmul_path choose_matmul_path(const char* op, const MatmulParams& p, llmk_matmul_path asked,
                                    bool gated) {
  switch (asked) {
    case LLMK_MATMUL_PATH_CUBLASLT: return LLMK_MATMUL_PATH_CUBLASLT;
    case LLMK_MATMUL_PATH_GEMV:
      if (!gemv_can_run(p)) {
        fail(LLMK_ERROR_UNSUPPORTED,
             "%s: the GEMV engine cannot take this call: it needs batch 1, M <= %lld, a and d "
             "row-major, b column-major, and 16-byte aligned data and leading dimensions for a "
             "and b",
             op, static_cast<long long>(kGemvMaxRows));
      }
      return LLMK_MATMUL_PATH_GEMV;
    default:
      return gemv_can_run(p) && p.dtype != LLMK_DTYPE_F32 && auto_takes_gemv(p.m, p.n, p.k, gated)
                 ? LLMK_MATMUL_PATH_GEMV
                 : LLMK_MATMUL_PATH_CUBLASLT;
  }
}

void run_matmul(const char* op, const llmk_context& ctx, const MatmulParams& p,
                llmk_matmul_path asked, void* stream, MatmulTuning* tuning) {
  if (is_empty(p)) return;
  if (!is_cuda(ctx)) return matmul_cpu(p);
  if (choose_matmul_path(op, p, asked) == LLMK_MATMUL_PATH_GEMV) return matmul_gemv(p, ctx, stream);

  const bool epilogue_has_activation = p.activation == LLMK_ACTIVATION_IDENTITY ||
                                       p.activation == LLMK_ACTIVATION_RELU ||
                                       p.activation == LLMK_ACTIVATION_GELU_TANH;
  if (epilogue_has_activation) {
    return ctx.cublaslt->matmul(op, p, static_cast<cudaStream_t>(stream), tuning);
  }
  // cuBLASLt has no exact GELU or SiLU epilogue: the GEMM with its bias, then the activation in
  // place over D, one pass.
  MatmulParams gemm = p;
  gemm.activation = LLMK_ACTIVATION_IDENTITY;
  ctx.cublaslt->matmul(op, gemm, static_cast<cudaStream_t>(stream), tuning);
  ActivationParams act{};
  act.form = ActivationForm::plain;
  act.activation = p.activation;
  act.dtype = p.dtype;
  act.n = p.n;
  act.rows = {p.batch * p.m, 2, {p.batch, p.m, 0}};
  act.x = p.d.data;
  act.x_strides = {{p.d.batch_stride, p.d.ld, 0}};
  act.y = const_cast<void*>(p.d.data);
  act.y_strides = act.x_strides;
  activation_cuda(act, stream);
}

}  // namespace llmk

using namespace llmk;

extern "C" {

LLMK_API void llmk_matmul_config_init(llmk_matmul_config* config) {
  if (config == nullptr) return;
  *config = llmk_matmul_config{};
  config->struct_size = sizeof(llmk_matmul_config);
  config->alpha = 1.0f;
  config->beta = 0.0f;
  config->activation = LLMK_ACTIVATION_IDENTITY;
  config->allow_tf32 = 0;
  config->path = LLMK_MATMUL_PATH_AUTO;
}

LLMK_API llmk_status llmk_matmul(llmk_context* ctx_handle, const llmk_matmul_config* config,
                                 const llmk_tensor* a, const llmk_tensor* b, const llmk_tensor* c,
                                 const llmk_tensor* bias, const llmk_tensor* d, void* stream) {
  return api_call([&] {
    const llmk_context& ctx = require_context(kOp, ctx_handle);
    std::optional<DeviceGuard> device;
    if (is_cuda(ctx)) device.emplace(ctx.device);
    llmk_matmul_path path;
    const MatmulParams p = check_matmul(ctx, config, {"a", a}, {"b", b}, {"c", c}, {"bias", bias},
                                        {"d", d}, stream, &path);
    run_matmul(kOp, ctx, p, path, stream);
  });
}

LLMK_API llmk_status llmk_matmul_tune(llmk_context* ctx_handle, const llmk_matmul_config* config,
                                      const llmk_tensor* a, const llmk_tensor* b,
                                      const llmk_tensor* c, const llmk_tensor* bias,
                                      const llmk_tensor* d, void* stream,
                                      llmk_matmul_tuning* tuning) {
  return api_call([&] {
    constexpr const char* op = "matmul_tune";
    const llmk_context& ctx = require_context(op, ctx_handle);
    // The smallest struct_size any header had: up to candidates.
    constexpr size_t kFirstSize = offsetof(llmk_matmul_tuning, candidates) + sizeof(int32_t);
    if (tuning != nullptr && tuning->struct_size < kFirstSize) {
      fail(LLMK_ERROR_INVALID_VALUE,
           "%s: tuning->struct_size is %zu; set it to sizeof(llmk_matmul_tuning)", op,
           tuning->struct_size);
    }
    std::optional<DeviceGuard> device;
    if (is_cuda(ctx)) device.emplace(ctx.device);
    llmk_matmul_path path;
    const MatmulParams p = check_matmul(ctx, config, {"a", a}, {"b", b}, {"c", c}, {"bias", bias},
                                        {"d", d}, stream, &path);
    MatmulTuning measured;
    run_matmul(op, ctx, p, path, stream, &measured);
    if (tuning == nullptr) return;
    llmk_matmul_tuning full{};
    full.struct_size = tuning->struct_size;
    full.candidates = measured.candidates;
    full.chosen = measured.chosen;
    full.first_us = measured.first_us;
    full.chosen_us = measured.chosen_us;
    std::memcpy(tuning, &full, std::min(tuning->struct_size, sizeof full));
  });
}

LLMK_API llmk_status llmk_matmul_path_for(llmk_context* ctx_handle,
                                          const llmk_matmul_config* config, const llmk_tensor* a,
                                          const llmk_tensor* b, const llmk_tensor* c,
                                          const llmk_tensor* bias, const llmk_tensor* d,
                                          int32_t* path) {
  return api_call([&] {
    const llmk_context& ctx = require_context("matmul_path_for", ctx_handle);
    if (path == nullptr) fail(LLMK_ERROR_NULL_POINTER, "matmul_path_for: path is NULL");
    std::optional<DeviceGuard> device;
    if (is_cuda(ctx)) device.emplace(ctx.device);
    llmk_matmul_path asked;
    const MatmulParams p = check_matmul(ctx, config, {"a", a}, {"b", b}, {"c", c}, {"bias", bias},
                                        {"d", d}, nullptr, &asked);
    *path = choose_matmul_path(kOp, p, asked);
  });
}

LLMK_API llmk_status llmk_matmul_cache_stats(const llmk_context* ctx_handle, int64_t* plans,
                                             int64_t* heuristic_queries, int64_t* workspaces) {
  return api_call([&] {
    const llmk_context& ctx = require_context("matmul_cache_stats", ctx_handle);
    Cublaslt::Stats stats{0, 0, 0};
    if (ctx.cublaslt) stats = ctx.cublaslt->stats();
    if (plans != nullptr) *plans = stats.plans;
    if (heuristic_queries != nullptr) *heuristic_queries = stats.heuristic_queries;
    if (workspaces != nullptr) *workspaces = stats.workspaces;
  });
}

}  // extern "C"
