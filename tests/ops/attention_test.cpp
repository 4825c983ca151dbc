// attention on the CPU context: one test per argument check of both entries (its status, a
// message naming the op and the argument, o and lse left as they were), then the semantics
// against a small float64 reference written here from llmk.h's words: the bottom-right mask,
// windows, soft-cap, GQA and MQA, packed against padded sequences, strided layouts and dropout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/testing.hpp"
#include "core/philox.hpp"

using namespace llmk_test;

namespace attention_test {

// The buffers below come from operator new, whose alignment meets the 16 bytes attention asks of
// every data pointer.
static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= 16, "test buffers must be 16-byte aligned");

constexpr double kInf = std::numeric_limits<double>::infinity();

// --- bad arguments -----------------------------------------------------------------------------

// Padded: q, o [2, 5, 4, 64] and k, v [2, 7, 2, 64] in f16, lse [2, 4, 5]. Packed: the same
// buffers as q, o [10, 4, 64], k, v [14, 2, 64], lse [4, 10], cu_seqlens {0, 5, 10} and
// {0, 7, 14}. o and lse are NaN-poisoned; every buffer has room for twice its view, so strided
// views fit. Each test breaks one thing.
class AttentionBadInput : public testing::Test {
 protected:
  static constexpr int64_t kBatch = 2, kQLen = 5, kKvLen = 7, kQHeads = 4, kKvHeads = 2,
                           kHeadDim = 64;
  static constexpr int64_t kQElements = kBatch * kQLen * kQHeads * kHeadDim;
  static constexpr int64_t kKElements = kBatch * kKvLen * kKvHeads * kHeadDim;
  static constexpr int64_t kLseElements = kBatch * kQHeads * kQLen;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(11);
    q_data_ = random_buffer(LLMK_DTYPE_F16, 2 * kQElements, rng);
    k_data_ = random_buffer(LLMK_DTYPE_F16, 2 * kKElements, rng);
    v_data_ = random_buffer(LLMK_DTYPE_F16, 2 * kKElements, rng);
    o_data_ = nan_buffer(LLMK_DTYPE_F16, 2 * kQElements);
    lse_data_ = nan_buffer(LLMK_DTYPE_F32, 2 * kLseElements);
    o_initial_ = o_data_;
    lse_initial_ = lse_data_;
    q_ = make_view(q_data_.data(), LLMK_DTYPE_F16, {kBatch, kQLen, kQHeads, kHeadDim});
    k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim});
    v_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim});
    o_ = make_view(o_data_.data(), LLMK_DTYPE_F16, {kBatch, kQLen, kQHeads, kHeadDim});
    lse_ = make_view(lse_data_.data(), LLMK_DTYPE_F32, {kBatch, kQHeads, kQLen});
    pq_ = make_view(q_data_.data(), LLMK_DTYPE_F16, {kBatch * kQLen, kQHeads, kHeadDim});
    pk_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch * kKvLen, kKvHeads, kHeadDim});
    pv_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {kBatch * kKvLen, kKvHeads, kHeadDim});
    po_ = make_view(o_data_.data(), LLMK_DTYPE_F16, {kBatch * kQLen, kQHeads, kHeadDim});
    plse_ = make_view(lse_data_.data(), LLMK_DTYPE_F32, {kQHeads, kBatch * kQLen});
    cu_q_ = make_view(cu_q_data_.data(), LLMK_DTYPE_I32, {kBatch + 1});
    cu_k_ = make_view(cu_k_data_.data(), LLMK_DTYPE_I32, {kBatch + 1});
    llmk_attention_config_init(&config_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status padded() {
    return llmk_attention(ctx_, &config_, &q_, &k_, &v_, &o_, lse_ptr_, nullptr);
  }
  llmk_status varlen() {
    return llmk_attention_varlen(ctx_, &config_, &pq_, &pk_, &pv_, &cu_q_, &cu_k_, max_seqlen_q_,
                                 &po_, plse_ptr_, nullptr);
  }

  // `got` is `status`, the message starts with "<op>: " and holds `text`, and o and lse are as
  // they were.
  void expect_failure(llmk_status got, llmk_status status, const std::string& op,
                      const char* text) {
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind(op + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(text), std::string::npos) << message;
    EXPECT_EQ(o_data_, o_initial_) << "o written by a rejected call";
    EXPECT_EQ(lse_data_, lse_initial_) << "lse written by a rejected call";
  }
  // New offsets in place: the views keep pointing at the same buffer.
  static void set_offsets(std::vector<int32_t>& cu, std::initializer_list<int32_t> offsets) {
    std::copy(offsets.begin(), offsets.end(), cu.begin());
  }
  void expect_padded_rejected(llmk_status status, const char* text) {
    expect_failure(padded(), status, "attention", text);
  }
  void expect_varlen_rejected(llmk_status status, const char* text) {
    expect_failure(varlen(), status, "attention_varlen", text);
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> q_data_, k_data_, v_data_, o_data_, lse_data_, o_initial_, lse_initial_;
  std::vector<int32_t> cu_q_data_ = {0, 5, 10, 0, 0, 0}, cu_k_data_ = {0, 7, 14, 0, 0, 0};
  llmk_tensor q_{}, k_{}, v_{}, o_{}, lse_{}, pq_{}, pk_{}, pv_{}, po_{}, plse_{}, cu_q_{}, cu_k_{};
  const llmk_tensor* lse_ptr_ = &lse_;
  const llmk_tensor* plse_ptr_ = &plse_;
  int64_t max_seqlen_q_ = kQLen;
  llmk_attention_config config_{};
};

TEST_F(AttentionBadInput, ValidCallsSucceed) {
  ASSERT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_STREQ(llmk_last_error_message(), "");
  EXPECT_NE(o_data_, o_initial_);
  EXPECT_NE(lse_data_, lse_initial_);
  ASSERT_EQ(varlen(), LLMK_SUCCESS) << llmk_last_error_message();
  lse_ptr_ = plse_ptr_ = nullptr;
  config_.causal = 1;
  config_.window_left = 3;
  config_.softcap = 20.0f;
  config_.dropout_p = 0.5f;
  ASSERT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();
  ASSERT_EQ(varlen(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(AttentionBadInput, NullContext) {
  expect_failure(llmk_attention(nullptr, &config_, &q_, &k_, &v_, &o_, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "ctx is NULL");
  expect_failure(llmk_attention_varlen(nullptr, &config_, &pq_, &pk_, &pv_, &cu_q_, &cu_k_, kQLen,
                                       &po_, &plse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention_varlen", "ctx is NULL");
}

TEST_F(AttentionBadInput, NullConfig) {
  expect_failure(llmk_attention(ctx_, nullptr, &q_, &k_, &v_, &o_, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "config is NULL");
  expect_failure(llmk_attention_varlen(ctx_, nullptr, &pq_, &pk_, &pv_, &cu_q_, &cu_k_, kQLen, &po_,
                                       &plse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention_varlen", "config is NULL");
}

TEST_F(AttentionBadInput, ConfigStructSizeTooSmall) {
  config_.struct_size = sizeof(size_t);
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 8");
  config_.struct_size = 0;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 0");
}

TEST_F(AttentionBadInput, NullTensors) {
  expect_failure(llmk_attention(ctx_, &config_, nullptr, &k_, &v_, &o_, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "q is NULL");
  expect_failure(llmk_attention(ctx_, &config_, &q_, nullptr, &v_, &o_, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "k is NULL");
  expect_failure(llmk_attention(ctx_, &config_, &q_, &k_, nullptr, &o_, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "v is NULL");
  expect_failure(llmk_attention(ctx_, &config_, &q_, &k_, &v_, nullptr, &lse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention", "o is NULL");
  expect_failure(llmk_attention_varlen(ctx_, &config_, &pq_, &pk_, &pv_, nullptr, &cu_k_, kQLen,
                                       &po_, &plse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention_varlen", "cu_seqlens_q is NULL");
  expect_failure(llmk_attention_varlen(ctx_, &config_, &pq_, &pk_, &pv_, &cu_q_, nullptr, kQLen,
                                       &po_, &plse_, nullptr),
                 LLMK_ERROR_NULL_POINTER, "attention_varlen", "cu_seqlens_k is NULL");
}

TEST_F(AttentionBadInput, NullData) {
  v_.data = nullptr;
  expect_padded_rejected(LLMK_ERROR_NULL_POINTER, "v.data is NULL");
  cu_k_.data = nullptr;
  expect_varlen_rejected(LLMK_ERROR_NULL_POINTER, "cu_seqlens_k.data is NULL");
}

TEST_F(AttentionBadInput, UnsupportedDtypes) {
  q_.dtype = k_.dtype = v_.dtype = o_.dtype = LLMK_DTYPE_F32;
  expect_padded_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "q has dtype f32; supported: f16, bf16");
  q_.dtype = k_.dtype = v_.dtype = o_.dtype = LLMK_DTYPE_F16;
  lse_.dtype = LLMK_DTYPE_F16;
  expect_padded_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "lse has dtype f16; supported: f32");
  cu_q_.dtype = LLMK_DTYPE_I64;
  expect_varlen_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "cu_seqlens_q has dtype i64");
  cu_q_.dtype = LLMK_DTYPE_I32;
  cu_k_.dtype = LLMK_DTYPE_F32;
  expect_varlen_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "cu_seqlens_k has dtype f32");
}

TEST_F(AttentionBadInput, DtypeMismatches) {
  k_.dtype = LLMK_DTYPE_BF16;
  expect_padded_rejected(LLMK_ERROR_DTYPE_MISMATCH, "k is bf16 but q is f16");
  k_.dtype = LLMK_DTYPE_F16;
  v_.dtype = LLMK_DTYPE_BF16;
  expect_padded_rejected(LLMK_ERROR_DTYPE_MISMATCH, "v is bf16 but q is f16");
  v_.dtype = LLMK_DTYPE_F16;
  po_.dtype = LLMK_DTYPE_BF16;
  expect_varlen_rejected(LLMK_ERROR_DTYPE_MISMATCH, "o is bf16 but q is f16");
}

TEST_F(AttentionBadInput, WrongNdim) {
  q_.ndim = 3;
  expect_padded_rejected(LLMK_ERROR_INVALID_NDIM, "q has 3 dimensions; it must have 4");
  q_.ndim = 4;
  v_.ndim = 5;
  v_.shape[4] = 1;
  expect_padded_rejected(LLMK_ERROR_INVALID_NDIM, "v has 5 dimensions; it must have 4");
  v_.ndim = 4;
  lse_.ndim = 2;
  expect_padded_rejected(LLMK_ERROR_INVALID_NDIM, "lse has 2 dimensions; it must have 3");
  pk_.ndim = 4;
  pk_.shape[3] = 1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_NDIM, "k has 4 dimensions; it must have 3");
  pk_.ndim = 3;
  plse_.ndim = 3;
  plse_.shape[2] = 1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_NDIM, "lse has 3 dimensions; it must have 2");
  plse_.ndim = 2;
  cu_q_.ndim = 2;
  cu_q_.shape[1] = 1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_NDIM, "cu_seqlens_q has 2 dimensions; it must have 1");
}

TEST_F(AttentionBadInput, OutputShapeDiffersFromQ) {
  o_.shape[1] = kQLen - 1;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH, "o has extent 4 in dimension 1 but q has 5");
  po_.shape[1] = 2;
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH, "o has extent 2 in dimension 1 but q has 4");
}

TEST_F(AttentionBadInput, ValueShapeDiffersFromKey) {
  v_.shape[1] = kKvLen - 1;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH, "v has extent 6 in dimension 1 but k has 7");
  pv_.shape[0] = 3;
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH, "v has extent 3 in dimension 0 but k has 14");
}

TEST_F(AttentionBadInput, KeyBatchDiffersFromQ) {
  k_.shape[0] = v_.shape[0] = 1;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k has batch 1, q has 2");
}

TEST_F(AttentionBadInput, HeadDimsDiffer) {
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, 128});
  v_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, 128});
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k has head_dim 128, q has 64");
  pk_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch * kKvLen, 1, 128});
  pv_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {kBatch * kKvLen, 1, 128});
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH, "k has head_dim 128, q has 64");
}

