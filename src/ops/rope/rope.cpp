// The C entry of llmk_rope: every argument check, the frequencies (f64, on the host), then the
// backend.
#include <cmath>
#include <optional>

#include "core/config.hpp"
#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
#include "core/tensor.hpp"
#include "rope.hpp"

namespace llmk {
namespace {

constexpr const char* kOp = "rope";

// Pair i turns by theta^(-2i / rotary_dim) per position; Llama 3.1 then lowers the frequencies
// whose wavelength exceeds the original context, as llmk.h describes.
void fill_inv_freq(const llmk_rope_config& c, int rotary_dim, double* inv_freq) {
  const bool llama3 = c.llama3_factor > 0.0;
  const double context = c.llama3_original_max_position, lo = c.llama3_low_freq_factor,
               hi = c.llama3_high_freq_factor;
  for (int i = 0; i < rotary_dim / 2; ++i) {
    double f = std::pow(c.theta, -2.0 * i / rotary_dim);
    if (llama3) {
      const double wavelength = 2.0 * M_PI / f;
      if (wavelength > context / lo) {
        f /= c.llama3_factor;
      } else if (wavelength >= context / hi) {
        const double s = (context / wavelength - lo) / (hi - lo);
        f = (1.0 - s) * f / c.llama3_factor + s * f;
      }
    }
    inv_freq[i] = f;
  }
}

// The values of theta and the Llama 3 fields that define frequencies.
void check_frequency_fields(const llmk_rope_config& c) {
  if (!(std::isfinite(c.theta) && c.theta > 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->theta is %g; it must be finite and > 0", kOp,
         c.theta);
  }
  if (!(std::isfinite(c.llama3_factor) && c.llama3_factor >= 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->llama3_factor is %g; it must be 0 (no scaling) or finite and > 0", kOp,
         c.llama3_factor);
  }
  if (c.llama3_factor == 0.0) return;
  const double lo = c.llama3_low_freq_factor, hi = c.llama3_high_freq_factor;
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo >= 0.0 && lo < hi)) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->llama3_low_freq_factor is %g and llama3_high_freq_factor %g; with "
         "llama3_factor > 0 they must be finite with 0 <= low < high",
         kOp, lo, hi);
  }
  const double context = c.llama3_original_max_position;
  if (!(std::isfinite(context) && context > 0.0)) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->llama3_original_max_position is %g; with llama3_factor > 0 it must be "
         "finite and > 0",
         kOp, context);
  }
}

