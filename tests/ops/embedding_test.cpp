// llmk_embedding on the CPU context: one test per argument check (its status, a message naming the
// argument, y left untouched) and the refusal of out-of-range ids.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace embedding_test {

// 4 ids into an 8 x 16 f32 table, y poisoned with NaN: each test breaks one thing.
class EmbeddingBadInput : public testing::Test {
 protected:
  static constexpr int64_t kTokens = 4, kVocab = 8, kHidden = 16;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(1);
    table_data_ = random_buffer(LLMK_DTYPE_F32, kVocab * kHidden + 8, rng);
    y_data_ = nan_buffer(LLMK_DTYPE_F32, kTokens * kHidden + 8);
    ids_ = make_view(ids_data_.data(), LLMK_DTYPE_I32, {kTokens});
    table_ = make_view(table_data_.data(), LLMK_DTYPE_F32, {kVocab, kHidden});
    y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {kTokens, kHidden});
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status call() { return llmk_embedding(ctx_, ids_ptr_, table_ptr_, y_ptr_, nullptr); }

  bool y_untouched() const {
    for (size_t i = 0; i < y_data_.size() / 4; ++i) {
      float v;
      std::memcpy(&v, y_data_.data() + 4 * i, 4);
      if (!std::isnan(v)) return false;
    }
    return true;
  }

  // The call fails with `status`, names `argument` in its message and leaves y untouched.
  void expect_rejected(llmk_status status, const char* argument) {
    const llmk_status got = call();
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind("embedding: ", 0), 0u) << message;
    EXPECT_NE(message.find(argument), std::string::npos) << message;
    EXPECT_TRUE(y_untouched()) << "y written by a rejected call";
  }

  float table_at(int64_t row, int64_t column) const {
    float v;
    std::memcpy(&v, table_data_.data() + 4 * (row * table_.strides[0] + column), 4);
    return v;
  }
  float y_at(int64_t row, int64_t column) const {
    float v;
    std::memcpy(&v, y_data_.data() + 4 * (row * y_.strides[0] + column), 4);
    return v;
  }

  llmk_context* ctx_ = nullptr;
  std::vector<int32_t> ids_data_ = {0, 7, 3, 3};
  std::vector<uint8_t> table_data_, y_data_;
  llmk_tensor ids_{}, table_{}, y_{};
  const llmk_tensor* ids_ptr_ = &ids_;
  const llmk_tensor* table_ptr_ = &table_;
  const llmk_tensor* y_ptr_ = &y_;
};

TEST_F(EmbeddingBadInput, ValidCallGathersRows) {
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t j = 0; j < kHidden; ++j) ASSERT_EQ(y_at(t, j), table_at(ids_data_[t], j));
  }
}

TEST_F(EmbeddingBadInput, NullContext) {
  EXPECT_EQ(llmk_embedding(nullptr, &ids_, &table_, &y_, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(EmbeddingBadInput, NullIds) {
  ids_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "ids is NULL");
}

TEST_F(EmbeddingBadInput, NullTable) {
  table_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "table is NULL");
}

TEST_F(EmbeddingBadInput, NullY) {
  y_ptr_ = nullptr;
  EXPECT_EQ(call(), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("y is NULL"), std::string::npos);
}

TEST_F(EmbeddingBadInput, NullData) {
  table_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "table.data");
}

TEST_F(EmbeddingBadInput, UnknownDtype) {
  ids_.dtype = 99;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "ids has dtype 99");
}

TEST_F(EmbeddingBadInput, FloatIds) {
  ids_.dtype = LLMK_DTYPE_F32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "ids has dtype f32");
}

TEST_F(EmbeddingBadInput, IntegerTable) {
  table_.dtype = y_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "table has dtype i32");
}

TEST_F(EmbeddingBadInput, DtypeMismatch) {
  y_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "y is bf16 but table is f32");
}

TEST_F(EmbeddingBadInput, IdsNdim) {
  ids_ = make_view(ids_data_.data(), LLMK_DTYPE_I32, {2, 2});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "ids has 2 dimensions; it must have 1");
}

TEST_F(EmbeddingBadInput, TableNdim) {
  table_ = make_view(table_data_.data(), LLMK_DTYPE_F32, {kVocab * kHidden});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "table has 1 dimensions; it must have 2");
}