TEST_F(AttentionBadInput, QueryHeadsNotAMultipleOfKvHeads) {
  q_.shape[2] = o_.shape[2] = 3;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                         "q has 3 heads and k 2; q's must be a multiple of k's");
  pq_.shape[1] = po_.shape[1] = 5;
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH, "q has 5 heads and k 2");
}

TEST_F(AttentionBadInput, NoKvHeads) {
  k_.shape[2] = v_.shape[2] = 0;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH, "q has 4 heads and k 0");
  pk_.shape[1] = pv_.shape[1] = 0;
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH, "which must be > 0");
}

TEST_F(AttentionBadInput, UnsupportedHeadDim) {
  for (int64_t head_dim : {0, 32, 80, 192, 512}) {
    SCOPED_TRACE(head_dim);
    for (llmk_tensor* t : {&q_, &o_}) *t = make_view(t->data, t->dtype, {kBatch, 1, 1, head_dim});
    for (llmk_tensor* t : {&k_, &v_}) *t = make_view(t->data, t->dtype, {kBatch, 1, 1, head_dim});
    lse_ = make_view(lse_.data, LLMK_DTYPE_F32, {kBatch, 1, 1});
    const std::string text =
        "q has head_dim " + std::to_string(head_dim) + "; llmk supports 64, 96, 128 and 256";
    expect_padded_rejected(LLMK_ERROR_UNSUPPORTED, text.c_str());
  }
}

TEST_F(AttentionBadInput, HeadDimNotContiguous) {
  q_ = make_view(q_data_.data(), LLMK_DTYPE_F16, {kBatch, kQLen, kQHeads, kHeadDim},
                 {kQLen * kQHeads * 128, kQHeads * 128, 128, 2});
  expect_padded_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "q must be contiguous in dimension 3");
  pv_.strides[2] = 2;
  expect_varlen_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "v must be contiguous in dimension 2");
}

