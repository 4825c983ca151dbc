// Reference KV-cache writes on the CPU: every destination checked first, then each token's rows
// of k and v copied bit for bit into its cache rows (no rounding happens).
#include <cstring>

#include "core/error.hpp"
#include "kv_cache.hpp"

namespace llmk {
namespace {

int64_t index_at(const KvCacheParams& p, int64_t i) {
  const int64_t offset = i * p.index_stride;
  if (p.index_dtype == LLMK_DTYPE_I64) return static_cast<const int64_t*>(p.index)[offset];
  return static_cast<const int32_t*>(p.index)[offset];
}

void check_destinations(const KvCacheParams& p) {
  if (p.layout == KvLayout::contiguous) {
    const int64_t last_start = p.page_size - p.new_len;
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t start = index_at(p, b);
      if (start < 0 || start > last_start) {
        fail(LLMK_ERROR_INVALID_VALUE,
             "kv_cache_write: cache_seqlens[%lld] is %lld; with new_len %lld and max_seq %lld it "
             "must lie in [0, %lld]",
             static_cast<long long>(b), static_cast<long long>(start),
             static_cast<long long>(p.new_len), static_cast<long long>(p.page_size),
             static_cast<long long>(last_start));
      }
    }
  } else {
    const int64_t slots = p.num_pages * p.page_size;
    for (int64_t t = 0; t < p.new_len; ++t) {
      const int64_t slot = index_at(p, t);
      if (slot >= slots) {
        fail(LLMK_ERROR_INVALID_VALUE,
             "paged_kv_cache_write: token %lld has slot_mapping %lld, beyond the caches' %lld "
             "slots (%lld pages of %lld)",
             static_cast<long long>(t), static_cast<long long>(slot), static_cast<long long>(slots),
             static_cast<long long>(p.num_pages), static_cast<long long>(p.page_size));
      }
    }
  }
}

}  // namespace

void kv_cache_cpu(const KvCacheParams& p) {
  check_destinations(p);
  const int64_t eb = p.element_bytes;
  const size_t row_bytes = static_cast<size_t>(p.row_elements * eb);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t i = 0; i < p.new_len; ++i) {
      int64_t page = b, offset;
      if (p.layout == KvLayout::contiguous) {
        offset = index_at(p, b) + i;
      } else {
        const int64_t slot = index_at(p, i);
        if (slot < 0) continue;  // padding
        page = slot / p.page_size;
        offset = slot % p.page_size;
      }
      for (int64_t h = 0; h < p.row_heads; ++h) {
        const auto copy = [&](const void* from, const KvStrides& from_strides, void* to,
                              const KvStrides& to_strides) {
          const int64_t source =
              b * from_strides.outer + i * from_strides.inner + h * from_strides.head;
          const int64_t target =
              page * to_strides.outer + offset * to_strides.inner + h * to_strides.head;
          std::memcpy(static_cast<char*>(to) + target * eb,
                      static_cast<const char*>(from) + source * eb, row_bytes);
        };
        copy(p.k, p.k_strides, p.k_cache, p.k_cache_strides);
        copy(p.v, p.v_strides, p.v_cache, p.v_cache_strides);
      }
    }
  }
}

}  // namespace llmk
