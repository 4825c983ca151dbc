// llmk_kv_cache_write and llmk_paged_kv_cache_write on the CPU context: one test per argument
// check, run against both entries (its status, a message naming the argument, caches left
// untouched), and each entry's handling of destinations outside the cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace kv_cache_test {

enum class Entry { contiguous, paged };

// Contiguous: k, v [2, 3, 2, 8] into caches [2, 8, 2, 8] at cache_seqlens {0, 5}.
// Paged: k, v [6, 2, 8] into caches [4, 4, 2, 8] at slots {9, 0, -1, 15, 4, 7}.
// f32, caches poisoned with NaN: each test breaks one thing.
class KvCacheBadInput : public testing::TestWithParam<Entry> {
 protected:
  static constexpr int64_t kHeads = 2, kHeadDim = 8;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    paged_ = GetParam() == Entry::paged;
    op_ = paged_ ? "paged_kv_cache_write" : "kv_cache_write";
    index_name_ = paged_ ? "slot_mapping" : "cache_seqlens";
    k_shape_ = paged_ ? std::vector<int64_t>{6, kHeads, kHeadDim}
                      : std::vector<int64_t>{2, 3, kHeads, kHeadDim};
    cache_shape_ = paged_ ? std::vector<int64_t>{4, 4, kHeads, kHeadDim}
                          : std::vector<int64_t>{2, 8, kHeads, kHeadDim};
    index_data_ = paged_ ? std::vector<int32_t>{9, 0, -1, 15, 4, 7} : std::vector<int32_t>{0, 5};
    std::mt19937_64 rng(1);
    const size_t k_elements = 6 * kHeads * kHeadDim, cache_elements = 32 * kHeads * kHeadDim;
    k_data_ = random_buffer(LLMK_DTYPE_F32, k_elements + 8, rng);
    v_data_ = random_buffer(LLMK_DTYPE_F32, k_elements + 8, rng);
    k_cache_data_ = nan_buffer(LLMK_DTYPE_F32, cache_elements + 8);
    v_cache_data_ = nan_buffer(LLMK_DTYPE_F32, cache_elements + 8);
    k_ = make_view(k_data_.data(), LLMK_DTYPE_F32, k_shape_);
    v_ = make_view(v_data_.data(), LLMK_DTYPE_F32, k_shape_);
    index_ =
        make_view(index_data_.data(), LLMK_DTYPE_I32, {static_cast<int64_t>(index_data_.size())});
    k_cache_ = make_view(k_cache_data_.data(), LLMK_DTYPE_F32, cache_shape_);
    v_cache_ = make_view(v_cache_data_.data(), LLMK_DTYPE_F32, cache_shape_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status call() {
    if (paged_) {
      return llmk_paged_kv_cache_write(ctx_, k_ptr_, v_ptr_, index_ptr_, k_cache_ptr_, v_cache_ptr_,
                                       nullptr);
    }
    return llmk_kv_cache_write(ctx_, k_ptr_, v_ptr_, index_ptr_, k_cache_ptr_, v_cache_ptr_,
                               nullptr);
  }

  bool caches_untouched() const {
    for (const std::vector<uint8_t>* cache : {&k_cache_data_, &v_cache_data_}) {
      for (size_t i = 0; i < cache->size() / 4; ++i) {
        float v;
        std::memcpy(&v, cache->data() + 4 * i, 4);
        if (!std::isnan(v)) return false;
      }
    }
    return true;
  }

  // The call fails with `status`, names `argument` in its message and leaves the caches
  // untouched.
  void expect_rejected(llmk_status status, const std::string& argument) {
    const llmk_status got = call();
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind(op_ + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(argument), std::string::npos) << message;
    EXPECT_TRUE(caches_untouched()) << "a cache written by a rejected call";
  }

  // The element (token, head, d) of k or v, and (page, offset, head, d) of a cache: both laid
  // out contiguously here, so a token of k is its flat index over the leading dimensions.
  static float at(const std::vector<uint8_t>& data, int64_t element) {
    float v;
    std::memcpy(&v, data.data() + 4 * element, 4);
    return v;
  }

  // Checks every cache row: the written ones against k and v, the others still NaN.
  void expect_written(const std::vector<int64_t>& slot_of_token) {
    const int64_t row = kHeads * kHeadDim, slots = cache_shape_[0] * cache_shape_[1];
    std::vector<int64_t> token_of_slot(slots, -1);
    for (size_t t = 0; t < slot_of_token.size(); ++t) {
      if (slot_of_token[t] >= 0) token_of_slot[slot_of_token[t]] = static_cast<int64_t>(t);
    }
    for (int64_t s = 0; s < slots; ++s) {
      for (int64_t e = 0; e < row; ++e) {
        const float kc = at(k_cache_data_, s * row + e), vc = at(v_cache_data_, s * row + e);
        if (token_of_slot[s] < 0) {
          ASSERT_TRUE(std::isnan(kc) && std::isnan(vc)) << "slot " << s << " written";
        } else {
          ASSERT_EQ(kc, at(k_data_, token_of_slot[s] * row + e)) << "slot " << s;
          ASSERT_EQ(vc, at(v_data_, token_of_slot[s] * row + e)) << "slot " << s;
        }
      }
    }
  }

  llmk_context* ctx_ = nullptr;
  bool paged_ = false;
  std::string op_, index_name_;
  std::vector<int64_t> k_shape_, cache_shape_;
  std::vector<int32_t> index_data_;
  std::vector<uint8_t> k_data_, v_data_, k_cache_data_, v_cache_data_;
  llmk_tensor k_{}, v_{}, index_{}, k_cache_{}, v_cache_{};
  const llmk_tensor* k_ptr_ = &k_;
  const llmk_tensor* v_ptr_ = &v_;
  const llmk_tensor* index_ptr_ = &index_;
  const llmk_tensor* k_cache_ptr_ = &k_cache_;
  const llmk_tensor* v_cache_ptr_ = &v_cache_;
};

INSTANTIATE_TEST_SUITE_P(Entries, KvCacheBadInput, testing::Values(Entry::contiguous, Entry::paged),
                         [](const auto& info) {
                           return info.param == Entry::paged ? "paged" : "contiguous";
                         });

TEST_P(KvCacheBadInput, ValidCallWritesTheRows) {
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  if (paged_) {
    expect_written({9, 0, -1, 15, 4, 7});
  } else {
    expect_written({0, 1, 2, 8 + 5, 8 + 6, 8 + 7});  // sequence b's position p is slot 8b + p
  }
}

TEST_P(KvCacheBadInput, NullContext) {
  ctx_ = nullptr;
  EXPECT_EQ(call(), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_P(KvCacheBadInput, NullTensors) {
  for (const llmk_tensor** slot : {&k_ptr_, &v_ptr_, &index_ptr_, &k_cache_ptr_, &v_cache_ptr_}) {
    const llmk_tensor* kept = *slot;
    *slot = nullptr;
    const std::string name = slot == &k_ptr_         ? "k"
                             : slot == &v_ptr_       ? "v"
                             : slot == &index_ptr_   ? index_name_
                             : slot == &k_cache_ptr_ ? "k_cache"
                                                     : "v_cache";
    expect_rejected(LLMK_ERROR_NULL_POINTER, ": " + name + " is NULL");
    *slot = kept;
  }
}

TEST_P(KvCacheBadInput, NullData) {
  v_cache_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "v_cache.data");
}

TEST_P(KvCacheBadInput, UnknownDtype) {
  k_cache_.dtype = 42;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "k_cache has dtype 42");
}

TEST_P(KvCacheBadInput, IntegerData) {
  k_.dtype = v_.dtype = k_cache_.dtype = v_cache_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "k has dtype i32");
}