TEST_F(EmbeddingBadInput, YNdim) {
  y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {1, kTokens, kHidden});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "y has 3 dimensions; it must have 2");
}

TEST_F(EmbeddingBadInput, TokenCountMismatch) {
  y_.shape[0] = kTokens - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "y has 3 rows, ids has 4 tokens");
}

TEST_F(EmbeddingBadInput, HiddenMismatch) {
  y_.shape[1] = kHidden - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "y rows have 15 elements, table rows have 16");
}

TEST_F(EmbeddingBadInput, NegativeExtent) {
  ids_.shape[0] = -1;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "ids has a negative extent");
}

TEST_F(EmbeddingBadInput, NegativeStride) {
  ids_.strides[0] = -1;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "ids has a negative stride");
}

TEST_F(EmbeddingBadInput, OverflowingStride) {
  table_.strides[0] = INT64_MAX / 4;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "table reaches beyond the address space");
}

TEST_F(EmbeddingBadInput, TableRowsNotContiguous) {
  table_.shape[1] = y_.shape[1] = kHidden / 2;
  table_.strides[1] = 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "table must be contiguous in dimension 1");
}

TEST_F(EmbeddingBadInput, YRowsNotContiguous) {
  table_.shape[1] = y_.shape[1] = kHidden / 2;
  y_.strides[1] = 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "y must be contiguous in dimension 1");
}

TEST_F(EmbeddingBadInput, Misaligned) {
  y_.data = y_data_.data() + 2;
  expect_rejected(LLMK_ERROR_MISALIGNED, "y.data");
}

TEST_F(EmbeddingBadInput, YOverlapsTable) {
  y_.data = table_data_.data();
  EXPECT_EQ(call(), LLMK_ERROR_OVERLAP);
  EXPECT_NE(std::string(llmk_last_error_message()).find("y overlaps table"), std::string::npos)
      << llmk_last_error_message();
}

TEST_F(EmbeddingBadInput, YOverlapsIds) {
  ids_.data = y_data_.data();  // the gather would overwrite the ids it reads
  EXPECT_EQ(call(), LLMK_ERROR_OVERLAP);
  EXPECT_NE(std::string(llmk_last_error_message()).find("y overlaps ids"), std::string::npos)
      << llmk_last_error_message();
}

TEST_F(EmbeddingBadInput, YRowsOverlapEachOther) {
  y_.strides[0] = 0;
  expect_rejected(LLMK_ERROR_OVERLAP, "y has stride 0 in dimension 0");
}

// --- semantics ---------------------------------------------------------------------------------

TEST_F(EmbeddingBadInput, IdPastTheTableIsRefusedBeforeAnyWrite) {
  ids_data_[2] = kVocab;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "token 2 has id 8, outside [0, 8) of table");
}

TEST_F(EmbeddingBadInput, NegativeIdIsRefusedBeforeAnyWrite) {
  ids_data_[3] = -1;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "token 3 has id -1");
}

TEST_F(EmbeddingBadInput, EmptyTableRefusesEveryId) {
  table_.shape[0] = 0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "token 0 has id 0, outside [0, 0)");
}

TEST_F(EmbeddingBadInput, StridedI64IdsAndPaddedRows) {
  const std::vector<int64_t> ids = {5, -100, 1, -100, 5};  // the -100 are gaps, never read
  ids_ = make_view(const_cast<int64_t*>(ids.data()), LLMK_DTYPE_I64, {3}, {2});
  table_ = make_view(table_data_.data(), LLMK_DTYPE_F32, {kVocab, kHidden / 2}, {kHidden, 1});
  y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {3, kHidden / 2}, {kHidden + 3, 1});
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t j = 0; j < kHidden / 2; ++j) ASSERT_EQ(y_at(t, j), table_at(ids[2 * t], j));
    for (int64_t j = kHidden / 2; j < kHidden + 3 && t < 2; ++j)
      ASSERT_TRUE(std::isnan(y_at(t, j)));
  }
}

TEST_F(EmbeddingBadInput, NoTokensIsANoOp) {
  ids_.shape[0] = y_.shape[0] = 0;
  ids_.data = nullptr;
  EXPECT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_TRUE(y_untouched());
}

}  // namespace embedding_test
