// ffn and gated_mlp: whole MLP blocks as a few engine calls over a caller-provided workspace, one
// composition for both backends (the CPU context runs the reference of each step).
//
//   ffn:        h = a(x W1^T + b1)                      one GEMM, bias and activation fused
//               y = h W2^T + b2                         one GEMM
//   gated_mlp:  GEMV engine (few tokens): h = a(x Wg^T) * (x Wu^T) in one kernel that reads
//               both weights once; otherwise [g | u] = x [Wg; Wu]^T in one GEMM (two when Wg and
//               Wu are not one buffer), then h = a(g) * u in place over g
//               y = h Wd^T                              one GEMM
//
// With config->tune, each cuBLASLt GEMM runs as llmk_matmul_tune runs it. What each tuning
// measured is dropped: what such a call leaves behind is the plans it pins.
#include <cstddef>
#include <optional>
#include <tuple>

#include "core/config.hpp"
#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
#include "core/tensor.hpp"
#include "ops/activation/activation.hpp"
#include "ops/matmul/matmul.hpp"

namespace llmk {
namespace {

constexpr size_t kWorkspaceAlignment = 16;

size_t round_up(size_t bytes) {
  return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

// The intermediate's elements per token: d_ff for ffn, 2 d_ff ([gate | up]) for gated_mlp.
size_t workspace_bytes(const llmk_tensor& x, int64_t d_ff, bool gated) {
  const size_t element = dtype_bits(x.dtype) / 8;
  return round_up(static_cast<size_t>(x.shape[0]) * static_cast<size_t>(d_ff) * (gated ? 2 : 1) *
                  element);
}

// x [tokens, d_model] with a contiguous last dimension, and a weight [rows, d_model] likewise.
void check_input_and_weight(const char* op, Arg x, Arg w) {
  check_view(op, x);
  check_view(op, w);
  check_dtype(op, x, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  check_same_dtype(op, x, w);
  check_ndim(op, x, 2, 2);
  check_ndim(op, w, 2, 2);
  if (w.tensor->shape[1] != x.tensor->shape[1]) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %lld columns (in_features), x has %lld (d_model)",
         op, w.name, static_cast<long long>(w.tensor->shape[1]),
         static_cast<long long>(x.tensor->shape[1]));
  }
}

void workspace_size(const char* op, llmk_context* ctx_handle, Arg x, Arg w, bool gated,
                    size_t* bytes) {
  require_context(op, ctx_handle);
  if (bytes == nullptr) fail(LLMK_ERROR_NULL_POINTER, "%s: bytes is NULL", op);
  check_input_and_weight(op, x, w);
  *bytes = workspace_bytes(*x.tensor, w.tensor->shape[0], gated);
}

// The matmul an nn.Linear layer computes: out = in W^T (+ bias), `in` [m, k] and `out` [m, n]
// row-major with their row strides, W [n, k] row-major, so B = W^T is column-major.
MatmulParams linear(llmk_dtype dtype, const void* in, int64_t in_ld, const llmk_tensor& w,
                    const void* bias, llmk_activation activation, const void* out, int64_t out_ld,
                    int64_t m, bool allow_tf32) {
  MatmulParams p{};
  p.dtype = dtype;
  p.batch = 1;
  p.m = m;
  p.n = w.shape[0];
  p.k = w.shape[1];
  p.a = {in, true, std::max<int64_t>(in_ld, p.k), 0};
  p.b = {w.data, false, w.shape[0] > 1 ? w.strides[0] : p.k, 0};
  p.c = {nullptr, true, 1, 0};
  p.d = {out, true, std::max<int64_t>(out_ld, p.n), 0};
  p.bias = bias;
  p.alpha = 1.0f;
  p.beta = 0.0f;
  p.activation = activation;
  p.allow_tf32 = allow_tf32;
  return p;
}

struct Block {
  llmk_mlp_config config;
  llmk_dtype dtype;
  int64_t tokens, d_model, d_ff;
};

// A matrix of rows, as every tensor of these blocks is: two dimensions, the last contiguous, and
// rows that do not overlap (which cuBLASLt could not take).
void check_rows(const char* op, Arg a) {
  check_unit_stride(op, a, 1);
  const llmk_tensor& t = *a.tensor;
  if (t.shape[0] > 1 && t.strides[0] < t.shape[1]) {
    fail(LLMK_ERROR_INVALID_STRIDE, "%s: %s has a row stride of %lld, less than its %lld columns",
         op, a.name, static_cast<long long>(t.strides[0]), static_cast<long long>(t.shape[1]));
  }
}

// The checks ffn and gated_mlp share, on a context whose device the caller made current: config,
// x and y, the weights' shapes (`first`
// [d_ff, d_model] and the rest as listed), optional biases, the activation, the workspace, and
// that y and the workspace overlap nothing they must not.
Block check_block(const char* op, const llmk_context& ctx, const llmk_mlp_config* config_given,
                  Arg x, std::initializer_list<Arg> in_weights, Arg w_out,
                  std::initializer_list<Arg> biases, llmk_activation activation, void* workspace,
                  size_t workspace_given, Arg y, void* stream) {
  Block block{};
  // The first llmk_mlp_config ended at path.
  block.config = read_config(op, "config", config_given, offsetof(llmk_mlp_config, tune),
                             llmk_mlp_config_init);
  check_path(op, "config->path", block.config.path);
  check_activation(op, "activation", activation);

  const Arg first = *in_weights.begin();
  check_input_and_weight(op, x, first);
  const int64_t d_ff = first.tensor->shape[0], d_model = x.tensor->shape[1];
  for (const Arg& w : in_weights) {
    check_input_and_weight(op, x, w);
    check_same_shape(op, first, w);
    check_rows(op, w);
  }
  check_view(op, w_out);
  check_same_dtype(op, x, w_out);
  check_ndim(op, w_out, 2, 2);
  if (w_out.tensor->shape[0] != d_model || w_out.tensor->shape[1] != d_ff) {
    fail(LLMK_ERROR_SHAPE_MISMATCH,
         "%s: %s is [%lld, %lld]; it must be [d_model, d_ff] = [%lld, %lld]", op, w_out.name,
         static_cast<long long>(w_out.tensor->shape[0]),
         static_cast<long long>(w_out.tensor->shape[1]), static_cast<long long>(d_model),
         static_cast<long long>(d_ff));
  }
  check_rows(op, w_out);
  check_rows(op, x);
  for (const Arg& bias : biases) {
    if (bias.tensor == nullptr) continue;
    check_view(op, bias);
    check_same_dtype(op, x, bias);
    check_ndim(op, bias, 1, 1);
    check_unit_stride(op, bias, 0);
  }
  check_view(op, y);
  check_same_dtype(op, x, y);
  check_same_shape(op, x, y);
  check_rows(op, y);
  if (d_model == 0 || d_ff == 0) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: %s is [%lld, %lld]; d_model and d_ff must be > 0", op,
         first.name, static_cast<long long>(d_ff), static_cast<long long>(d_model));
  }