TEST_P(KvCacheBadInput, FloatIndex) {
  index_.dtype = LLMK_DTYPE_F32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, index_name_ + " has dtype f32");
}

TEST_P(KvCacheBadInput, VDtypeMismatch) {
  v_.dtype = LLMK_DTYPE_F16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "v is f16 but k is f32");
}

TEST_P(KvCacheBadInput, CacheDtypeMismatch) {
  k_cache_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "k_cache is bf16 but k is f32");
  k_cache_.dtype = LLMK_DTYPE_F32;
  v_cache_.dtype = LLMK_DTYPE_F16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "v_cache is f16 but k is f32");
}

TEST_P(KvCacheBadInput, KNdim) {
  k_.ndim = v_.ndim = paged_ ? 4 : 3;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, paged_ ? "k has 4 dimensions; it must have 3"
                                                  : "k has 3 dimensions; it must have 4");
}

TEST_P(KvCacheBadInput, IndexNdim) {
  index_.ndim = 2;
  index_.shape[1] = 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, index_name_ + " has 2 dimensions; it must have 1");
}

TEST_P(KvCacheBadInput, CacheNdim) {
  k_cache_.ndim = v_cache_.ndim = 3;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "k_cache has 3 dimensions; it must have 4");
}

TEST_P(KvCacheBadInput, VShapeMismatch) {
  v_.shape[0] = 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "v has extent 1 in dimension 0 but k has");
}

