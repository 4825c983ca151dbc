// Reference embedding on the CPU: y[t] = table[ids[t]], every id checked before the first row is
// written. The rows are copied bit for bit, so there is no rounding to speak of.
#include <cstring>

#include "core/error.hpp"
#include "embedding.hpp"

namespace llmk {
namespace {

int64_t id_of(const EmbeddingParams& p, int64_t token) {
  const int64_t offset = token * p.ids_stride;
  if (p.ids_dtype == LLMK_DTYPE_I64) return static_cast<const int64_t*>(p.ids)[offset];
  return static_cast<const int32_t*>(p.ids)[offset];
}

}  // namespace

void embedding_cpu(const EmbeddingParams& p) {
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t id = id_of(p, t);
    if (id < 0 || id >= p.vocab) {
      fail(LLMK_ERROR_INVALID_VALUE,
           "embedding: token %lld has id %lld, outside [0, %lld) of table",
           static_cast<long long>(t), static_cast<long long>(id), static_cast<long long>(p.vocab));
    }
  }
  const size_t row_bytes = static_cast<size_t>(p.hidden) * p.element_bytes;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const auto* from =
        static_cast<const char*>(p.table) + id_of(p, t) * p.table_stride * p.element_bytes;
    auto* to = static_cast<char*>(p.y) + t * p.y_stride * p.element_bytes;
    std::memcpy(to, from, row_bytes);
  }
}

}  // namespace llmk