  const bool gated = in_weights.size() == 2;
  const size_t needed = workspace_bytes(*x.tensor, d_ff, gated);
  if (needed > 0 && workspace == nullptr)
    fail(LLMK_ERROR_NULL_POINTER, "%s: workspace is NULL", op);
  if (workspace_given < needed) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: workspace_bytes is %zu; these shapes need %zu (see %s_workspace_size)", op,
         workspace_given, needed, op);
  }
  if (reinterpret_cast<uintptr_t>(workspace) % kWorkspaceAlignment != 0) {
    fail(LLMK_ERROR_MISALIGNED, "%s: workspace (%p) is not aligned to %zu bytes", op, workspace,
         kWorkspaceAlignment);
  }
  llmk_tensor workspace_view{};
  workspace_view.data = workspace;
  workspace_view.dtype = LLMK_DTYPE_U8;
  workspace_view.ndim = 1;
  workspace_view.shape[0] = static_cast<int64_t>(needed);
  workspace_view.strides[0] = 1;
  const Arg work{"workspace", &workspace_view};

  check_not_self_overlapping(op, y);
  for (const Arg& in : {x, w_out}) {
    check_no_overlap(op, y, in, false);
    check_no_overlap(op, work, in, false);
  }
  for (const Arg& in : in_weights) {
    check_no_overlap(op, y, in, false);
    check_no_overlap(op, work, in, false);
  }
  for (const Arg& in : biases) {
    if (in.tensor == nullptr) continue;
    check_no_overlap(op, y, in, false);
    check_no_overlap(op, work, in, false);
  }
  check_no_overlap(op, y, work, false);

  if (is_cuda(ctx)) {
    for (const Arg& t : {x, w_out, y}) check_memory(ctx, op, t);
    for (const Arg& t : in_weights) check_memory(ctx, op, t);
    for (const Arg& t : biases) {
      if (t.tensor != nullptr) check_memory(ctx, op, t);
    }
    if (needed > 0) check_memory(ctx, op, work);
    check_stream(ctx, op, stream);
    if (block.config.tune != 0) refuse_tuning_while_capturing(op, stream);
  }
  block.dtype = static_cast<llmk_dtype>(x.tensor->dtype);
  block.tokens = x.tensor->shape[0];
  block.d_model = d_model;
  block.d_ff = d_ff;
  return block;
}