void run_rope(llmk_context* ctx_handle, const llmk_rope_config* config_given,
              const llmk_tensor* positions_view, const llmk_tensor* q_view,
              const llmk_tensor* k_view, const llmk_tensor* cache_view, void* stream) {
  const llmk_context& ctx = require_context(kOp, ctx_handle);
  const Arg positions{"positions", positions_view}, q{"q", q_view}, k{"k", k_view},
      cache{"cos_sin_cache", cache_view};
  const bool has_k = k_view != nullptr, has_cache = cache_view != nullptr;

  check_view(kOp, positions);
  check_view(kOp, q);
  if (has_k) check_view(kOp, k);
  if (has_cache) check_view(kOp, cache);

  check_dtype(kOp, q, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  if (has_k) check_same_dtype(kOp, q, k);
  check_dtype(kOp, positions, {LLMK_DTYPE_I32, LLMK_DTYPE_I64});
  if (has_cache) {
    check_dtype(kOp, cache, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
    if (cache_view->dtype != LLMK_DTYPE_F32 && cache_view->dtype != q_view->dtype) {
      fail(LLMK_ERROR_DTYPE_MISMATCH, "%s: cos_sin_cache is %s; it must be f32 or q's dtype, %s",
           kOp, dtype_name(cache_view->dtype), dtype_name(q_view->dtype));
    }
  }

  check_ndim(kOp, q, 3, 3);
  if (has_k) check_ndim(kOp, k, 3, 3);
  check_ndim(kOp, positions, 1, 1);
  if (has_cache) check_ndim(kOp, cache, 2, 2);
  const int64_t tokens = q_view->shape[0], head_dim = q_view->shape[2];
  if (positions_view->shape[0] != tokens) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: positions has %lld elements, q has %lld tokens", kOp,
         static_cast<long long>(positions_view->shape[0]), static_cast<long long>(tokens));
  }
  if (has_k && k_view->shape[0] != tokens) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: k has %lld tokens, q has %lld", kOp,
         static_cast<long long>(k_view->shape[0]), static_cast<long long>(tokens));
  }
  if (has_k && k_view->shape[2] != head_dim) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: k has head_dim %lld, q has %lld", kOp,
         static_cast<long long>(k_view->shape[2]), static_cast<long long>(head_dim));
  }
  check_unit_stride(kOp, q, 2);
  if (has_k) check_unit_stride(kOp, k, 2);
  if (has_cache) check_unit_stride(kOp, cache, 1);

  const llmk_rope_config config =
      read_config(kOp, "config", config_given, sizeof(llmk_rope_config), llmk_rope_config_init);
  if (config.style != LLMK_ROPE_NEOX && config.style != LLMK_ROPE_GPTJ) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->style is %d; it must be LLMK_ROPE_NEOX (0) or LLMK_ROPE_GPTJ (1)", kOp,
         config.style);
  }
  if (config.rotary_dim < 0 || config.rotary_dim > head_dim) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->rotary_dim is %d; it must be 0 (all of head_dim) to head_dim, %lld", kOp,
         config.rotary_dim, static_cast<long long>(head_dim));
  }
  const int64_t rotary_dim = config.rotary_dim != 0 ? config.rotary_dim : head_dim;
  if (rotary_dim % 2 != 0) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: rotary_dim is %lld%s; it must be even", kOp,
         static_cast<long long>(rotary_dim),
         config.rotary_dim == 0 ? " (config->rotary_dim 0: q's head_dim)" : "");
  }
  if (rotary_dim / 2 > kRopeMaxPairs) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: rotary_dim is %lld; llmk supports at most %d", kOp,
         static_cast<long long>(rotary_dim), 2 * kRopeMaxPairs);
  }
  if (has_cache && cache_view->shape[1] != rotary_dim) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: cos_sin_cache has rows of %lld, rotary_dim is %lld", kOp,
         static_cast<long long>(cache_view->shape[1]), static_cast<long long>(rotary_dim));
  }
  if (!has_cache) check_frequency_fields(config);

  check_not_self_overlapping(kOp, q);
  check_no_overlap(kOp, q, positions, false);
  if (has_cache) check_no_overlap(kOp, q, cache, false);
  if (has_k) {
    check_not_self_overlapping(kOp, k);
    check_no_overlap(kOp, k, q, false);
    check_no_overlap(kOp, k, positions, false);
    if (has_cache) check_no_overlap(kOp, k, cache, false);
  }

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {positions, q, k, cache}) {
      if (a.tensor != nullptr) check_memory(ctx, kOp, a);
    }
    check_stream(ctx, kOp, stream);
  }

  const int64_t kv_heads = has_k ? k_view->shape[1] : 0;
  if (tokens == 0 || rotary_dim == 0 || q_view->shape[1] + kv_heads == 0) return;

  RopeParams p{};
  p.dtype = static_cast<llmk_dtype>(q_view->dtype);
  p.style = static_cast<llmk_rope_style>(config.style);
  p.tokens = tokens;
  p.pairs = static_cast<int>(rotary_dim / 2);
  p.q = {q_view->data, q_view->shape[1], q_view->strides[0], q_view->strides[1]};
  if (has_k) p.k = {k_view->data, kv_heads, k_view->strides[0], k_view->strides[1]};
  p.positions = positions_view->data;
  p.positions_dtype = static_cast<llmk_dtype>(positions_view->dtype);
  p.positions_stride = positions_view->strides[0];
  if (has_cache) {
    p.cache = cache_view->data;
    p.cache_dtype = static_cast<llmk_dtype>(cache_view->dtype);
    p.cache_rows = cache_view->shape[0];
    p.cache_stride = cache_view->strides[0];
  } else {
    fill_inv_freq(config, static_cast<int>(rotary_dim), p.inv_freq);
  }

  if (is_cuda(ctx)) {
    rope_cuda(p, ctx, stream);
  } else {
    rope_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

extern "C" {

LLMK_API void llmk_rope_config_init(llmk_rope_config* config) {
  if (config == nullptr) return;
  *config = llmk_rope_config{};
  config->struct_size = sizeof(llmk_rope_config);
  config->style = LLMK_ROPE_NEOX;
  config->theta = 10000.0;
}

LLMK_API llmk_status llmk_rope(llmk_context* ctx, const llmk_rope_config* config,
                               const llmk_tensor* positions, const llmk_tensor* q,
                               const llmk_tensor* k, const llmk_tensor* cos_sin_cache,
                               void* stream) {
  return llmk::api_call(
      [&] { llmk::run_rope(ctx, config, positions, q, k, cos_sin_cache, stream); });
}

}  // extern "C"
