// Tests that need no GPU: every shared vector on the CPU context, the API's basics, and one test
// per kind of bad argument (each with its own status, a message naming the argument, and outputs
// left untouched).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "common/testing.hpp"
#include "common/vectors.hpp"

using namespace llmk_test;

namespace {

// --- the shared vectors ------------------------------------------------------------------------

class CpuVectors : public testing::TestWithParam<VectorCase> {};

TEST_P(CpuVectors, MatchesExpected) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  for (const std::string& problem : run_vector_case(ctx, GetParam(), vectors_dir())) {
    ADD_FAILURE() << GetParam().name << ": " << problem;
  }
  llmk_context_destroy(ctx);
}

INSTANTIATE_TEST_SUITE_P(Manifest, CpuVectors, testing::ValuesIn(load_manifest(vectors_dir())),
                         [](const auto& info) { return test_identifier(info.param); });

// --- basics ------------------------------------------------------------------------------------

TEST(Api, Versions) {
  EXPECT_EQ(llmk_abi_version(), LLMK_ABI_VERSION);
  const std::string expected = std::to_string(LLMK_VERSION_MAJOR) + "." +
                               std::to_string(LLMK_VERSION_MINOR) + "." +
                               std::to_string(LLMK_VERSION_PATCH);
  EXPECT_EQ(expected, llmk_version());
}

TEST(Api, StatusStringsAreDistinct) {
  std::set<std::string> seen;
  for (int s = LLMK_SUCCESS; s <= LLMK_ERROR_INTERNAL; ++s) {
    const std::string text = llmk_status_string(static_cast<llmk_status>(s));
    EXPECT_NE(text, "unknown status") << s;
    EXPECT_TRUE(seen.insert(text).second) << text;
  }
  EXPECT_STREQ(llmk_status_string(static_cast<llmk_status>(9999)), "unknown status");
}

TEST(Api, DtypeBits) {
  EXPECT_EQ(llmk_dtype_bits(LLMK_DTYPE_F32), 32);
  EXPECT_EQ(llmk_dtype_bits(LLMK_DTYPE_BF16), 16);
  EXPECT_EQ(llmk_dtype_bits(LLMK_DTYPE_I4), 4);
  EXPECT_EQ(llmk_dtype_bits(LLMK_DTYPE_I64), 64);
  EXPECT_EQ(llmk_dtype_bits(static_cast<llmk_dtype>(42)), 0);
}

TEST(Api, ContextInfo) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 7, &ctx), LLMK_SUCCESS);
  llmk_backend backend = LLMK_BACKEND_CUDA;
  int32_t device = 7;
  ASSERT_EQ(llmk_context_info(ctx, &backend, &device), LLMK_SUCCESS);
  EXPECT_EQ(backend, LLMK_BACKEND_CPU);
  EXPECT_EQ(device, -1);
  llmk_context_destroy(ctx);
  llmk_context_destroy(nullptr);
}

TEST(Api, ContextCreateErrors) {
  llmk_context* ctx = nullptr;
  EXPECT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_EQ(llmk_context_create(static_cast<llmk_backend>(5), 0, &ctx), LLMK_ERROR_INVALID_VALUE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("backend"), std::string::npos);
  // No GPU here means NO_DEVICE; with one, ordinal 1000 does not exist.
  const llmk_status status = llmk_context_create(LLMK_BACKEND_CUDA, 1000, &ctx);
  EXPECT_TRUE(status == LLMK_ERROR_NO_DEVICE || status == LLMK_ERROR_INVALID_VALUE) << status;
  EXPECT_EQ(ctx, nullptr);
  int32_t count = -1;
  EXPECT_EQ(llmk_cuda_device_count(&count), LLMK_SUCCESS);
  EXPECT_GE(count, 0);
}

TEST(Api, LastErrorClearsOnSuccess) {
  llmk_context* ctx = nullptr;
  EXPECT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_STRNE(llmk_last_error_message(), "");
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  EXPECT_STREQ(llmk_last_error_message(), "");
  llmk_context_destroy(ctx);
}

TEST(Api, MemoryOnCpu) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  void* a = nullptr;
  ASSERT_EQ(llmk_malloc(ctx, 1000, &a), LLMK_SUCCESS);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  const char text[] = "llmk";
  ASSERT_EQ(llmk_memcpy(ctx, a, text, sizeof text, nullptr), LLMK_SUCCESS);
  EXPECT_STREQ(static_cast<const char*>(a), "llmk");
  EXPECT_EQ(llmk_malloc(ctx, 0, &a), LLMK_ERROR_INVALID_VALUE);
  EXPECT_EQ(llmk_memcpy(ctx, nullptr, text, 4, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_EQ(llmk_synchronize(ctx, nullptr), LLMK_SUCCESS);
  EXPECT_EQ(llmk_free(ctx, a), LLMK_SUCCESS);
  EXPECT_EQ(llmk_free(ctx, nullptr), LLMK_SUCCESS);
  llmk_context_destroy(ctx);
}

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