int64_t row_stride(const llmk_tensor& t) { return t.shape[0] > 1 ? t.strides[0] : t.shape[1]; }

void run_ffn(llmk_context* ctx_handle, const llmk_mlp_config* config, Arg x, Arg w1, Arg b1, Arg w2,
             Arg b2, llmk_activation activation, void* workspace, size_t workspace_given, Arg y,
             void* stream) {
  const char* op = "ffn";
  const llmk_context& ctx = require_context(op, ctx_handle);
  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) device.emplace(ctx.device);
  const Block block = check_block(op, ctx, config, x, {w1}, w2, {b1, b2}, activation, workspace,
                                  workspace_given, y, stream);
  for (const auto& [bias, length, what] :
       {std::tuple{b1, block.d_ff, "d_ff"}, std::tuple{b2, block.d_model, "d_model"}}) {
    if (bias.tensor != nullptr && bias.tensor->shape[0] != length) {
      fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %lld elements; it must have %s = %lld", op,
           bias.name, static_cast<long long>(bias.tensor->shape[0]), what,
           static_cast<long long>(length));
    }
  }
  if (block.tokens == 0) return;
  const bool tf32 = block.config.allow_tf32 != 0;
  const auto path = static_cast<llmk_matmul_path>(block.config.path);
  MatmulTuning tuning;
  MatmulTuning* const tune = block.config.tune != 0 ? &tuning : nullptr;
  const MatmulParams up = linear(block.dtype, x.tensor->data, row_stride(*x.tensor), *w1.tensor,
                                 b1.tensor ? b1.tensor->data : nullptr, activation, workspace,
                                 block.d_ff, block.tokens, tf32);
  const MatmulParams down =
      linear(block.dtype, workspace, block.d_ff, *w2.tensor, b2.tensor ? b2.tensor->data : nullptr,
             LLMK_ACTIVATION_IDENTITY, y.tensor->data, row_stride(*y.tensor), block.tokens, tf32);
  if (is_cuda(ctx)) {  // a GEMV that cannot run fails here, before anything is launched
    choose_matmul_path(op, up, path);
    choose_matmul_path(op, down, path);
  }
  run_matmul(op, ctx, up, path, stream, tune);
  run_matmul(op, ctx, down, path, stream, tune);
}

