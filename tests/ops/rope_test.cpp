// rope on the CPU context: one test per kind of bad argument (its own status, a message naming
// the argument, q and k left untouched), and the semantics the vectors cannot show (positions
// outside the cache refused before anything is written, fused QKV slices, no-op shapes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace rope_test {

// q [3, 4, 8] and k [3, 2, 8] f32, i32 positions, an f32 cache of 16 rows: each test breaks one
// thing.
class RopeBadInput : public testing::Test {
 protected:
  static constexpr int64_t kTokens = 3, kQHeads = 4, kKvHeads = 2, kHeadDim = 8, kRows = 16;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(3);
    q_data_ = random_buffer(LLMK_DTYPE_F32, kTokens * kQHeads * kHeadDim + 8, rng);
    k_data_ = random_buffer(LLMK_DTYPE_F32, kTokens * kKvHeads * kHeadDim + 8, rng);
    cache_data_ = random_buffer(LLMK_DTYPE_F32, kRows * kHeadDim, rng);
    q_initial_ = q_data_;
    k_initial_ = k_data_;
    q_ = make_view(q_data_.data(), LLMK_DTYPE_F32, {kTokens, kQHeads, kHeadDim});
    k_ = make_view(k_data_.data(), LLMK_DTYPE_F32, {kTokens, kKvHeads, kHeadDim});
    positions_ = make_view(positions_data_.data(), LLMK_DTYPE_I32, {kTokens});
    cache_ = make_view(cache_data_.data(), LLMK_DTYPE_F32, {kRows, kHeadDim});
    llmk_rope_config_init(&config_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status call() {
    return llmk_rope(ctx_, config_ptr_, positions_ptr_, q_ptr_, k_ptr_, cache_ptr_, nullptr);
  }

  // The call fails with `status`, names `argument` in its message and leaves q and k untouched.
  void expect_rejected(llmk_status status, const char* argument) {
    const llmk_status got = call();
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind("rope: ", 0), 0u) << message;
    EXPECT_NE(message.find(argument), std::string::npos) << message;
    EXPECT_EQ(q_data_, q_initial_) << "q written by a rejected call";
    EXPECT_EQ(k_data_, k_initial_) << "k written by a rejected call";
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> q_data_, k_data_, cache_data_, q_initial_, k_initial_;
  std::vector<int32_t> positions_data_ = {0, 5, 15, 1 << 30};
  llmk_tensor q_{}, k_{}, positions_{}, cache_{};
  llmk_rope_config config_{};
  const llmk_rope_config* config_ptr_ = &config_;
  const llmk_tensor* q_ptr_ = &q_;
  const llmk_tensor* k_ptr_ = &k_;
  const llmk_tensor* positions_ptr_ = &positions_;
  const llmk_tensor* cache_ptr_ = nullptr;
};

TEST_F(RopeBadInput, ValidCallsSucceed) {
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_NE(q_data_, q_initial_);
  cache_ptr_ = &cache_;
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  k_ptr_ = nullptr;
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(RopeBadInput, NullContext) {
  EXPECT_EQ(llmk_rope(nullptr, &config_, &positions_, &q_, &k_, nullptr, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(RopeBadInput, NullTensors) {
  q_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "q is NULL");
  q_ptr_ = &q_;
  positions_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "positions is NULL");
}

TEST_F(RopeBadInput, NullConfig) {
  config_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "config is NULL");
}

TEST_F(RopeBadInput, NullData) {
  k_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "k.data");
}

TEST_F(RopeBadInput, UnsupportedDtypes) {
  q_.dtype = k_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "q has dtype i32");
  q_.dtype = k_.dtype = LLMK_DTYPE_F32;
  positions_.dtype = LLMK_DTYPE_F32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "positions has dtype f32");
  positions_.dtype = LLMK_DTYPE_I32;
  cache_ptr_ = &cache_;
  cache_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "cos_sin_cache has dtype i32");
}

TEST_F(RopeBadInput, DtypeMismatches) {
  k_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "k is bf16 but q is f32");
  k_.dtype = LLMK_DTYPE_F32;
  cache_ptr_ = &cache_;
  cache_.dtype = LLMK_DTYPE_F16;  // neither f32 nor q's dtype
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "cos_sin_cache is f16");
}