TEST_F(AttentionBadInput, StridesNotMultiplesOf8) {
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim},
                 {kKvLen * kKvHeads * 68, kKvHeads * 68, 68, 1});
  expect_padded_rejected(LLMK_ERROR_MISALIGNED, "k has stride 68 in dimension 2");
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim});
  o_.strides[1] = kQHeads * kHeadDim + 4;
  o_.strides[0] = 2 * kQLen * kQHeads * kHeadDim;
  expect_padded_rejected(LLMK_ERROR_MISALIGNED, "o has stride 260 in dimension 1");
  v_.strides[0] += 2;
  expect_padded_rejected(LLMK_ERROR_MISALIGNED, "v has stride 898 in dimension 0");
  pq_.strides[0] = kQHeads * kHeadDim + 12;
  expect_varlen_rejected(LLMK_ERROR_MISALIGNED, "q has stride 268 in dimension 0");
}

TEST_F(AttentionBadInput, DataNotAlignedTo16Bytes) {
  q_.data = q_data_.data() + 8;  // 4 elements in: aligned to the element, not to 16 bytes
  expect_padded_rejected(LLMK_ERROR_MISALIGNED, "q.data");
  EXPECT_NE(std::string(llmk_last_error_message()).find("is not 16-byte aligned"),
            std::string::npos);
  po_.data = o_data_.data() + 2;
  expect_varlen_rejected(LLMK_ERROR_MISALIGNED, "o.data");
}

TEST_F(AttentionBadInput, LseShape) {
  lse_.shape[2] = kQLen - 1;
  expect_padded_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                         "lse has shape [2, 4, 4]; it must be [batch, q_heads, q_len] = [2, 4, 5]");
  plse_ = make_view(lse_data_.data(), LLMK_DTYPE_F32, {kBatch * kQLen, kQHeads});
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                         "lse has shape [10, 4]; it must be [q_heads, total_q] = [4, 10]");
}

TEST_F(AttentionBadInput, CuSeqlensShape) {
  cu_k_.shape[0] = kBatch;
  expect_varlen_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                         "cu_seqlens_k has 2 elements, cu_seqlens_q has 3");
  cu_k_.shape[0] = kBatch + 1;
  cu_q_.shape[0] = 0;
  expect_varlen_rejected(LLMK_ERROR_INVALID_SHAPE, "cu_seqlens_q has 0 elements");
}

TEST_F(AttentionBadInput, CuSeqlensNotContiguous) {
  cu_q_.strides[0] = 2;
  expect_varlen_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "cu_seqlens_q must be contiguous");
}

TEST_F(AttentionBadInput, InvalidScale) {
  config_.scale = -1.0f;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->scale is -1");
  config_.scale = NAN;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->scale is nan");
  config_.scale = INFINITY;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "config->scale is inf");
}

TEST_F(AttentionBadInput, InvalidWindows) {
  config_.window_left = -2;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->window_left is -2");
  config_.window_left = -1;
  config_.window_right = -5;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "config->window_right is -5");
}

TEST_F(AttentionBadInput, InvalidSoftcap) {
  config_.softcap = -0.5f;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->softcap is -0.5");
  config_.softcap = NAN;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->softcap is nan");
  config_.softcap = INFINITY;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "config->softcap is inf");
}

TEST_F(AttentionBadInput, InvalidDropout) {
  config_.dropout_p = 1.0f;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->dropout_p is 1; it must be in [0, 1)");
  config_.dropout_p = -0.25f;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->dropout_p is -0.25");
  config_.dropout_p = NAN;
  expect_padded_rejected(LLMK_ERROR_INVALID_VALUE, "config->dropout_p is nan");
  config_.dropout_p = INFINITY;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "config->dropout_p is inf");
}

TEST_F(AttentionBadInput, InvalidMaxSeqlenQ) {
  max_seqlen_q_ = -1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "max_seqlen_q is -1");
  max_seqlen_q_ = 0;
  expect_varlen_rejected(
      LLMK_ERROR_INVALID_VALUE,
      "max_seqlen_q is 0; it must be > 0 when there are queries (total_q is 10)");
}

TEST_F(AttentionBadInput, OutputOverlapsAnInput) {
  o_.data = q_data_.data();
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "o overlaps q");
  o_.data = k_data_.data();
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "o overlaps k");
  o_.data = v_data_.data();
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "o overlaps v");
  // cu_seqlens inside o: the reads of the offsets would see o's writes.
  cu_q_.data = o_data_.data() + kQElements * 2;
  po_ = make_view(o_data_.data(), LLMK_DTYPE_F16, {kBatch * kQLen + 8, kQHeads, kHeadDim});
  pq_ = make_view(q_data_.data(), LLMK_DTYPE_F16, {kBatch * kQLen + 8, kQHeads, kHeadDim});
  plse_ptr_ = nullptr;
  expect_varlen_rejected(LLMK_ERROR_OVERLAP, "o overlaps cu_seqlens_q");
}

TEST_F(AttentionBadInput, OutputOverlapsLse) {
  lse_.data = o_data_.data() + 16;
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "o overlaps lse");
}

TEST_F(AttentionBadInput, LseOverlapsAnInput) {
  lse_.data = q_data_.data();
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "lse overlaps q");
  lse_.data = v_data_.data() + 64;
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "lse overlaps v");
  // One query row, so that the 4 elements of lse fit in cu_seqlens_k's buffer.
  plse_ = make_view(cu_k_data_.data(), LLMK_DTYPE_F32, {kQHeads, 1});
  pq_.shape[0] = po_.shape[0] = 1;
  expect_varlen_rejected(LLMK_ERROR_OVERLAP, "lse overlaps cu_seqlens_k");
}

TEST_F(AttentionBadInput, OutputsShareMemoryWithThemselves) {
  o_.strides[2] = 0;
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "o has stride 0 in dimension 2");
  o_.strides[2] = kHeadDim;
  lse_.strides[2] = 0;
  expect_padded_rejected(LLMK_ERROR_OVERLAP, "lse has stride 0 in dimension 2");
}

TEST_F(AttentionBadInput, NegativeStride) {
  k_.strides[1] = -kKvHeads * kHeadDim;
  expect_padded_rejected(LLMK_ERROR_INVALID_STRIDE, "k has a negative stride");
  plse_.strides[1] = -1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_STRIDE, "lse has a negative stride");
}

TEST_F(AttentionBadInput, NegativeExtent) {
  q_.shape[1] = o_.shape[1] = -1;
  expect_padded_rejected(LLMK_ERROR_INVALID_SHAPE, "q has a negative extent");
}