void run_gated_mlp(llmk_context* ctx_handle, const llmk_mlp_config* config, Arg x, Arg w_gate,
                   Arg w_up, Arg w_down, llmk_activation activation, void* workspace,
                   size_t workspace_given, Arg y, void* stream) {
  const char* op = "gated_mlp";
  const llmk_context& ctx = require_context(op, ctx_handle);
  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) device.emplace(ctx.device);
  const Block block = check_block(op, ctx, config, x, {w_gate, w_up}, w_down, {}, activation,
                                  workspace, workspace_given, y, stream);
  if (block.tokens == 0) return;
  const bool tf32 = block.config.allow_tf32 != 0;
  const auto path = static_cast<llmk_matmul_path>(block.config.path);
  MatmulTuning tuning;
  MatmulTuning* const tune = block.config.tune != 0 ? &tuning : nullptr;
  const int64_t ff = block.d_ff;
  const size_t element = dtype_bits(block.dtype) / 8;
  const void* x_data = x.tensor->data;
  const int64_t x_ld = row_stride(*x.tensor);

  const MatmulParams gate = linear(block.dtype, x_data, x_ld, *w_gate.tensor, nullptr, activation,
                                   workspace, ff, block.tokens, tf32);
  const MatmulParams up = linear(block.dtype, x_data, x_ld, *w_up.tensor, nullptr,
                                 LLMK_ACTIVATION_IDENTITY, workspace, ff, block.tokens, tf32);
  const bool fused_gemv =
      is_cuda(ctx) && choose_matmul_path(op, gate, path, /*gated=*/true) == LLMK_MATMUL_PATH_GEMV &&
      gemv_can_run(up);
  // h: [tokens, d_ff] at the start of the workspace, with row stride d_ff after the fused GEMV,
  // 2 d_ff when it is the gate half of [g | u].
  const int64_t h_ld = fused_gemv ? ff : 2 * ff;
  const MatmulParams down =
      linear(block.dtype, workspace, h_ld, *w_down.tensor, nullptr, LLMK_ACTIVATION_IDENTITY,
             y.tensor->data, row_stride(*y.tensor), block.tokens, tf32);
  if (is_cuda(ctx)) choose_matmul_path(op, down, path);

  if (fused_gemv) {
    gated_gemv(gate, up.b, ctx, stream);
    return run_matmul(op, ctx, down, path, stream, tune);
  }

  // [g | u]: one GEMM over the fused weight when w_up continues w_gate's buffer with its row
  // stride, two GEMMs into the halves otherwise. Each engine is chosen (and a forced GEMV that
  // cannot run refused) before the first launch.
  const llmk_tensor &wg = *w_gate.tensor, &wu = *w_up.tensor;
  const int64_t w_ld = row_stride(wg);
  const bool fused_weight =
      row_stride(wu) == w_ld &&
      static_cast<const char*>(wu.data) ==
          static_cast<const char*>(wg.data) + static_cast<size_t>(ff * w_ld) * element;
  char* up_half = static_cast<char*>(workspace) + static_cast<size_t>(ff) * element;
  MatmulParams first_half = gate, second_half = up;
  if (fused_weight) {
    llmk_tensor gate_up = wg;
    gate_up.shape[0] = 2 * ff;
    gate_up.strides[0] = w_ld;
    first_half = linear(block.dtype, x_data, x_ld, gate_up, nullptr, LLMK_ACTIVATION_IDENTITY,
                        workspace, 2 * ff, block.tokens, tf32);
  } else {
    first_half.activation = LLMK_ACTIVATION_IDENTITY;
    first_half.d.ld = 2 * ff;
    second_half.d = {up_half, true, 2 * ff, 0};
    if (is_cuda(ctx)) choose_matmul_path(op, second_half, path);
  }
  if (is_cuda(ctx)) choose_matmul_path(op, first_half, path);
  run_matmul(op, ctx, first_half, path, stream, tune);
  if (!fused_weight) run_matmul(op, ctx, second_half, path, stream, tune);

  ActivationParams combine{};
  combine.form = ActivationForm::gated;
  combine.activation = activation;
  combine.dtype = block.dtype;
  combine.n = ff;
  combine.rows = {block.tokens, 1, {block.tokens, 0, 0}};
  combine.x = workspace;
  combine.x_strides = {{2 * ff, 0, 0}};
  combine.up = up_half;
  combine.up_strides = combine.x_strides;
  combine.y = workspace;
  combine.y_strides = combine.x_strides;
  if (is_cuda(ctx)) {
    activation_cuda(combine, stream);
  } else {
    activation_cpu(combine);
  }
  run_matmul(op, ctx, down, path, stream, tune);
}

}  // namespace
}  // namespace llmk

using namespace llmk;

extern "C" {

LLMK_API void llmk_mlp_config_init(llmk_mlp_config* config) {
  if (config == nullptr) return;
  *config = llmk_mlp_config{};
  config->struct_size = sizeof(llmk_mlp_config);
  config->allow_tf32 = 0;
  config->path = LLMK_MATMUL_PATH_AUTO;
  config->tune = 0;
}

LLMK_API llmk_status llmk_ffn_workspace_size(llmk_context* ctx, const llmk_tensor* x,
                                             const llmk_tensor* w1, size_t* bytes) {
  return api_call([&] {
    workspace_size("ffn_workspace_size", ctx, {"x", x}, {"w1", w1}, false, bytes);
  });
}

LLMK_API llmk_status llmk_gated_mlp_workspace_size(llmk_context* ctx, const llmk_tensor* x,
                                                   const llmk_tensor* w_gate, size_t* bytes) {
  return api_call([&] {
    workspace_size("gated_mlp_workspace_size", ctx, {"x", x}, {"w_gate", w_gate}, true, bytes);
  });
}

LLMK_API llmk_status llmk_ffn(llmk_context* ctx, const llmk_mlp_config* config,
                              const llmk_tensor* x, const llmk_tensor* w1, const llmk_tensor* b1,
                              const llmk_tensor* w2, const llmk_tensor* b2,
                              llmk_activation activation, void* workspace, size_t workspace_bytes,
                              const llmk_tensor* y, void* stream) {
  return api_call([&] {
    run_ffn(ctx, config, {"x", x}, {"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}, activation,
            workspace, workspace_bytes, {"y", y}, stream);
  });
}

LLMK_API llmk_status llmk_gated_mlp(llmk_context* ctx, const llmk_mlp_config* config,
                                    const llmk_tensor* x, const llmk_tensor* w_gate,
                                    const llmk_tensor* w_up, const llmk_tensor* w_down,
                                    llmk_activation activation, void* workspace,
                                    size_t workspace_bytes, const llmk_tensor* y, void* stream) {
  return api_call([&] {
    run_gated_mlp(ctx, config, {"x", x}, {"w_gate", w_gate}, {"w_up", w_up}, {"w_down", w_down},
                  activation, workspace, workspace_bytes, {"y", y}, stream);
  });
}

}  // extern "C"
