// Reference RoPE on the CPU: the plain formulas in float64, each output rounded once. It is the
// oracle the GPU tests compare against, so it favours being obviously right over speed.
//
// Per token t, pair i has the angle a = positions[t] * inv_freq[i] (or the cache's cos and sin of
// row positions[t]); in every head of q and k the pair (x, y) becomes
//   (x cos a - y sin a, y cos a + x sin a),
// pair i being elements (i, i + rotary_dim/2) in NeoX style and (2i, 2i + 1) in GPT-J style.
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/numeric.hpp"
#include "rope.hpp"

namespace llmk {
namespace {

double load(llmk_dtype dtype, const void* base, int64_t index) {
  switch (dtype) {
    case LLMK_DTYPE_F32: return static_cast<const float*>(base)[index];
    case LLMK_DTYPE_F16: return f16_to_double(static_cast<const uint16_t*>(base)[index]);
    case LLMK_DTYPE_BF16: return bf16_to_double(static_cast<const uint16_t*>(base)[index]);
    default: fail(LLMK_ERROR_INTERNAL, "rope_cpu: dtype %d reached the backend", dtype);
  }
}

void store(llmk_dtype dtype, void* base, int64_t index, double value) {
  switch (dtype) {
    case LLMK_DTYPE_F32: static_cast<float*>(base)[index] = static_cast<float>(value); return;
    case LLMK_DTYPE_F16: static_cast<uint16_t*>(base)[index] = f16_from_double(value); return;
    case LLMK_DTYPE_BF16: static_cast<uint16_t*>(base)[index] = bf16_from_double(value); return;
    default: fail(LLMK_ERROR_INTERNAL, "rope_cpu: dtype %d reached the backend", dtype);
  }
}

int64_t position_of(const RopeParams& p, int64_t token) {
  const int64_t index = token * p.positions_stride;
  return p.positions_dtype == LLMK_DTYPE_I64 ? static_cast<const int64_t*>(p.positions)[index]
                                             : static_cast<const int32_t*>(p.positions)[index];
}

void rotate_heads(const RopeParams& p, const RopeHeads& heads, int64_t token,
                  const std::vector<double>& cos, const std::vector<double>& sin) {
  const bool neox = p.style == LLMK_ROPE_NEOX;
  for (int64_t h = 0; h < heads.heads; ++h) {
    const int64_t start = token * heads.token_stride + h * heads.head_stride;
    for (int i = 0; i < p.pairs; ++i) {
      const int64_t first = start + (neox ? i : 2 * i);
      const int64_t second = neox ? first + p.pairs : first + 1;
      const double x = load(p.dtype, heads.data, first), y = load(p.dtype, heads.data, second);
      store(p.dtype, heads.data, first, x * cos[i] - y * sin[i]);
      store(p.dtype, heads.data, second, y * cos[i] + x * sin[i]);
    }
  }
}

}  // namespace

void rope_cpu(const RopeParams& p) {
  if (p.cache != nullptr) {
    for (int64_t t = 0; t < p.tokens; ++t) {
      const int64_t position = position_of(p, t);
      if (position < 0 || position >= p.cache_rows) {
        fail(LLMK_ERROR_INVALID_VALUE,
             "rope: positions[%lld] is %lld, outside the %lld rows of cos_sin_cache",
             static_cast<long long>(t), static_cast<long long>(position),
             static_cast<long long>(p.cache_rows));
      }
    }
  }
  std::vector<double> cos(p.pairs), sin(p.pairs);
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t position = position_of(p, t);
    for (int i = 0; i < p.pairs; ++i) {
      if (p.cache != nullptr) {
        const int64_t row = position * p.cache_stride;
        cos[i] = load(p.cache_dtype, p.cache, row + i);
        sin[i] = load(p.cache_dtype, p.cache, row + p.pairs + i);
      } else {
        const double angle = static_cast<double>(position) * p.inv_freq[i];
        cos[i] = std::cos(angle);
        sin[i] = std::sin(angle);
      }
    }
    rotate_heads(p, p.q, t, cos, sin);
    rotate_heads(p, p.k, t, cos, sin);
  }
}

}  // namespace llmk