// The host check of cu_seqlens names the offset that is wrong and writes nothing.
TEST_F(AttentionBadInput, CuSeqlensMustStartAtZero) {
  cu_q_data_[0] = 1;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "cu_seqlens_q[0] is 1; it must be 0");
  cu_q_data_[0] = 0;
  cu_k_data_[0] = -3;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "cu_seqlens_k[0] is -3; it must be 0");
}

TEST_F(AttentionBadInput, CuSeqlensMustNotDecrease) {
  set_offsets(cu_q_data_, {0, 6, 5});
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE,
                         "cu_seqlens_q[2] is 5, less than cu_seqlens_q[1] = 6");
  set_offsets(cu_q_data_, {0, 5, 10});
  set_offsets(cu_k_data_, {0, -1, 14});
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE,
                         "cu_seqlens_k[1] is -1, less than cu_seqlens_k[0] = 0");
}

TEST_F(AttentionBadInput, CuSeqlensMustEndWithinTheRows) {
  cu_q_data_[2] = 11;
  max_seqlen_q_ = 6;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "cu_seqlens_q[2] is 11, beyond total_q = 10");
  cu_q_data_[2] = 10;
  cu_k_data_[2] = 15;
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE, "cu_seqlens_k[2] is 15, beyond total_k = 14");
}

TEST_F(AttentionBadInput, QuerySequenceLongerThanMaxSeqlenQ) {
  set_offsets(cu_q_data_, {0, 2, 10});
  expect_varlen_rejected(LLMK_ERROR_INVALID_VALUE,
                         "sequence 1 has 8 queries (cu_seqlens_q[1] = 2 to cu_seqlens_q[2] = "
                         "10), more than max_seqlen_q = 5");
}

TEST_F(AttentionBadInput, EmptyCallsAreNoOps) {
  const llmk_tensor q = q_, o = o_, lse = lse_;
  q_.shape[0] = k_.shape[0] = v_.shape[0] = o_.shape[0] = lse_.shape[0] = 0;
  q_.data = k_.data = v_.data = o_.data = lse_.data = nullptr;  // empty views need no data
  EXPECT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();
  q_ = make_view(q.data, LLMK_DTYPE_F16, {kBatch, 0, kQHeads, kHeadDim});
  o_ = make_view(o.data, LLMK_DTYPE_F16, {kBatch, 0, kQHeads, kHeadDim});
  lse_ = make_view(lse.data, LLMK_DTYPE_F32, {kBatch, kQHeads, 0});
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim});
  v_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {kBatch, kKvLen, kKvHeads, kHeadDim});
  EXPECT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();
  q_ = make_view(q.data, LLMK_DTYPE_F16, {kBatch, kQLen, 0, kHeadDim});
  o_ = make_view(o.data, LLMK_DTYPE_F16, {kBatch, kQLen, 0, kHeadDim});
  lse_ = make_view(lse.data, LLMK_DTYPE_F32, {kBatch, 0, kQLen});
  EXPECT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();

  // Packed, no queries at all: max_seqlen_q may then be 0.
  pq_.shape[0] = po_.shape[0] = plse_.shape[1] = 0;
  set_offsets(cu_q_data_, {0, 0, 0});
  max_seqlen_q_ = 0;
  EXPECT_EQ(varlen(), LLMK_SUCCESS) << llmk_last_error_message();
  // Packed, no sequences: the rows are never reached.
  pq_.shape[0] = po_.shape[0] = plse_.shape[1] = kBatch * kQLen;
  cu_q_.shape[0] = cu_k_.shape[0] = 1;
  max_seqlen_q_ = kQLen;
  EXPECT_EQ(varlen(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(o_data_, o_initial_);
  EXPECT_EQ(lse_data_, lse_initial_);
}

TEST_F(AttentionBadInput, StrideOfAnExtentOfOneIsFree) {
  // One sequence, one head: those strides never reach an element, so they need no alignment.
  q_ = make_view(q_data_.data(), LLMK_DTYPE_F16, {1, kQLen, 1, kHeadDim}, {3, kHeadDim, 5, 1});
  o_ = make_view(o_data_.data(), LLMK_DTYPE_F16, {1, kQLen, 1, kHeadDim}, {7, kHeadDim, 9, 1});
  k_ = make_view(k_data_.data(), LLMK_DTYPE_F16, {1, kKvLen, 1, kHeadDim}, {1, kHeadDim, 1, 1});
  v_ = make_view(v_data_.data(), LLMK_DTYPE_F16, {1, kKvLen, 1, kHeadDim}, {1, kHeadDim, 1, 1});
  lse_ = make_view(lse_data_.data(), LLMK_DTYPE_F32, {1, 1, kQLen});
  EXPECT_EQ(padded(), LLMK_SUCCESS) << llmk_last_error_message();
}

// --- semantics ---------------------------------------------------------------------------------

uint16_t nan_bits(llmk_dtype dtype) { return dtype == LLMK_DTYPE_BF16 ? 0x7FC0 : 0x7E00; }

double decode(llmk_dtype dtype, uint16_t bits) {
  return dtype == LLMK_DTYPE_BF16 ? llmk::bf16_to_double(bits) : llmk::f16_to_double(bits);
}

uint16_t encode(llmk_dtype dtype, double value) {
  return dtype == LLMK_DTYPE_BF16 ? llmk::bf16_from_double(value) : llmk::f16_from_double(value);
}

// A padded problem with contiguous BSHD tensors: q [batch, q_len, q_heads, head_dim], k and v
// [batch, kv_len, kv_heads, head_dim], normal values (times q_scale for q) rounded to the dtype.
struct Problem {
  Problem(llmk_dtype dtype_, int64_t batch_, int64_t q_len_, int64_t kv_len_, int64_t q_heads_,
          int64_t kv_heads_, int64_t head_dim_, uint64_t seed, double q_scale = 1.0)
      : dtype(dtype_),
        batch(batch_),
        q_len(q_len_),
        kv_len(kv_len_),
        q_heads(q_heads_),
        kv_heads(kv_heads_),
        head_dim(head_dim_) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    q.resize(batch * q_len * q_heads * head_dim);
    k.resize(batch * kv_len * kv_heads * head_dim);
    v.resize(k.size());
    for (uint16_t& x : q) x = encode(dtype, q_scale * normal(rng));
    for (uint16_t& x : k) x = encode(dtype, normal(rng));
    for (uint16_t& x : v) x = encode(dtype, normal(rng));
  }
  int64_t q_index(int64_t b, int64_t i, int64_t h, int64_t d) const {
    return ((b * q_len + i) * q_heads + h) * head_dim + d;
  }
  int64_t kv_index(int64_t b, int64_t j, int64_t h, int64_t d) const {
    return ((b * kv_len + j) * kv_heads + h) * head_dim + d;
  }
  int64_t lse_index(int64_t b, int64_t h, int64_t i) const { return (b * q_heads + h) * q_len + i; }

  llmk_dtype dtype;
  int64_t batch, q_len, kv_len, q_heads, kv_heads, head_dim;
  std::vector<uint16_t> q, k, v;
};

struct Output {
  std::vector<uint16_t> o;  // like q
  std::vector<float> lse;   // [batch, q_heads, q_len]
};

