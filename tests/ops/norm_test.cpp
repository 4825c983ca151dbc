// The norm ops on the CPU context: one test per kind of bad argument (each with its own status, a
// message naming the argument, and outputs left untouched; the checks are the shared ones of
// core/tensor.hpp, so these cover them for every op), and the layouts that are allowed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/testing.hpp"

using namespace llmk_test;

namespace {

// --- bad arguments -----------------------------------------------------------------------------

// rms_norm over a 4 x 64 f32 x, with y poisoned: each test breaks one thing.
class BadInput : public testing::Test {
 protected:
  static constexpr int64_t kRows = 4, kHidden = 64;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(1);
    x_data_ = random_buffer(LLMK_DTYPE_F32, kRows * kHidden + 8, rng);
    w_data_ = random_buffer(LLMK_DTYPE_F32, kHidden + 8, rng);
    y_data_ = nan_buffer(LLMK_DTYPE_F32, kRows * kHidden + 8);
    x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kRows, kHidden});
    w_ = make_view(w_data_.data(), LLMK_DTYPE_F32, {kHidden});
    y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {kRows, kHidden});
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  // The call fails with `status`, names `argument` in its message and leaves y untouched.
  void expect_rejected(llmk_status status, const char* argument, float eps = 1e-6f) {
    const llmk_status got = llmk_rms_norm(ctx_, x_ptr_, w_ptr_, eps, y_ptr_, nullptr);
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind("rms_norm: ", 0), 0u) << message;
    EXPECT_NE(message.find(argument), std::string::npos) << message;
    for (size_t i = 0; i < y_data_.size() / 4; ++i) {
      float v;
      std::memcpy(&v, y_data_.data() + 4 * i, 4);
      ASSERT_TRUE(std::isnan(v)) << "y[" << i << "] written by a rejected call";
    }
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> x_data_, w_data_, y_data_;
  llmk_tensor x_{}, w_{}, y_{};
  const llmk_tensor* x_ptr_ = &x_;
  const llmk_tensor* w_ptr_ = &w_;
  const llmk_tensor* y_ptr_ = &y_;
};

TEST_F(BadInput, ValidCallSucceeds) {
  ASSERT_EQ(llmk_rms_norm(ctx_, &x_, &w_, 1e-6f, &y_, nullptr), LLMK_SUCCESS);
}

TEST_F(BadInput, NullContext) {
  EXPECT_EQ(llmk_rms_norm(nullptr, &x_, &w_, 1e-6f, &y_, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(BadInput, NullTensor) {
  w_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "weight");
}

TEST_F(BadInput, NullData) {
  x_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "x.data");
}

TEST_F(BadInput, UnknownDtype) {
  w_.dtype = 99;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "weight");
}

TEST_F(BadInput, UnsupportedDtype) {
  x_.dtype = w_.dtype = y_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "x has dtype i32");
}

TEST_F(BadInput, DtypeMismatch) {
  w_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "weight is bf16 but x is f32");
}

TEST_F(BadInput, ShapeMismatchBetweenXAndY) {
  y_.shape[0] = kRows - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "y has extent 3 in dimension 0 but x has 4");
}

TEST_F(BadInput, WeightLengthMismatch) {
  w_.shape[0] = kHidden - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "weight has 63 elements, x rows have 64");
}

TEST_F(BadInput, NdimOutOfRange) {
  x_.ndim = LLMK_MAX_DIMS + 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "x has ndim 9");
}

TEST_F(BadInput, ScalarX) {
  x_.ndim = 0;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "x has 0 dimensions");
}

TEST_F(BadInput, NegativeExtent) {
  x_.shape[0] = -4;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "x has a negative extent");
}

TEST_F(BadInput, NegativeStride) {
  x_.strides[0] = -kHidden;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "x has a negative stride");
}

TEST_F(BadInput, OverflowingStride) {
  y_.strides[0] = INT64_MAX / 2;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "y reaches beyond the address space");
}

TEST_F(BadInput, LastDimensionNotContiguous) {
  x_.shape[1] = kHidden / 2;
  x_.strides[1] = 2;
  y_.shape[1] = w_.shape[0] = kHidden / 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "x must be contiguous in dimension 1");
}

TEST_F(BadInput, Misaligned) {
  x_.data = x_data_.data() + 2;  // a float at an odd half-word
  expect_rejected(LLMK_ERROR_MISALIGNED, "x.data");
}

TEST_F(BadInput, OutputOverlapsInput) {
  y_.data = static_cast<float*>(x_.data) + 1;  // shifted by one element: neither disjoint nor same
  const llmk_status got = llmk_rms_norm(ctx_, &x_, &w_, 1e-6f, &y_, nullptr);
  EXPECT_EQ(got, LLMK_ERROR_OVERLAP);
  EXPECT_NE(std::string(llmk_last_error_message()).find("y overlaps x"), std::string::npos);
}

TEST_F(BadInput, OutputRowsOverlapEachOther) {
  y_.strides[0] = 0;
  expect_rejected(LLMK_ERROR_OVERLAP, "y has stride 0 in dimension 0");
}

TEST_F(BadInput, InvalidEps) {
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "eps", -1.0f);
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "eps", NAN);
}

