// Reference matmul on the CPU: D = a(alpha A B + beta C + bias), every sum in f64, each element
// of D rounded once. It is the oracle of the GPU tests, so it favours being obviously right;
// widening A's rows and B's columns to contiguous f64 first only keeps it fast enough for that.
#include <vector>

#include "core/error.hpp"
#include "core/numeric.hpp"
#include "matmul.hpp"
#include "ops/activation/activation.hpp"

namespace llmk {
namespace {

template <class T>
const T* element(const MatrixView& m, int64_t batch, int64_t row, int64_t col) {
  const int64_t offset =
      batch * m.batch_stride + (m.row_major ? row * m.ld + col : row + col * m.ld);
  return static_cast<const T*>(m.data) + offset;
}

template <llmk_dtype D>
void matmul_reference(const MatmulParams& p) {
  using E = Element<D>;
  using T = typename E::Storage;
  std::vector<double> a_rows(p.m * p.k), b_cols(p.n * p.k);
  for (int64_t batch = 0; batch < p.batch; ++batch) {
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t kk = 0; kk < p.k; ++kk) {
        a_rows[i * p.k + kk] = E::load(*element<T>(p.a, batch, i, kk));
      }
    }
    for (int64_t j = 0; j < p.n; ++j) {
      for (int64_t kk = 0; kk < p.k; ++kk) {
        b_cols[j * p.k + kk] = E::load(*element<T>(p.b, batch, kk, j));
      }
    }
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0.0;
        for (int64_t kk = 0; kk < p.k; ++kk) sum += a_rows[i * p.k + kk] * b_cols[j * p.k + kk];
        double v = static_cast<double>(p.alpha) * sum;
        if (p.c.data != nullptr) v += p.beta * E::load(*element<T>(p.c, batch, i, j));
        if (p.bias != nullptr) v += E::load(static_cast<const T*>(p.bias)[j]);
        // D may be C: element (i, j) of C has been read above, and nothing reads it again.
        *const_cast<T*>(element<T>(p.d, batch, i, j)) = E::store(activate(p.activation, v));
      }
    }
  }
}

}  // namespace

void matmul_cpu(const MatmulParams& p) {
  switch (p.dtype) {
    case LLMK_DTYPE_F32: return matmul_reference<LLMK_DTYPE_F32>(p);
    case LLMK_DTYPE_F16: return matmul_reference<LLMK_DTYPE_F16>(p);
    case LLMK_DTYPE_BF16: return matmul_reference<LLMK_DTYPE_BF16>(p);
    default: fail(LLMK_ERROR_INTERNAL, "matmul_cpu: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