// llmk_attention over contiguous views of p, o and lse NaN-poisoned first.
Output run(llmk_context* ctx, const Problem& p, const llmk_attention_config& config) {
  Output out{std::vector<uint16_t>(p.q.size(), nan_bits(p.dtype)),
             std::vector<float>(p.batch * p.q_heads * p.q_len, NAN)};
  const auto view = [&](const std::vector<uint16_t>& data, int64_t len, int64_t heads) {
    return make_view(const_cast<uint16_t*>(data.data()), p.dtype,
                     {p.batch, len, heads, p.head_dim});
  };
  const llmk_tensor q = view(p.q, p.q_len, p.q_heads), k = view(p.k, p.kv_len, p.kv_heads),
                    v = view(p.v, p.kv_len, p.kv_heads), o = view(out.o, p.q_len, p.q_heads);
  const llmk_tensor lse = make_view(out.lse.data(), LLMK_DTYPE_F32, {p.batch, p.q_heads, p.q_len});
  EXPECT_EQ(llmk_attention(ctx, &config, &q, &k, &v, &o, &lse, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  return out;
}

// The mask as llmk.h states it, with causal kept apart from the window.
struct Mask {
  bool causal = false;
  int64_t left = -1, right = -1;
};

struct Reference {
  std::vector<double> o, lse;  // the layouts of Output
};

// softmax(scale * Q K^T + mask) V for every row, in double, straight from the definitions:
// query i sits at key position i + kv_len - q_len; query head h reads kv head
// h / (q_heads / kv_heads); a row with no visible key is 0 with a log-sum-exp of -infinity.
Reference reference(const Problem& p, const Mask& mask, double scale, double softcap = 0.0) {
  Reference r{std::vector<double>(p.q.size()), std::vector<double>(p.batch * p.q_heads * p.q_len)};
  const int64_t group = p.q_heads / p.kv_heads;
  std::vector<double> s(p.kv_len);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        const int64_t at = i + p.kv_len - p.q_len;
        double max = -kInf;
        for (int64_t j = 0; j < p.kv_len; ++j) {
          const bool visible = (!mask.causal || j <= at) &&
                               (mask.right < 0 || j <= at + mask.right) &&
                               (mask.left < 0 || j >= at - mask.left);
          s[j] = -kInf;
          if (!visible) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < p.head_dim; ++d) {
            dot += decode(p.dtype, p.q[p.q_index(b, i, h, d)]) *
                   decode(p.dtype, p.k[p.kv_index(b, j, h / group, d)]);
          }
          s[j] = softcap > 0.0 ? softcap * std::tanh(scale * dot / softcap) : scale * dot;
          max = std::max(max, s[j]);
        }
        double* o = &r.o[p.q_index(b, i, h, 0)];
        if (max == -kInf) {
          r.lse[p.lse_index(b, h, i)] = -kInf;
          continue;  // o stays 0
        }
        double sum = 0.0;
        for (int64_t j = 0; j < p.kv_len; ++j) sum += std::exp(s[j] - max);
        r.lse[p.lse_index(b, h, i)] = max + std::log(sum);
        for (int64_t j = 0; j < p.kv_len; ++j) {
          const double weight = std::exp(s[j] - max) / sum;
          for (int64_t d = 0; d < p.head_dim; ++d) {
            o[d] += weight * decode(p.dtype, p.v[p.kv_index(b, j, h / group, d)]);
          }
        }
      }
    }
  }
  return r;
}

// Every element of o within one rounding of the reference (the two sum in different orders,
// which may move a value across a rounding boundary), lse within f32 rounding, and the rows with
// no visible key exactly 0 and -infinity.
void expect_near(const Problem& p, const Output& got, const Reference& want) {
  const double half_ulp = p.dtype == LLMK_DTYPE_BF16 ? 0x1p-8 : 0x1p-11;
  int failures = 0;
  for (size_t e = 0; e < want.o.size(); ++e) {
    const double value = decode(p.dtype, got.o[e]), expected = want.o[e];
    if (!(std::fabs(value - expected) <= 2 * half_ulp * std::fabs(expected) + 0x1p-24)) {
      if (++failures <= 5) ADD_FAILURE() << "o[" << e << "] is " << value << ", want " << expected;
    }
  }
  for (size_t e = 0; e < want.lse.size(); ++e) {
    const double value = got.lse[e], expected = want.lse[e];
    const bool ok = std::isinf(expected) ? value == expected
                                         : std::fabs(value - expected) <=
                                               0x1p-23 * std::max(1.0, std::fabs(expected));
    if (!ok && ++failures <= 5) {
      ADD_FAILURE() << "lse[" << e << "] is " << value << ", want " << expected;
    }
  }
  EXPECT_EQ(failures, 0);
}

llmk_attention_config config_for(const Mask& mask) {
  llmk_attention_config config;
  llmk_attention_config_init(&config);
  config.causal = mask.causal;
  config.window_left = static_cast<int32_t>(mask.left);
  config.window_right = static_cast<int32_t>(mask.right);
  return config;
}

class AttentionSemantics : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  // llmk_attention with `mask` against the reference, the scale left at its default.
  void expect_matches_reference(const Problem& p, const Mask& mask) {
    expect_near(p, run(ctx_, p, config_for(mask)),
                reference(p, mask, 1.0 / std::sqrt(static_cast<double>(p.head_dim))));
  }

  llmk_context* ctx_ = nullptr;
};

TEST_F(AttentionSemantics, FullAttentionMatchesTheReference) {
  expect_matches_reference(Problem(LLMK_DTYPE_F16, 2, 5, 9, 2, 2, 64, 1), Mask{});
  expect_matches_reference(Problem(LLMK_DTYPE_BF16, 1, 7, 3, 2, 1, 128, 2), Mask{});
  expect_matches_reference(Problem(LLMK_DTYPE_F16, 1, 4, 6, 1, 1, 96, 3), Mask{});
  expect_matches_reference(Problem(LLMK_DTYPE_BF16, 1, 3, 5, 2, 2, 256, 4), Mask{});
}

TEST_F(AttentionSemantics, CausalIsBottomRightWithFewerQueriesThanKeys) {
  // Query i sees keys 0 ... i + 5: the last query sees every key, the first all but the last 2.
  const Problem p(LLMK_DTYPE_F16, 2, 3, 8, 2, 2, 64, 5);
  expect_matches_reference(p, Mask{true, -1, -1});
  const Output out = run(ctx_, p, config_for(Mask{true, -1, -1}));
  const Output full = run(ctx_, p, config_for(Mask{}));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      const int64_t last = p.lse_index(b, h, p.q_len - 1);
      EXPECT_EQ(out.lse[last], full.lse[last]);
      EXPECT_LT(out.lse[p.lse_index(b, h, 0)], full.lse[p.lse_index(b, h, 0)]);
    }
  }
}