TEST_F(RopeBadInput, WrongNdim) {
  q_.ndim = 2;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "q has 2 dimensions");
  q_.ndim = 3;
  k_.ndim = 4;
  k_.shape[3] = 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "k has 4 dimensions");
  k_.ndim = 3;
  positions_.ndim = 2;
  positions_.shape[1] = 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "positions has 2 dimensions");
  positions_.ndim = 1;
  cache_ptr_ = &cache_;
  cache_.ndim = 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "cos_sin_cache has 1 dimensions");
}

TEST_F(RopeBadInput, ShapeMismatches) {
  positions_.shape[0] = kTokens - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "positions has 2 elements, q has 3 tokens");
  positions_.shape[0] = kTokens;
  k_.shape[0] = kTokens - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k has 2 tokens, q has 3");
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F32, {kTokens, kKvHeads, kHeadDim / 2});
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k has head_dim 4, q has 8");
}

TEST_F(RopeBadInput, CacheRowsMismatchRotaryDim) {
  cache_ptr_ = &cache_;
  config_.rotary_dim = 4;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "cos_sin_cache has rows of 8, rotary_dim is 4");
}

TEST_F(RopeBadInput, HeadDimNotContiguous) {
  q_ = make_view(q_data_.data(), LLMK_DTYPE_F32, {kTokens, kQHeads, kHeadDim / 2},
                 {kQHeads * kHeadDim, kHeadDim, 2});
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F32, {kTokens, kKvHeads, kHeadDim / 2});
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "q must be contiguous in dimension 2");
}

TEST_F(RopeBadInput, CacheRowNotContiguous) {
  cache_ = make_view(cache_data_.data(), LLMK_DTYPE_F32, {kRows / 2, kHeadDim}, {2 * kHeadDim, 2});
  cache_ptr_ = &cache_;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "cos_sin_cache must be contiguous in dimension 1");
}

TEST_F(RopeBadInput, NegativeStride) {
  positions_.strides[0] = -1;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "positions has a negative stride");
}

TEST_F(RopeBadInput, OverflowingStride) {
  k_.strides[0] = INT64_MAX / 2;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "k reaches beyond the address space");
}

TEST_F(RopeBadInput, NegativeExtent) {
  q_.shape[1] = -1;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "q has a negative extent");
}

TEST_F(RopeBadInput, Misaligned) {
  q_.data = q_data_.data() + 2;
  expect_rejected(LLMK_ERROR_MISALIGNED, "q.data");
}

TEST_F(RopeBadInput, KOverlapsQ) {
  k_ = make_view(q_data_.data(), LLMK_DTYPE_F32, {kTokens, kKvHeads, kHeadDim},
                 {kQHeads * kHeadDim, kHeadDim, 1});
  expect_rejected(LLMK_ERROR_OVERLAP, "k overlaps q");
  k_.data = static_cast<float*>(k_.data) + 1;  // shifted by one element
  expect_rejected(LLMK_ERROR_OVERLAP, "k overlaps q");
}

TEST_F(RopeBadInput, QOverlapsPositions) {
  positions_.data = q_data_.data();  // reads of positions would see q's writes
  expect_rejected(LLMK_ERROR_OVERLAP, "q overlaps positions");
}

TEST_F(RopeBadInput, KOverlapsCache) {
  cache_ = make_view(k_data_.data(), LLMK_DTYPE_F32, {2, kHeadDim});
  cache_ptr_ = &cache_;
  expect_rejected(LLMK_ERROR_OVERLAP, "k overlaps cos_sin_cache");
}

TEST_F(RopeBadInput, HeadsShareMemory) {
  q_.strides[1] = 0;
  expect_rejected(LLMK_ERROR_OVERLAP, "q has stride 0 in dimension 1");
}

TEST_F(RopeBadInput, InvalidStyle) {
  config_.style = 2;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->style is 2");
}

TEST_F(RopeBadInput, InvalidRotaryDim) {
  config_.rotary_dim = 5;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "rotary_dim is 5");
  config_.rotary_dim = kHeadDim + 2;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->rotary_dim is 10");
  config_.rotary_dim = -2;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->rotary_dim is -2");
}

TEST_F(RopeBadInput, OddHeadDimWithDefaultRotaryDim) {
  q_ = make_view(q_data_.data(), LLMK_DTYPE_F32, {kTokens, kQHeads, 7});
  k_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "rotary_dim is 7 (config->rotary_dim 0");
}

TEST_F(RopeBadInput, InvalidTheta) {
  config_.theta = 0.0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->theta is 0");
  config_.theta = NAN;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->theta");
  config_.theta = INFINITY;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->theta");
}