TEST_P(KvCacheBadInput, VCacheShapeMismatch) {
  v_cache_.shape[1] = 2;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "v_cache has extent 2 in dimension 1 but k_cache");
}

TEST_P(KvCacheBadInput, IndexLengthMismatch) {
  index_.shape[0] -= 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                  index_name_ + (paged_ ? " has tokens 5 (dimension 0), k has 6"
                                        : " has batch 1 (dimension 0), k has 2"));
}

TEST_P(KvCacheBadInput, CacheHeadsMismatch) {
  k_cache_.shape[2] = v_cache_.shape[2] = 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k_cache has kv_heads 1 (dimension 2), k has 2");
}

TEST_P(KvCacheBadInput, CacheHeadDimMismatch) {
  k_cache_.shape[3] = v_cache_.shape[3] = 4;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k_cache has head_dim 4 (dimension 3), k has 8");
}

TEST_P(KvCacheBadInput, CacheBatchMismatch) {
  if (paged_) GTEST_SKIP() << "a paged cache has pages, not sequences";
  k_cache_.shape[0] = v_cache_.shape[0] = 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k_cache has batch 1 (dimension 0), k has 2");
}

TEST_P(KvCacheBadInput, NegativeExtent) {
  k_cache_.shape[1] = v_cache_.shape[1] = -1;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "k_cache has a negative extent");
}

TEST_P(KvCacheBadInput, NegativeStride) {
  v_.strides[0] = -1;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "v has a negative stride");
}

TEST_P(KvCacheBadInput, OverflowingStride) {
  k_cache_.strides[0] = INT64_MAX / 2;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "k_cache reaches beyond the address space");
}

TEST_P(KvCacheBadInput, HeadDimNotContiguous) {
  const int last = k_.ndim - 1;
  k_.shape[last] = v_.shape[last] = k_cache_.shape[3] = v_cache_.shape[3] = kHeadDim / 2;
  k_.strides[last] = 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS,
                  "k must be contiguous in dimension " + std::to_string(last));
  k_.strides[last] = 1;
  v_cache_.strides[3] = 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "v_cache must be contiguous in dimension 3");
}

TEST_P(KvCacheBadInput, Misaligned) {
  k_cache_.data = k_cache_data_.data() + 2;
  expect_rejected(LLMK_ERROR_MISALIGNED, "k_cache.data");
}

TEST_P(KvCacheBadInput, CachesOverlapEachOther) {
  v_cache_.data = k_cache_data_.data();
  expect_rejected(LLMK_ERROR_OVERLAP, "k_cache overlaps v_cache");
}

TEST_P(KvCacheBadInput, CacheOverlapsK) {
  k_.data = k_cache_data_.data() + 4 * 8;
  expect_rejected(LLMK_ERROR_OVERLAP, "k_cache overlaps k");
}

