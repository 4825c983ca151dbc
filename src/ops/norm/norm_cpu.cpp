// Reference normalization on the CPU: the plain formulas in float64, each output rounded once.
// It is the oracle the GPU tests compare against, so it favours being obviously right over speed.
//
//   rms_norm:      y = x / sqrt(mean(x^2) + eps) * w
//   add_rms_norm:  r = round(x + r);  y = rms_norm(r)
//   layer_norm:    y = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * w + b
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/numeric.hpp"
#include "norm.hpp"

namespace llmk {
namespace {

template <llmk_dtype D>
void norm_rows(const NormParams& p) {
  using E = Element<D>;
  using T = typename E::Storage;
  const int64_t n = p.hidden;
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  std::vector<double> row(n);

  for (int64_t r = 0; r < p.rows.count; ++r) {
    const T* x = static_cast<const T*>(p.x) + row_offset(p.rows, p.x_strides, r);
    T* y = static_cast<T*>(p.y) + row_offset(p.rows, p.y_strides, r);
    for (int64_t i = 0; i < n; ++i) row[i] = E::load(x[i]);

    if (p.kind == NormKind::add_rms) {
      T* residual = static_cast<T*>(p.residual) + row_offset(p.rows, p.residual_strides, r);
      for (int64_t i = 0; i < n; ++i) {
        residual[i] = E::store(row[i] + E::load(residual[i]));
        row[i] = E::load(residual[i]);
      }
    }

    double shift = 0.0;  // the mean that layer_norm subtracts
    if (p.kind == NormKind::layer) {
      for (int64_t i = 0; i < n; ++i) shift += row[i];
      shift /= static_cast<double>(n);
    }
    double sum_squares = 0.0;
    for (int64_t i = 0; i < n; ++i) sum_squares += (row[i] - shift) * (row[i] - shift);
    const double scale = 1.0 / std::sqrt(sum_squares / static_cast<double>(n) + p.eps);

    for (int64_t i = 0; i < n; ++i) {
      double v = (row[i] - shift) * scale * E::load(weight[i]);
      if (bias != nullptr) v += E::load(bias[i]);
      y[i] = E::store(v);
    }
  }
}

}  // namespace

void norm_cpu(const NormParams& p) {
  switch (p.dtype) {
    case LLMK_DTYPE_F32: return norm_rows<LLMK_DTYPE_F32>(p);
    case LLMK_DTYPE_F16: return norm_rows<LLMK_DTYPE_F16>(p);
    case LLMK_DTYPE_BF16: return norm_rows<LLMK_DTYPE_BF16>(p);
    default: fail(LLMK_ERROR_INTERNAL, "norm_cpu: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