TEST_F(RopeBadInput, InvalidLlama3Fields) {
  config_.llama3_factor = -1.0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->llama3_factor is -1");
  config_.llama3_factor = NAN;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->llama3_factor");
  config_.llama3_factor = 8.0;  // low and high still 0
  config_.llama3_original_max_position = 8192.0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "llama3_low_freq_factor");
  config_.llama3_low_freq_factor = 4.0;
  config_.llama3_high_freq_factor = 1.0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "llama3_low_freq_factor");
  config_.llama3_low_freq_factor = 1.0;
  config_.llama3_high_freq_factor = 4.0;
  config_.llama3_original_max_position = 0.0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->llama3_original_max_position is 0");
  config_.llama3_original_max_position = 8192.0;
  EXPECT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(RopeBadInput, ConfigStructSizeTooSmall) {
  config_.struct_size = sizeof(size_t);
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size");
}

TEST_F(RopeBadInput, RotaryDimBeyondTheLimit) {
  std::vector<float> q(2 * 520, 1.0f);
  const std::vector<float> initial = q;
  const llmk_tensor big = make_view(q.data(), LLMK_DTYPE_F32, {2, 1, 520});
  positions_.shape[0] = 2;
  EXPECT_EQ(llmk_rope(ctx_, &config_, &positions_, &big, nullptr, nullptr, nullptr),
            LLMK_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(llmk_last_error_message())
                .find("rope: rotary_dim is 520; llmk supports at most 512"),
            std::string::npos)
      << llmk_last_error_message();
  EXPECT_EQ(q, initial);
  config_.rotary_dim = 512;  // the largest supported: rotates the first 512 of 520
  ASSERT_EQ(llmk_rope(ctx_, &config_, &positions_, &big, nullptr, nullptr, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  for (int d = 512; d < 520; ++d) EXPECT_EQ(q[520 + d], 1.0f) << d;
}

// --- semantics ---------------------------------------------------------------------------------

TEST_F(RopeBadInput, PositionOutsideTheCacheIsRefusedBeforeWriting) {
  cache_ptr_ = &cache_;
  positions_data_[1] = kRows;  // one past the last row
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "positions[1] is 16");
  positions_data_[1] = 0;
  positions_data_[2] = -1;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "positions[2] is -1");
}

TEST_F(RopeBadInput, UnusedFrequencyFieldsAreIgnoredWithACache) {
  cache_ptr_ = &cache_;
  config_.theta = 0.0;
  config_.llama3_factor = -1.0;
  EXPECT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(RopeBadInput, CacheRowsRotateAsGiven) {
  // Row p of the cache holds (cos, sin) = (0, 1) for every pair: a quarter turn.
  std::vector<float> cache(kRows * kHeadDim);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t i = 0; i < kHeadDim / 2; ++i) {
      cache[r * kHeadDim + i] = 0.0f;
      cache[r * kHeadDim + kHeadDim / 2 + i] = 1.0f;
    }
  }
  cache_ = make_view(cache.data(), LLMK_DTYPE_F32, {kRows, kHeadDim});
  cache_ptr_ = &cache_;
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  const float* before = reinterpret_cast<const float*>(q_initial_.data());
  const float* after = reinterpret_cast<const float*>(q_data_.data());
  for (int64_t i = 0; i < kHeadDim / 2; ++i) {  // NeoX: (x, y) -> (-y, x)
    EXPECT_EQ(after[i], -before[i + kHeadDim / 2]);
    EXPECT_EQ(after[i + kHeadDim / 2], before[i]);
  }
}