TEST_P(KvCacheBadInput, CacheOverlapsV) {
  v_.data = v_cache_data_.data();
  expect_rejected(LLMK_ERROR_OVERLAP, "v_cache overlaps v");
}

TEST_P(KvCacheBadInput, CacheOverlapsIndex) {
  index_.data = v_cache_data_.data();
  expect_rejected(LLMK_ERROR_OVERLAP, "v_cache overlaps " + index_name_);
}

TEST_P(KvCacheBadInput, CacheRowsOverlapEachOther) {
  k_cache_.strides[1] = 0;
  expect_rejected(LLMK_ERROR_OVERLAP, "k_cache has stride 0 in dimension 1");
}

TEST_P(KvCacheBadInput, KAndVMayShareMemory) {
  v_.data = k_.data;  // inputs only: reading one buffer twice is fine
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_P(KvCacheBadInput, NoTokensIsANoOp) {
  k_.shape[paged_ ? 0 : 1] = v_.shape[paged_ ? 0 : 1] = 0;
  if (paged_) index_.shape[0] = 0;
  EXPECT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_TRUE(caches_untouched());
}

// --- destinations outside the cache ------------------------------------------------------------

TEST_P(KvCacheBadInput, DestinationPastTheCacheIsRefusedBeforeAnyWrite) {
  if (paged_) {
    index_data_[4] = 16;  // 4 pages of 4 slots
    expect_rejected(LLMK_ERROR_INVALID_VALUE,
                    "token 4 has slot_mapping 16, beyond the caches' 16 slots (4 pages of 4)");
  } else {
    index_data_[1] = 6;  // 6 + 3 new tokens > max_seq 8
    expect_rejected(LLMK_ERROR_INVALID_VALUE,
                    "cache_seqlens[1] is 6; with new_len 3 and max_seq 8 it must lie in [0, 5]");
  }
}

TEST_P(KvCacheBadInput, NegativeDestination) {
  index_data_[0] = -1;
  if (paged_) {  // padding: skipped
    ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
    expect_written({-1, 0, -1, 15, 4, 7});
  } else {
    expect_rejected(LLMK_ERROR_INVALID_VALUE, "cache_seqlens[0] is -1");
  }
}

TEST_P(KvCacheBadInput, I64IndexWithStrideAndHeadMajorCaches) {
  // The index as every other element of an i64 buffer, and caches laid out [pages, heads,
  // page_size, head_dim] (each head its own row), viewed in the API's [pages, page_size, heads,
  // head_dim] order.
  std::vector<int64_t> index64;
  for (int32_t i : index_data_) index64.insert(index64.end(), {i, -7});
  index_ =
      make_view(index64.data(), LLMK_DTYPE_I64, {static_cast<int64_t>(index_data_.size())}, {2});
  const int64_t page_size = cache_shape_[1];
  const std::vector<int64_t> head_major = {kHeads * page_size * kHeadDim, kHeadDim,
                                           page_size * kHeadDim, 1};
  k_cache_ = make_view(k_cache_data_.data(), LLMK_DTYPE_F32, cache_shape_, head_major);
  v_cache_ = make_view(v_cache_data_.data(), LLMK_DTYPE_F32, cache_shape_, head_major);
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  const int64_t tokens = static_cast<int64_t>(paged_ ? index_data_.size() : 6);
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t slot;
    if (paged_) {
      slot = index_data_[t];
      if (slot < 0) continue;
    } else {
      slot = t / 3 * page_size + index_data_[t / 3] + t % 3;
    }
    for (int64_t h = 0; h < kHeads; ++h) {
      for (int64_t d = 0; d < kHeadDim; ++d) {
        const int64_t cache =
            slot / page_size * head_major[0] + slot % page_size * kHeadDim + h * head_major[2] + d;
        const int64_t source = (t * kHeads + h) * kHeadDim + d;
        ASSERT_EQ(at(k_cache_data_, cache), at(k_data_, source)) << t << " " << h << " " << d;
        ASSERT_EQ(at(v_cache_data_, cache), at(v_data_, source)) << t << " " << h << " " << d;
      }
    }
  }
}

}  // namespace kv_cache_test