TEST_F(AttentionSemantics, CausalWithMoreQueriesThanKeysMasksTheFirstRows) {
  // Query i sits at key position i - 3: queries 0, 1 and 2 see no key.
  const Problem p(LLMK_DTYPE_BF16, 2, 6, 3, 2, 1, 64, 6);
  expect_matches_reference(p, Mask{true, -1, -1});
  const Output out = run(ctx_, p, config_for(Mask{true, -1, -1}));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        const bool masked = i < 3;
        EXPECT_EQ(std::isinf(out.lse[p.lse_index(b, h, i)]), masked) << b << " " << h << " " << i;
        for (int64_t d = 0; d < p.head_dim && masked; ++d) {
          ASSERT_EQ(out.o[p.q_index(b, i, h, d)], 0) << "masked row not +0";
        }
      }
    }
  }
}

TEST_F(AttentionSemantics, NoKeysGivesZeroAndMinusInfinity) {
  const Problem p(LLMK_DTYPE_F16, 2, 3, 0, 2, 2, 64, 7);
  const Output out = run(ctx_, p, config_for(Mask{}));
  for (uint16_t bits : out.o) ASSERT_EQ(bits, 0);
  for (float lse : out.lse) ASSERT_EQ(lse, -INFINITY);
}

TEST_F(AttentionSemantics, WindowsMatchTheReference) {
  const Problem square(LLMK_DTYPE_F16, 1, 9, 9, 2, 2, 64, 8);
  for (const Mask& mask : {Mask{false, 2, 1}, Mask{false, 3, -1}, Mask{false, -1, 0},
                           Mask{false, -1, 2}, Mask{false, 0, 0}, Mask{true, 2, -1}}) {
    SCOPED_TRACE(testing::Message() << "causal " << mask.causal << ", window (" << mask.left << ", "
                                    << mask.right << ")");
    expect_matches_reference(square, mask);
  }
  // Bottom-right windows: fewer queries than keys, and more (the first five rows see no key).
  expect_matches_reference(Problem(LLMK_DTYPE_BF16, 2, 4, 9, 2, 1, 64, 9), Mask{false, 2, 1});
  expect_matches_reference(Problem(LLMK_DTYPE_F16, 1, 9, 4, 2, 2, 64, 10), Mask{false, 1, 0});
}

TEST_F(AttentionSemantics, CausalWinsOverAWiderRightWindow) {
  const Problem p(LLMK_DTYPE_F16, 1, 6, 8, 2, 2, 64, 11);
  const Output causal = run(ctx_, p, config_for(Mask{true, -1, -1}));
  EXPECT_EQ(run(ctx_, p, config_for(Mask{true, -1, 3})).o, causal.o);
  EXPECT_EQ(run(ctx_, p, config_for(Mask{false, -1, 0})).o, causal.o);
  const Output causal_left = run(ctx_, p, config_for(Mask{true, 2, -1}));
  EXPECT_EQ(run(ctx_, p, config_for(Mask{true, 2, 5})).o, causal_left.o);
}

TEST_F(AttentionSemantics, DiagonalWindowCopiesV) {
  // Each query sees only the key at its own position, with probability 1: o is that row of v.
  const Problem p(LLMK_DTYPE_BF16, 2, 5, 7, 4, 2, 64, 12);
  const Output out = run(ctx_, p, config_for(Mask{false, 0, 0}));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t i = 0; i < p.q_len; ++i) {
      for (int64_t h = 0; h < p.q_heads; ++h) {
        for (int64_t d = 0; d < p.head_dim; ++d) {
          ASSERT_EQ(out.o[p.q_index(b, i, h, d)], p.v[p.kv_index(b, i + 2, h / 2, d)]);
        }
      }
    }
  }
}

TEST_F(AttentionSemantics, SoftcapMatchesTheReference) {
  // Large scores, so that the cap bends them.
  const Problem p(LLMK_DTYPE_F16, 2, 4, 6, 2, 2, 64, 13, 4.0);
  llmk_attention_config config = config_for(Mask{true, -1, -1});
  config.scale = 0.5f;
  config.softcap = 3.0f;
  const Output capped = run(ctx_, p, config);
  expect_near(p, capped, reference(p, Mask{true, -1, -1}, 0.5, 3.0));
  config.softcap = 0.0f;
  EXPECT_NE(run(ctx_, p, config).o, capped.o);
}

TEST_F(AttentionSemantics, ScaleZeroMeansOneOverSqrtHeadDim) {
  const Problem p(LLMK_DTYPE_F16, 1, 3, 5, 2, 2, 96, 14);
  llmk_attention_config config = config_for(Mask{});
  const Output by_default = run(ctx_, p, config);
  config.scale = static_cast<float>(1.0 / std::sqrt(96.0));
  const Output explicit_scale = run(ctx_, p, config);
  EXPECT_EQ(by_default.o, explicit_scale.o);
  EXPECT_EQ(by_default.lse, explicit_scale.lse);
  config.scale = 0.3f;
  expect_near(p, run(ctx_, p, config), reference(p, Mask{}, 0.3f));
}

TEST_F(AttentionSemantics, GroupedAndMultiQueryHeads) {
  // Query head h reads kv head h / (q_heads / kv_heads): 6 heads over 3, 2 and 1 kv heads.
  for (int64_t kv_heads : {3, 2, 1}) {
    SCOPED_TRACE(kv_heads);
    expect_matches_reference(Problem(LLMK_DTYPE_BF16, 2, 4, 5, 6, kv_heads, 64, 15),
                             Mask{true, -1, -1});
  }
}

// q, k and v of the sequences of one packed batch, and the outputs, in the packed layouts.
struct Packed {
  std::vector<uint16_t> q, k, v, o;
  std::vector<float> lse;  // [q_heads, total_q]
  std::vector<int32_t> cu_q, cu_k;
};

// The batch-1 problems `seqs` packed one after another, with `spare` unused rows after them.
Packed pack(const std::vector<Problem>& seqs, int64_t spare) {
  const Problem& first = seqs.front();
  const int64_t q_row = first.q_heads * first.head_dim, k_row = first.kv_heads * first.head_dim;
  Packed packed;
  packed.cu_q = {0};
  packed.cu_k = {0};
  for (const Problem& s : seqs) {
    packed.q.insert(packed.q.end(), s.q.begin(), s.q.end());
    packed.k.insert(packed.k.end(), s.k.begin(), s.k.end());
    packed.v.insert(packed.v.end(), s.v.begin(), s.v.end());
    packed.cu_q.push_back(packed.cu_q.back() + static_cast<int32_t>(s.q_len));
    packed.cu_k.push_back(packed.cu_k.back() + static_cast<int32_t>(s.kv_len));
  }
  packed.q.resize(packed.q.size() + spare * q_row);
  packed.k.resize(packed.k.size() + spare * k_row);
  packed.v.resize(packed.k.size());
  packed.o.assign(packed.q.size(), nan_bits(first.dtype));
  packed.lse.assign(first.q_heads * (packed.cu_q.back() + spare), NAN);
  return packed;
}