TEST(RopeLayouts, FusedQkvSlicesMatchSeparateTensors) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  constexpr int64_t kTokens = 5, kQHeads = 4, kKvHeads = 2, kHeadDim = 16;
  constexpr int64_t kWidth = (kQHeads + 2 * kKvHeads) * kHeadDim;
  std::mt19937_64 rng(5);
  std::vector<uint8_t> qkv = random_buffer(LLMK_DTYPE_BF16, kTokens * kWidth, rng);
  const std::vector<uint8_t> initial = qkv;
  std::vector<uint16_t> q(kTokens * kQHeads * kHeadDim), k(kTokens * kKvHeads * kHeadDim);
  const auto* words = reinterpret_cast<const uint16_t*>(initial.data());
  for (int64_t t = 0; t < kTokens; ++t) {
    std::memcpy(&q[t * kQHeads * kHeadDim], words + t * kWidth, q.size() / kTokens * 2);
    std::memcpy(&k[t * kKvHeads * kHeadDim], words + t * kWidth + kQHeads * kHeadDim,
                k.size() / kTokens * 2);
  }
  int64_t positions[kTokens] = {3, 1, 4, 1, 5};
  const llmk_tensor pos = make_view(positions, LLMK_DTYPE_I64, {kTokens});
  auto* base = reinterpret_cast<uint16_t*>(qkv.data());
  const llmk_tensor q_slice =
      make_view(base, LLMK_DTYPE_BF16, {kTokens, kQHeads, kHeadDim}, {kWidth, kHeadDim, 1});
  const llmk_tensor k_slice = make_view(base + kQHeads * kHeadDim, LLMK_DTYPE_BF16,
                                        {kTokens, kKvHeads, kHeadDim}, {kWidth, kHeadDim, 1});
  const llmk_tensor q_alone = make_view(q.data(), LLMK_DTYPE_BF16, {kTokens, kQHeads, kHeadDim});
  const llmk_tensor k_alone = make_view(k.data(), LLMK_DTYPE_BF16, {kTokens, kKvHeads, kHeadDim});
  llmk_rope_config config;
  llmk_rope_config_init(&config);
  config.style = LLMK_ROPE_GPTJ;
  ASSERT_EQ(llmk_rope(ctx, &config, &pos, &q_slice, &k_slice, nullptr, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  ASSERT_EQ(llmk_rope(ctx, &config, &pos, &q_alone, &k_alone, nullptr, nullptr), LLMK_SUCCESS);
  for (int64_t t = 0; t < kTokens; ++t) {
    const uint16_t* row = base + t * kWidth;
    EXPECT_EQ(std::memcmp(row, &q[t * kQHeads * kHeadDim], q.size() / kTokens * 2), 0) << t;
    EXPECT_EQ(
        std::memcmp(row + kQHeads * kHeadDim, &k[t * kKvHeads * kHeadDim], k.size() / kTokens * 2),
        0)
        << t;
    const uint16_t* v = row + (kQHeads + kKvHeads) * kHeadDim;
    EXPECT_EQ(std::memcmp(v, words + (v - base), kKvHeads * kHeadDim * 2), 0) << "v written";
  }
  llmk_context_destroy(ctx);
}

TEST(RopeLayouts, EmptyShapesAreNoOps) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  llmk_rope_config config;
  llmk_rope_config_init(&config);
  float storage[16] = {};
  int32_t position = 0;
  const llmk_tensor no_positions = make_view(nullptr, LLMK_DTYPE_I32, {0});
  const llmk_tensor no_tokens = make_view(nullptr, LLMK_DTYPE_F32, {0, 4, 8});
  EXPECT_EQ(llmk_rope(ctx, &config, &no_positions, &no_tokens, nullptr, nullptr, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  const llmk_tensor one = make_view(&position, LLMK_DTYPE_I32, {1});
  const llmk_tensor no_heads = make_view(storage, LLMK_DTYPE_F32, {1, 0, 8});
  EXPECT_EQ(llmk_rope(ctx, &config, &one, &no_heads, nullptr, nullptr, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  const llmk_tensor no_dims = make_view(storage, LLMK_DTYPE_F32, {1, 2, 0});
  EXPECT_EQ(llmk_rope(ctx, &config, &one, &no_dims, nullptr, nullptr, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  llmk_context_destroy(ctx);
}

TEST(RopeAccuracy, LargePositionsMatchTheAngleInDouble) {
  // position * inv_freq reduced in f64: at position 10^6 pair 0 turns by exactly 10^6 radians.
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  llmk_rope_config config;
  llmk_rope_config_init(&config);
  float q[2] = {1.0f, 0.0f};
  int64_t position = 1000000;
  const llmk_tensor qv = make_view(q, LLMK_DTYPE_F32, {1, 1, 2});
  const llmk_tensor pv = make_view(&position, LLMK_DTYPE_I64, {1});
  ASSERT_EQ(llmk_rope(ctx, &config, &pv, &qv, nullptr, nullptr, nullptr), LLMK_SUCCESS);
  EXPECT_EQ(q[0], static_cast<float>(std::cos(1e6)));
  EXPECT_EQ(q[1], static_cast<float>(std::sin(1e6)));
  llmk_context_destroy(ctx);
}

}  // namespace rope_test