TEST_F(BadInput, TooManyUnmergeableLeadingDimensions) {
  // [2, 2, 2, 2, 4] with gaps between every leading dimension: four strided row dimensions.
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {2, 2, 2, 2, 4}, {80, 24, 11, 5, 1});
  y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {2, 2, 2, 2, 4}, {80, 24, 11, 5, 1});
  w_.shape[0] = 4;
  expect_rejected(LLMK_ERROR_UNSUPPORTED, "at most 3");
}

// --- layouts that are allowed ------------------------------------------------------------------

TEST(Layouts, ColumnBlocksOfOneBufferDoNotOverlap) {
  // x and y as the two halves of each row of one [rows, 2 * hidden] buffer.
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::mt19937_64 rng(2);
  std::vector<uint8_t> buffer = random_buffer(LLMK_DTYPE_F32, 3 * 16, rng);
  std::vector<uint8_t> weight = random_buffer(LLMK_DTYPE_F32, 8, rng, 1.0, 0.1);
  float* base = reinterpret_cast<float*>(buffer.data());
  const llmk_tensor x = make_view(base, LLMK_DTYPE_F32, {3, 8}, {16, 1});
  const llmk_tensor y = make_view(base + 8, LLMK_DTYPE_F32, {3, 8}, {16, 1});
  const llmk_tensor w = make_view(weight.data(), LLMK_DTYPE_F32, {8});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &w, 1e-6f, &y, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  llmk_context_destroy(ctx);
}

TEST(Layouts, ShiftedRowsOfOneFusedBufferOverlap) {
  // Rows of 24 floats (a fused [tokens, 3 * hidden] buffer), hidden 8: x is rows 0-3 and y rows
  // 1-4 of the same columns, so y's row i is x's row i + 1. The period is not a power of two and
  // y starts after x: the case a wrapped unsigned remainder once let through.
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::mt19937_64 rng(4);
  std::vector<uint8_t> buffer = random_buffer(LLMK_DTYPE_F32, 5 * 24, rng);
  std::vector<uint8_t> weight = random_buffer(LLMK_DTYPE_F32, 8, rng, 1.0, 0.1);
  float* base = reinterpret_cast<float*>(buffer.data());
  const llmk_tensor x = make_view(base, LLMK_DTYPE_F32, {4, 8}, {24, 1});
  const llmk_tensor y = make_view(base + 24, LLMK_DTYPE_F32, {4, 8}, {24, 1});
  const llmk_tensor w = make_view(weight.data(), LLMK_DTYPE_F32, {8});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &w, 1e-6f, &y, nullptr), LLMK_ERROR_OVERLAP);
  EXPECT_EQ(llmk_rms_norm(ctx, &y, &w, 1e-6f, &x, nullptr), LLMK_ERROR_OVERLAP);
  llmk_context_destroy(ctx);
}

TEST(Layouts, EmptyInputWithUnmergeableDimensionsIsANoOp) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  float w[8] = {1, 1, 1, 1, 1, 1, 1, 1}, storage[1];
  const llmk_tensor x =
      make_view(storage, LLMK_DTYPE_F32, {2, 2, 2, 0, 8}, {5000, 1000, 100, 10, 1});
  const llmk_tensor weight = make_view(w, LLMK_DTYPE_F32, {8});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &weight, 1e-6f, &x, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  llmk_context_destroy(ctx);
}

TEST(Layouts, EmptyViewWithHugeExtentsIsANoOp) {
  // The extents before the zero multiply past 2^63; the view is still empty, not too large.
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  float w[4] = {1, 1, 1, 1}, storage[1];
  const llmk_tensor x = make_view(storage, LLMK_DTYPE_F32, {int64_t{1} << 62, 4, 0, 4});
  const llmk_tensor weight = make_view(w, LLMK_DTYPE_F32, {4});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &weight, 1e-6f, &x, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  llmk_context_destroy(ctx);
}

TEST(Layouts, EmptyInputIsANoOp) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  float w = 1.0f;
  const llmk_tensor x = make_view(nullptr, LLMK_DTYPE_F32, {0, 1});
  const llmk_tensor y = make_view(nullptr, LLMK_DTYPE_F32, {0, 1});
  const llmk_tensor weight = make_view(&w, LLMK_DTYPE_F32, {1});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &weight, 1e-6f, &y, nullptr), LLMK_SUCCESS);
  llmk_context_destroy(ctx);
}

TEST(Layouts, ResidualMustNotAliasX) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::mt19937_64 rng(3);
  std::vector<uint8_t> a = random_buffer(LLMK_DTYPE_F32, 32, rng);
  std::vector<uint8_t> w = random_buffer(LLMK_DTYPE_F32, 8, rng);
  std::vector<uint8_t> y = nan_buffer(LLMK_DTYPE_F32, 32);
  const llmk_tensor x = make_view(a.data(), LLMK_DTYPE_F32, {4, 8});
  const llmk_tensor weight = make_view(w.data(), LLMK_DTYPE_F32, {8});
  const llmk_tensor out = make_view(y.data(), LLMK_DTYPE_F32, {4, 8});
  EXPECT_EQ(llmk_add_rms_norm(ctx, &x, &x, &weight, 1e-6f, &out, nullptr), LLMK_ERROR_OVERLAP);
  EXPECT_NE(std::string(llmk_last_error_message()).find("residual overlaps x"), std::string::npos);
  llmk_context_destroy(ctx);
}

}  // namespace