llmk_status run_varlen(llmk_context* ctx, const Problem& like, Packed& packed, int64_t max_seqlen_q,
                       const llmk_attention_config& config) {
  const int64_t total_q = static_cast<int64_t>(packed.q.size()) / (like.q_heads * like.head_dim);
  const int64_t total_k = static_cast<int64_t>(packed.k.size()) / (like.kv_heads * like.head_dim);
  const int64_t batch = static_cast<int64_t>(packed.cu_q.size()) - 1;
  const llmk_tensor q =
      make_view(packed.q.data(), like.dtype, {total_q, like.q_heads, like.head_dim});
  const llmk_tensor k =
      make_view(packed.k.data(), like.dtype, {total_k, like.kv_heads, like.head_dim});
  const llmk_tensor v =
      make_view(packed.v.data(), like.dtype, {total_k, like.kv_heads, like.head_dim});
  const llmk_tensor o =
      make_view(packed.o.data(), like.dtype, {total_q, like.q_heads, like.head_dim});
  const llmk_tensor lse = make_view(packed.lse.data(), LLMK_DTYPE_F32, {like.q_heads, total_q});
  const llmk_tensor cu_q = make_view(packed.cu_q.data(), LLMK_DTYPE_I32, {batch + 1});
  const llmk_tensor cu_k = make_view(packed.cu_k.data(), LLMK_DTYPE_I32, {batch + 1});
  return llmk_attention_varlen(ctx, &config, &q, &k, &v, &cu_q, &cu_k, max_seqlen_q, &o, &lse,
                               nullptr);
}

TEST_F(AttentionSemantics, VarlenEqualsEachSequenceAlone) {
  // Lengths that differ, an empty query sequence and an empty key sequence; two spare rows after
  // the last sequence stay untouched.
  const int64_t q_lens[] = {3, 0, 5, 2, 4}, kv_lens[] = {6, 4, 5, 0, 2};
  std::vector<Problem> seqs;
  for (int s = 0; s < 5; ++s) {
    seqs.emplace_back(LLMK_DTYPE_BF16, 1, q_lens[s], kv_lens[s], 4, 2, 128, 20 + s);
  }
  Packed packed = pack(seqs, 2);
  llmk_attention_config config = config_for(Mask{true, 3, -1});
  config.softcap = 5.0f;
  ASSERT_EQ(run_varlen(ctx_, seqs[0], packed, 5, config), LLMK_SUCCESS)
      << llmk_last_error_message();
  const int64_t row = 4 * 128, total_q = packed.cu_q.back() + 2;
  for (int s = 0; s < 5; ++s) {
    SCOPED_TRACE(s);
    const Output alone = run(ctx_, seqs[s], config);
    const int64_t first = packed.cu_q[s];
    EXPECT_TRUE(std::equal(alone.o.begin(), alone.o.end(), packed.o.begin() + first * row));
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t i = 0; i < q_lens[s]; ++i) {
        EXPECT_EQ(packed.lse[h * total_q + first + i], alone.lse[seqs[s].lse_index(0, h, i)]);
      }
    }
  }
  for (size_t e = packed.cu_q.back() * row; e < packed.o.size(); ++e) {
    ASSERT_EQ(packed.o[e], nan_bits(LLMK_DTYPE_BF16)) << "spare row of o written";
  }
  for (int64_t h = 0; h < 4; ++h) {
    for (int64_t r = packed.cu_q.back(); r < total_q; ++r) {
      EXPECT_TRUE(std::isnan(packed.lse[h * total_q + r])) << "spare row of lse written";
    }
  }
}

TEST_F(AttentionSemantics, VarlenEqualsPaddedWithDropout) {
  // Sequences of one length: the padded batch is already packed. The dropout mask depends on the
  // sequence index, so the two entries agree only if they count sequences alike.
  const Problem p(LLMK_DTYPE_F16, 3, 4, 6, 4, 2, 64, 30);
  llmk_attention_config config = config_for(Mask{true, -1, -1});
  config.dropout_p = 0.3f;
  config.dropout_seed = 0x0123456789ABCDEFull;
  config.dropout_offset = 17;
  const Output padded = run(ctx_, p, config);
  std::vector<Problem> seqs;
  for (int64_t b = 0; b < p.batch; ++b) {
    seqs.emplace_back(p.dtype, 1, p.q_len, p.kv_len, p.q_heads, p.kv_heads, p.head_dim, 0);
    const int64_t q_part = p.q_len * p.q_heads * p.head_dim;
    const int64_t k_part = p.kv_len * p.kv_heads * p.head_dim;
    seqs.back().q.assign(p.q.begin() + b * q_part, p.q.begin() + (b + 1) * q_part);
    seqs.back().k.assign(p.k.begin() + b * k_part, p.k.begin() + (b + 1) * k_part);
    seqs.back().v.assign(p.v.begin() + b * k_part, p.v.begin() + (b + 1) * k_part);
  }
  Packed packed = pack(seqs, 0);
  ASSERT_EQ(run_varlen(ctx_, p, packed, p.q_len, config), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(packed.o, padded.o);
  const int64_t total_q = p.batch * p.q_len;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        EXPECT_EQ(packed.lse[h * total_q + b * p.q_len + i], padded.lse[p.lse_index(b, h, i)]);
      }
    }
  }
}

TEST_F(AttentionSemantics, StridedBhsdViewsEqualBshd) {
  // q, k, v and o stored [batch, heads, seq, head_dim], lse stored [q_len, batch, q_heads]: the
  // same results as the contiguous layouts, bit for bit.
  const Problem p(LLMK_DTYPE_BF16, 2, 5, 7, 4, 2, 64, 40);
  const llmk_attention_config config = config_for(Mask{true, 4, -1});
  const Output bshd = run(ctx_, p, config);
  const int64_t D = p.head_dim;
  const auto to_bhsd = [&](const std::vector<uint16_t>& x, int64_t len, int64_t heads) {
    std::vector<uint16_t> y(x.size());
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t t = 0; t < len; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t d = 0; d < D; ++d)
            y[((b * heads + h) * len + t) * D + d] = x[((b * len + t) * heads + h) * D + d];
    return y;
  };
  const auto view = [&](std::vector<uint16_t>& x, int64_t len, int64_t heads) {
    return make_view(x.data(), p.dtype, {p.batch, len, heads, D}, {heads * len * D, D, len * D, 1});
  };
  std::vector<uint16_t> q = to_bhsd(p.q, p.q_len, p.q_heads),
                        k = to_bhsd(p.k, p.kv_len, p.kv_heads),
                        v = to_bhsd(p.v, p.kv_len, p.kv_heads), o(p.q.size(), nan_bits(p.dtype));
  std::vector<float> lse(bshd.lse.size(), NAN);
  const llmk_tensor qv = view(q, p.q_len, p.q_heads), kv = view(k, p.kv_len, p.kv_heads),
                    vv = view(v, p.kv_len, p.kv_heads), ov = view(o, p.q_len, p.q_heads);
  const llmk_tensor lv = make_view(lse.data(), LLMK_DTYPE_F32, {p.batch, p.q_heads, p.q_len},
                                   {p.q_heads, 1, p.batch * p.q_heads});
  ASSERT_EQ(llmk_attention(ctx_, &config, &qv, &kv, &vv, &ov, &lv, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(o, to_bhsd(bshd.o, p.q_len, p.q_heads));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.q_heads; ++h)
      for (int64_t i = 0; i < p.q_len; ++i)
        EXPECT_EQ(lse[(i * p.batch + b) * p.q_heads + h], bshd.lse[p.lse_index(b, h, i)]);
}

TEST_F(AttentionSemantics, FusedQkvSlicesEqualSeparateTensors) {
  const Problem p(LLMK_DTYPE_F16, 2, 6, 6, 4, 2, 64, 41);
  const llmk_attention_config config = config_for(Mask{true, -1, -1});
  const Output separate = run(ctx_, p, config);
  const int64_t D = p.head_dim, width = (p.q_heads + 2 * p.kv_heads) * D;
  std::vector<uint16_t> qkv(p.batch * p.q_len * width);
  for (int64_t t = 0; t < p.batch * p.q_len; ++t) {
    std::copy_n(&p.q[t * p.q_heads * D], p.q_heads * D, &qkv[t * width]);
    std::copy_n(&p.k[t * p.kv_heads * D], p.kv_heads * D, &qkv[t * width + p.q_heads * D]);
    std::copy_n(&p.v[t * p.kv_heads * D], p.kv_heads * D,
                &qkv[t * width + (p.q_heads + p.kv_heads) * D]);
  }
  const auto slice = [&](int64_t head_offset, int64_t heads) {
    return make_view(&qkv[head_offset * D], p.dtype, {p.batch, p.q_len, heads, D},
                     {p.q_len * width, width, D, 1});
  };
  const llmk_tensor q = slice(0, p.q_heads), k = slice(p.q_heads, p.kv_heads),
                    v = slice(p.q_heads + p.kv_heads, p.kv_heads);
  std::vector<uint16_t> o(p.q.size(), nan_bits(p.dtype));
  const llmk_tensor ov = make_view(o.data(), p.dtype, {p.batch, p.q_len, p.q_heads, D});
  ASSERT_EQ(llmk_attention(ctx_, &config, &q, &k, &v, &ov, nullptr, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(o, separate.o);
}

// --- dropout -----------------------------------------------------------------------------------

TEST(AttentionPhilox, MatchesRandom123KnownAnswers) {
  // kat_vectors of Random123 for philox4x32_10.
  const auto check = [](llmk::Philox4 counter, uint32_t key0, uint32_t key1,
                        llmk::Philox4 expected) {
    const llmk::Philox4 got = llmk::philox4x32_10(counter, key0, key1);
    for (int w = 0; w < 4; ++w) EXPECT_EQ(got.w[w], expected.w[w]) << w;
  };
  check({{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}});
  check({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
        {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}});
  check({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
        {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}});
}

TEST_F(AttentionSemantics, DropoutMaskIsPhiloxAsDefined) {
  // q = 0 makes every probability 1/64, and v = identity (kv_len = head_dim) puts probability j
  // of each row in o's element j: a dropped one reads 0, a kept one (1/64) / (1 - p).
  Problem p(LLMK_DTYPE_F16, 2, 128, 64, 4, 2, 64, 50);
  std::fill(p.q.begin(), p.q.end(), 0);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t j = 0; j < p.kv_len; ++j)
      for (int64_t h = 0; h < p.kv_heads; ++h)
        for (int64_t d = 0; d < p.head_dim; ++d)
          p.v[p.kv_index(b, j, h, d)] = encode(p.dtype, d == j ? 1.0 : 0.0);
  llmk_attention_config config = config_for(Mask{});
  config.dropout_p = 0.25f;
  config.dropout_seed = 0xFEDCBA9876543210ull;
  config.dropout_offset = 7;
  const Output out = run(ctx_, p, config);
  const uint16_t kept = encode(p.dtype, 1.0 / 64 / 0.75);
  const uint32_t threshold = 1u << 30;  // floor(0.25 * 2^32)
  int64_t dropped = 0, mismatches = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        for (int64_t j = 0; j < p.kv_len; ++j) {
          const llmk::Philox4 words =
              llmk::philox4x32_10({{static_cast<uint32_t>(j / 4), static_cast<uint32_t>(i),
                                    static_cast<uint32_t>(b * p.q_heads + h), 7}},
                                  0x76543210u, 0xFEDCBA98u);
          const bool drop = words.w[j % 4] < threshold;
          dropped += drop;
          const uint16_t got = out.o[p.q_index(b, i, h, j)];
          if (got != (drop ? 0 : kept) && ++mismatches <= 5) {
            ADD_FAILURE() << "o[" << b << ", " << i << ", " << h << ", " << j << "] is "
                          << decode(p.dtype, got) << ", dropped: " << drop;
          }
        }
        EXPECT_NEAR(out.lse[p.lse_index(b, h, i)], std::log(64.0), 1e-6);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  // 65536 elements: a standard deviation of 0.0017 around 0.25.
  EXPECT_NEAR(static_cast<double>(dropped) / (p.batch * p.q_heads * p.q_len * p.kv_len), 0.25,
              0.01);
}

TEST_F(AttentionSemantics, DropoutDependsOnSeedAndOffsetAlone) {
  const Problem p(LLMK_DTYPE_BF16, 2, 8, 12, 4, 2, 64, 51);
  llmk_attention_config config = config_for(Mask{true, -1, -1});
  const Output plain = run(ctx_, p, config);
  config.dropout_p = 0.2f;
  config.dropout_seed = 42;
  config.dropout_offset = 3;
  const Output first = run(ctx_, p, config);
  const Output again = run(ctx_, p, config);
  EXPECT_EQ(first.o, again.o);
  EXPECT_NE(first.o, plain.o);
  EXPECT_EQ(first.lse, plain.lse) << "lse is that of the scores, before dropout";
  config.dropout_seed = 42ull | (1ull << 32);  // the high word of the seed is the second key
  EXPECT_NE(run(ctx_, p, config).o, first.o);
  config.dropout_seed = 43;
  EXPECT_NE(run(ctx_, p, config).o, first.o);
  config.dropout_seed = 42;
  config.dropout_offset = 4;
  EXPECT_NE(run(ctx_, p, config).o, first.o);
}

TEST_F(AttentionSemantics, DropoutZeroIsNoDropout) {
  const Problem p(LLMK_DTYPE_F16, 1, 5, 9, 2, 1, 128, 52);
  llmk_attention_config config = config_for(Mask{});
  const Output plain = run(ctx_, p, config);
  config.dropout_p = 0.0f;
  config.dropout_seed = 99;
  config.dropout_offset = 5;
  const Output zero = run(ctx_, p, config);
  EXPECT_EQ(zero.o, plain.o);
  EXPECT_EQ(zero.lse, plain.lse);
}

}  // namespace attention_test
