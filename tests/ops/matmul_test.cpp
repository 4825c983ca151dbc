// matmul on the CPU context: one test per argument check of the front end (its status, a message
// naming the op and the argument, D untouched), the special cases the header promises (K == 0
// refused, empty products, beta == 0 not reading C, in place), layouts and batches that must give
// the same bits on the CPU reference, and llmk_matmul_path_for / llmk_matmul_cache_stats on a CPU
// context. The shared vectors run in test_cpu.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace matmul_test {

// 64 bytes of slack in front, so that a view can start at a 64-byte aligned address.
void* aligned64(std::vector<uint8_t>& bytes) {
  const auto address = reinterpret_cast<uintptr_t>(bytes.data());
  return bytes.data() + (64 - address % 64) % 64;
}

// --- bad arguments -----------------------------------------------------------------------------

// D [4, 6] = A [4, 8] B [8, 6] + C + bias in f32, with B the transposed view of a row-major
// W [6, 8] (nn.Linear's layout) and D poisoned. Each test breaks one thing.
class MatmulBadInput : public testing::Test {
 protected:
  static constexpr int64_t kM = 4, kK = 8, kN = 6;
  static constexpr size_t kSlack = 64;  // spare elements after every view

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(3);
    a_data_ = random_buffer(LLMK_DTYPE_F32, kM * kK + kSlack, rng);
    b_data_ = random_buffer(LLMK_DTYPE_F32, kK * kN + kSlack, rng);
    c_data_ = random_buffer(LLMK_DTYPE_F32, kM * kN + kSlack, rng);
    bias_data_ = random_buffer(LLMK_DTYPE_F32, kN + kSlack, rng);
    d_data_ = nan_buffer(LLMK_DTYPE_F32, 2 * kM * kN + kSlack);
    a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {kM, kK});
    b_ = make_view(b_data_.data(), LLMK_DTYPE_F32, {kK, kN}, {1, kK});
    c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {kM, kN});
    bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {kN});
    d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN});
    llmk_matmul_config_init(&config_);
    config_.beta = 0.5f;
    config_.activation = LLMK_ACTIVATION_GELU;
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status matmul() {
    return llmk_matmul(ctx_, config_ptr_, a_ptr_, b_ptr_, c_ptr_, bias_ptr_, d_ptr_, nullptr);
  }

  // The call fails with `status`, says "matmul: ...<text>..." and leaves D's buffer untouched;
  // llmk_matmul_path_for and llmk_matmul_tune, which make the same checks, fail the same way.
  void expect_rejected(llmk_status status, const char* text) {
    const llmk_status got = matmul();
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind("matmul: ", 0), 0u) << message;
    EXPECT_NE(message.find(text), std::string::npos) << message;
    for (size_t i = 0; i < d_data_.size() / 4; ++i) {
      float v;
      std::memcpy(&v, d_data_.data() + 4 * i, 4);
      ASSERT_TRUE(std::isnan(v)) << "d[" << i << "] written by a rejected call";
    }
    int32_t path = -7;
    EXPECT_EQ(
        llmk_matmul_path_for(ctx_, config_ptr_, a_ptr_, b_ptr_, c_ptr_, bias_ptr_, d_ptr_, &path),
        status)
        << llmk_last_error_message();
    EXPECT_EQ(path, -7) << "path_for wrote its answer for a rejected call";
    llmk_matmul_tuning tuning{};
    tuning.struct_size = sizeof tuning;
    tuning.candidates = -7;
    EXPECT_EQ(llmk_matmul_tune(ctx_, config_ptr_, a_ptr_, b_ptr_, c_ptr_, bias_ptr_, d_ptr_,
                               nullptr, &tuning),
              status)
        << llmk_last_error_message();
    EXPECT_EQ(tuning.candidates, -7) << "matmul_tune reported on a rejected call";
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> a_data_, b_data_, c_data_, bias_data_, d_data_;
  llmk_tensor a_{}, b_{}, c_{}, bias_{}, d_{};
  llmk_matmul_config config_{};
  const llmk_matmul_config* config_ptr_ = &config_;
  const llmk_tensor* a_ptr_ = &a_;
  const llmk_tensor* b_ptr_ = &b_;
  const llmk_tensor* c_ptr_ = &c_;
  const llmk_tensor* bias_ptr_ = &bias_;
  const llmk_tensor* d_ptr_ = &d_;
};

TEST_F(MatmulBadInput, ValidCallsSucceed) {
  EXPECT_EQ(matmul(), LLMK_SUCCESS) << llmk_last_error_message();
  bias_ptr_ = nullptr;
  EXPECT_EQ(matmul(), LLMK_SUCCESS) << llmk_last_error_message();
  config_.beta = 0.0f;
  c_ptr_ = nullptr;
  EXPECT_EQ(matmul(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_STREQ(llmk_last_error_message(), "");
}

TEST_F(MatmulBadInput, NullContext) {
  EXPECT_EQ(llmk_matmul(nullptr, &config_, &a_, &b_, &c_, &bias_, &d_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx is NULL"), std::string::npos)
      << llmk_last_error_message();
  int32_t path = 0;
  EXPECT_EQ(llmk_matmul_path_for(nullptr, &config_, &a_, &b_, &c_, &bias_, &d_, &path),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(MatmulBadInput, NullConfig) {
  config_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "config is NULL");
}

TEST_F(MatmulBadInput, UninitializedConfig) {
  config_.struct_size = 0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 0");
}

TEST_F(MatmulBadInput, NullTensors) {
  a_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "a is NULL");
  a_ptr_ = &a_;
  b_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "b is NULL");
  b_ptr_ = &b_;
  d_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "d is NULL");
}

TEST_F(MatmulBadInput, NullData) {
  a_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "a.data is NULL");
  a_.data = a_data_.data();
  bias_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "bias.data is NULL");
  bias_.data = bias_data_.data();
  c_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "c.data is NULL");
}

TEST_F(MatmulBadInput, BetaWithoutC) {
  c_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "c is NULL but config->beta is 0.5");
}

TEST_F(MatmulBadInput, NonFiniteScalars) {
  config_.alpha = NAN;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->alpha");
  config_.alpha = 1.0f;
  config_.beta = INFINITY;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->beta");
}

TEST_F(MatmulBadInput, InvalidActivation) {
  config_.activation = 5;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->activation is 5");
  config_.activation = -1;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->activation is -1");
}

TEST_F(MatmulBadInput, InvalidPath) {
  config_.path = 3;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->path is 3");
  config_.path = -1;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->path is -1");
}

TEST_F(MatmulBadInput, UnknownDtype) {
  b_.dtype = 99;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "b has dtype 99");
}

TEST_F(MatmulBadInput, UnsupportedDtype) {
  a_.dtype = b_.dtype = c_.dtype = bias_.dtype = d_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "a has dtype i32");
}

TEST_F(MatmulBadInput, DtypeMismatch) {
  b_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "b is bf16 but a is f32");
  b_.dtype = LLMK_DTYPE_F32;
  d_.dtype = LLMK_DTYPE_F16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "d is f16 but a is f32");
  d_.dtype = LLMK_DTYPE_F32;
  c_.dtype = LLMK_DTYPE_F16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "c is f16 but a is f32");
  c_.dtype = LLMK_DTYPE_F32;
  bias_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_DTYPE_MISMATCH, "bias is bf16 but a is f32");
}

TEST_F(MatmulBadInput, Ndim) {
  // D: 2 or 3 dimensions; the operands of a rank-2 D: 2; the bias: 1.
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {1, 1, kM, kN});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "d has 4 dimensions; it must have 2 to 3");
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM * kN});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "d has 1 dimensions; it must have 2 to 3");
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN});
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {1, kM, kK});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "a has 3 dimensions; it must have 2");
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {kM, kK});
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {1, kM, kN});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "c has 3 dimensions; it must have 2");
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {kM, kN});
  bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {1, kN});
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "bias has 2 dimensions; it must have 1");
  bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {kN});
  a_.ndim = LLMK_MAX_DIMS + 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "a has ndim 9");
}

TEST_F(MatmulBadInput, KMismatch) {
  b_.shape[0] = kK - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "b has 7 rows, but a's K (columns) has 8");
}

TEST_F(MatmulBadInput, MMismatch) {
  d_.shape[0] = kM - 1;
  c_.shape[0] = kM - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "d has 3 rows, but a's M (rows) has 4");
  d_.shape[0] = kM;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "c has 3 rows, but d has 4");
}

TEST_F(MatmulBadInput, NMismatch) {
  d_.shape[1] = kN - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "d has 5 columns, but b's N (columns) has 6");
  d_.shape[1] = kN;
  c_.shape[1] = kN - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "c has 5 columns, but d has 6");
}

TEST_F(MatmulBadInput, BiasLength) {
  bias_.shape[0] = kN - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "bias has 5 elements, but d's N has 6");
}

TEST_F(MatmulBadInput, BatchMismatch) {
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {2, kM, kN});
  c_ptr_ = nullptr;
  config_.beta = 0.0f;
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {3, kM, kK}, {0, kK, 1});
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "a has 3 batches, but d has 2");
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {kM, kK});
  b_ = make_view(b_data_.data(), LLMK_DTYPE_F32, {1, kK, kN}, {0, 1, kK});
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "b has 1 batches, but d has 2");
  b_ = make_view(b_data_.data(), LLMK_DTYPE_F32, {kK, kN}, {1, kK});
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {3, kM, kN}, {0, kN, 1});
  c_ptr_ = &c_;
  config_.beta = 1.0f;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "c has 3 batches, but d has 2");
}

TEST_F(MatmulBadInput, BiasNotContiguous) {
  bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {kN}, {2});
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "bias must be contiguous in dimension 0");
}

TEST_F(MatmulBadInput, MatrixWithoutAUnitStride) {
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {kM, kK / 2}, {kK, 2});
  b_.shape[0] = kK / 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "a is neither row-major nor column-major");
  a_ = make_view(a_data_.data(), LLMK_DTYPE_F32, {kM, kK});
  b_ = make_view(b_data_.data(), LLMK_DTYPE_F32, {kK, kN}, {2, 2 * kK});
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "b is neither row-major nor column-major");
  b_ = make_view(b_data_.data(), LLMK_DTYPE_F32, {kK, kN}, {1, kK});
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN}, {2 * kN, 2});
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "d is neither row-major nor column-major");
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN});
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {kM, kN}, {2 * kN, 2});
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "c is neither row-major nor column-major");
}

TEST_F(MatmulBadInput, LeadingDimensionSmallerThanTheExtent) {
  a_.strides[0] = kK / 2;  // row-major rows overlapping
  expect_rejected(LLMK_ERROR_INVALID_STRIDE,
                  "a is row-major with a leading dimension of 4, less than its 8 columns");
  a_.strides[0] = kK;
  b_.strides[1] = kK / 2;  // column-major columns overlapping
  expect_rejected(LLMK_ERROR_INVALID_STRIDE,
                  "b is column-major with a leading dimension of 4, less than its 8 rows");
  b_.strides[1] = kK;
  d_.strides[0] = kN - 1;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "d is row-major with a leading dimension of 5");
}

TEST_F(MatmulBadInput, BiasWithColumnMajorD) {
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN}, {1, kM});
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {kM, kN}, {1, kM});
  expect_rejected(LLMK_ERROR_UNSUPPORTED, "bias needs a row-major d");
  bias_ptr_ = nullptr;
  EXPECT_EQ(matmul(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(MatmulBadInput, COfTheOtherOrientation) {
  c_ = make_view(c_data_.data(), LLMK_DTYPE_F32, {kM, kN}, {1, kM});
  expect_rejected(LLMK_ERROR_UNSUPPORTED, "c is column-major but d is row-major");
  // Also when beta == 0 (C is then not read, but the call is still wrong).
  config_.beta = 0.0f;
  expect_rejected(LLMK_ERROR_UNSUPPORTED, "c must have d's layout");
}

TEST_F(MatmulBadInput, Misaligned) {
  a_.data = a_data_.data() + 2;
  expect_rejected(LLMK_ERROR_MISALIGNED, "a.data");
}

TEST_F(MatmulBadInput, NegativeExtentAndStride) {
  b_.shape[1] = -kN;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "b has a negative extent");
  b_.shape[1] = kN;
  a_.strides[0] = -kK;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "a has a negative stride");
}

TEST_F(MatmulBadInput, DOverlapsAnInput) {
  d_.data = a_data_.data() + 4;
  expect_rejected(LLMK_ERROR_OVERLAP, "d overlaps a");
  d_.data = b_data_.data();
  expect_rejected(LLMK_ERROR_OVERLAP, "d overlaps b");
  d_.data = bias_data_.data();
  expect_rejected(LLMK_ERROR_OVERLAP, "d overlaps bias");
  // C: only the very same view is allowed (in place).
  d_.data = c_data_.data() + 4;
  expect_rejected(LLMK_ERROR_OVERLAP, "d overlaps c (only the very same view");
  d_ = c_;
  d_.strides[0] = kN + 1;  // same data pointer and shape, other strides
  expect_rejected(LLMK_ERROR_OVERLAP, "d overlaps c");
}

TEST_F(MatmulBadInput, DBatchesOverlap) {
  c_ptr_ = nullptr;
  config_.beta = 0.0f;
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {2, kM, kN}, {0, kN, 1});
  expect_rejected(LLMK_ERROR_OVERLAP, "d has stride 0 in dimension 0");
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {2, kM, kN}, {kN * kM / 2, kN, 1});
  expect_rejected(LLMK_ERROR_OVERLAP, "d has stride 12 in dimension 0");
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {2, kM, kN}, {kN * kM, kN, 1});
  EXPECT_EQ(matmul(), LLMK_SUCCESS) << llmk_last_error_message();
}

// --- special cases and layouts -----------------------------------------------------------------

class MatmulCpu : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    llmk_matmul_config_init(&config_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status matmul(const llmk_tensor& a, const llmk_tensor& b, const llmk_tensor* c,
                     const llmk_tensor* bias, const llmk_tensor& d) {
    return llmk_matmul(ctx_, &config_, &a, &b, c, bias, &d, nullptr);
  }

  llmk_context* ctx_ = nullptr;
  llmk_matmul_config config_{};
};

TEST_F(MatmulCpu, ConfigDefaults) {
  llmk_matmul_config config;
  std::memset(&config, 0xAB, sizeof config);
  llmk_matmul_config_init(&config);
  EXPECT_EQ(config.struct_size, sizeof(llmk_matmul_config));
  EXPECT_EQ(config.alpha, 1.0f);
  EXPECT_EQ(config.beta, 0.0f);
  EXPECT_EQ(config.activation, LLMK_ACTIVATION_IDENTITY);
  EXPECT_EQ(config.allow_tf32, 0);
  EXPECT_EQ(config.path, LLMK_MATMUL_PATH_AUTO);
  llmk_matmul_config_init(nullptr);  // accepted, does nothing
}

TEST_F(MatmulCpu, KnownValuesInEveryDtype) {
  // Small integers: every product, sum and output is exact in every dtype.
  // A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]], A B = [[19, 22], [43, 50]],
  // C = [[1, -1], [2, -2]], bias = [-40, 1]; D = relu(2 A B - C + bias).
  const double a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8}, c[] = {1, -1, 2, -2}, bias[] = {-40, 1};
  const double expected[] = {0, 46, 44, 103};
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    SCOPED_TRACE(llmk::dtype_name(dtype));
    const size_t e = element_bytes(dtype);
    std::vector<uint8_t> ab(4 * e), bb(4 * e), cb(4 * e), biasb(2 * e);
    std::vector<uint8_t> db = nan_buffer(dtype, 4);
    for (int i = 0; i < 4; ++i) {
      double_to_element(dtype, a[i], ab.data() + i * e);
      double_to_element(dtype, b[i], bb.data() + i * e);
      double_to_element(dtype, c[i], cb.data() + i * e);
    }
    for (int i = 0; i < 2; ++i) double_to_element(dtype, bias[i], biasb.data() + i * e);
    const llmk_tensor av = make_view(ab.data(), dtype, {2, 2}),
                      bv = make_view(bb.data(), dtype, {2, 2}),
                      cv = make_view(cb.data(), dtype, {2, 2}),
                      biasv = make_view(biasb.data(), dtype, {2}),
                      dv = make_view(db.data(), dtype, {2, 2});
    config_.alpha = 2.0f;
    config_.beta = -1.0f;
    config_.activation = LLMK_ACTIVATION_RELU;
    ASSERT_EQ(matmul(av, bv, &cv, &biasv, dv), LLMK_SUCCESS) << llmk_last_error_message();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(element_to_double(dtype, db.data() + i * e), expected[i]);
  }
}

// Runs D = A B for a 5 x 9 x 7 problem in f32 (plus C and bias where D is row-major) with every
// orientation of A, B and D and padded leading dimensions; the CPU reference sums the same
// products in the same order whatever the layout, so every D must have the same bits.
TEST_F(MatmulCpu, EveryOrientationGivesTheSameBits) {
  constexpr int64_t kM = 5, kK = 9, kN = 7;
  std::mt19937_64 rng(11);
  const std::vector<uint8_t> a_rm = random_buffer(LLMK_DTYPE_F32, kM * kK, rng);
  const std::vector<uint8_t> b_rm = random_buffer(LLMK_DTYPE_F32, kK * kN, rng);
  auto at = [](const std::vector<uint8_t>& buffer, int64_t i) {
    float v;
    std::memcpy(&v, buffer.data() + 4 * i, 4);
    return v;
  };
  // A matrix in either orientation with leading dimension extent + 3.
  auto store = [&](const std::vector<uint8_t>& rm, int64_t rows, int64_t cols, bool row_major,
                   std::vector<float>& out) {
    const int64_t ld = (row_major ? cols : rows) + 3;
    out.assign(static_cast<size_t>(ld * (row_major ? rows : cols)), 1000.0f);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        out[row_major ? i * ld + j : i + j * ld] = at(rm, i * cols + j);
      }
    }
    return row_major ? std::vector<int64_t>{ld, 1} : std::vector<int64_t>{1, ld};
  };
  std::vector<float> reference;
  for (int combo = 0; combo < 8; ++combo) {
    const bool a_row = combo & 1, b_row = combo & 2, d_row = combo & 4;
    SCOPED_TRACE(std::string("a ") + (a_row ? "row" : "col") + ", b " + (b_row ? "row" : "col") +
                 ", d " + (d_row ? "row" : "col"));
    std::vector<float> a_buf, b_buf, d_buf;
    const auto a_strides = store(a_rm, kM, kK, a_row, a_buf);
    const auto b_strides = store(b_rm, kK, kN, b_row, b_buf);
    const int64_t d_ld = (d_row ? kN : kM) + 2;
    d_buf.assign(static_cast<size_t>(d_ld * (d_row ? kM : kN)), NAN);
    const llmk_tensor a = make_view(a_buf.data(), LLMK_DTYPE_F32, {kM, kK}, a_strides);
    const llmk_tensor b = make_view(b_buf.data(), LLMK_DTYPE_F32, {kK, kN}, b_strides);
    const llmk_tensor d =
        make_view(d_buf.data(), LLMK_DTYPE_F32, {kM, kN},
                  d_row ? std::vector<int64_t>{d_ld, 1} : std::vector<int64_t>{1, d_ld});
    ASSERT_EQ(matmul(a, b, nullptr, nullptr, d), LLMK_SUCCESS) << llmk_last_error_message();
    std::vector<float> got;
    for (int64_t i = 0; i < kM; ++i) {
      for (int64_t j = 0; j < kN; ++j) got.push_back(d_buf[d_row ? i * d_ld + j : i + j * d_ld]);
    }
    for (float v : got) ASSERT_FALSE(std::isnan(v));
    if (combo == 0) {
      reference = got;
    } else {
      EXPECT_EQ(std::memcmp(got.data(), reference.data(), 4 * got.size()), 0);
    }
  }
}

TEST_F(MatmulCpu, BatchesWithStridesAndBroadcast) {
  // D [3, 4, 5] = A [3, 4, 6] B with B given three ways: rank 2, rank 3 with batch stride 0, and
  // three copies with their own batch stride. Each batch must equal the rank-2 product of its A.
  constexpr int64_t kBatch = 3, kM = 4, kK = 6, kN = 5;
  std::mt19937_64 rng(5);
  const std::vector<uint8_t> a = random_buffer(LLMK_DTYPE_BF16, kBatch * (kM * kK + 2), rng);
  const std::vector<uint8_t> w = random_buffer(LLMK_DTYPE_BF16, kN * kK, rng);
  std::vector<uint8_t> w3(kBatch * (kN * kK + 5) * 2);
  for (int64_t batch = 0; batch < kBatch; ++batch) {
    std::memcpy(w3.data() + batch * (kN * kK + 5) * 2, w.data(), w.size());
  }
  const llmk_tensor av = make_view(const_cast<uint8_t*>(a.data()), LLMK_DTYPE_BF16,
                                   {kBatch, kM, kK}, {kM * kK + 2, kK, 1});
  const llmk_tensor b_rank2 =
      make_view(const_cast<uint8_t*>(w.data()), LLMK_DTYPE_BF16, {kK, kN}, {1, kK});
  const llmk_tensor b_stride0 =
      make_view(const_cast<uint8_t*>(w.data()), LLMK_DTYPE_BF16, {kBatch, kK, kN}, {0, 1, kK});
  const llmk_tensor b_own =
      make_view(w3.data(), LLMK_DTYPE_BF16, {kBatch, kK, kN}, {kN * kK + 5, 1, kK});
  std::vector<std::vector<uint8_t>> outputs;
  for (const llmk_tensor* b : {&b_rank2, &b_stride0, &b_own}) {
    std::vector<uint8_t> d = nan_buffer(LLMK_DTYPE_BF16, kBatch * (kM * kN + 1));
    const llmk_tensor dv =
        make_view(d.data(), LLMK_DTYPE_BF16, {kBatch, kM, kN}, {kM * kN + 1, kN, 1});
    ASSERT_EQ(matmul(av, *b, nullptr, nullptr, dv), LLMK_SUCCESS) << llmk_last_error_message();
    outputs.push_back(d);
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
  for (int64_t batch = 0; batch < kBatch; ++batch) {
    std::vector<uint8_t> d = nan_buffer(LLMK_DTYPE_BF16, kM * kN);
    llmk_tensor a_batch = make_view(const_cast<uint8_t*>(a.data()) + batch * (kM * kK + 2) * 2,
                                    LLMK_DTYPE_BF16, {kM, kK});
    const llmk_tensor dv = make_view(d.data(), LLMK_DTYPE_BF16, {kM, kN});
    ASSERT_EQ(matmul(a_batch, b_rank2, nullptr, nullptr, dv), LLMK_SUCCESS);
    EXPECT_EQ(std::memcmp(d.data(), outputs[0].data() + batch * (kM * kN + 1) * 2, d.size()), 0)
        << "batch " << batch;
  }
  // The gap element after each batch of D is untouched.
  for (int64_t batch = 0; batch < kBatch; ++batch) {
    EXPECT_TRUE(std::isnan(element_to_double(
        LLMK_DTYPE_BF16, outputs[0].data() + (batch * (kM * kN + 1) + kM * kN) * 2)));
  }
}

TEST_F(MatmulCpu, KZeroIsRefused) {
  // The header: K == 0 (an empty sum) is refused with LLMK_ERROR_UNSUPPORTED on both backends,
  // by llmk_matmul_path_for too, and D is left untouched. A and B have no elements, so their data
  // may be NULL.
  const float c[] = {1.0f, -2.0f, 3.0f, -4.0f, 5.0f, -6.0f}, bias[] = {0.5f, 1.0f, -1.5f};
  std::vector<float> d(6, NAN);
  const llmk_tensor a = make_view(nullptr, LLMK_DTYPE_F32, {2, 0});
  const llmk_tensor b = make_view(nullptr, LLMK_DTYPE_F32, {0, 3});
  const llmk_tensor cv = make_view(const_cast<float*>(c), LLMK_DTYPE_F32, {2, 3});
  const llmk_tensor biasv = make_view(const_cast<float*>(bias), LLMK_DTYPE_F32, {3});
  const llmk_tensor dv = make_view(d.data(), LLMK_DTYPE_F32, {2, 3});
  config_.beta = 2.0f;
  EXPECT_EQ(matmul(a, b, &cv, &biasv, dv), LLMK_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(llmk_last_error_message()).find("matmul: a has no columns (K is 0)"),
            std::string::npos)
      << llmk_last_error_message();
  for (float v : d) EXPECT_TRUE(std::isnan(v));
  config_.beta = 0.0f;
  EXPECT_EQ(matmul(a, b, nullptr, nullptr, dv), LLMK_ERROR_UNSUPPORTED);
  int32_t path = -1;
  EXPECT_EQ(llmk_matmul_path_for(ctx_, &config_, &a, &b, nullptr, nullptr, &dv, &path),
            LLMK_ERROR_UNSUPPORTED);
  EXPECT_EQ(path, -1);
  for (float v : d) EXPECT_TRUE(std::isnan(v));
}

TEST_F(MatmulCpu, EmptyProductsAreNoOps) {
  std::vector<float> a(8, 1.0f), b(8, 1.0f), sentinel(8, NAN);
  // M == 0
  const llmk_tensor a0 = make_view(nullptr, LLMK_DTYPE_F32, {0, 4});
  const llmk_tensor b4 = make_view(b.data(), LLMK_DTYPE_F32, {4, 2});
  const llmk_tensor d0 = make_view(nullptr, LLMK_DTYPE_F32, {0, 2});
  EXPECT_EQ(matmul(a0, b4, nullptr, nullptr, d0), LLMK_SUCCESS) << llmk_last_error_message();
  // N == 0
  const llmk_tensor a2 = make_view(a.data(), LLMK_DTYPE_F32, {2, 4});
  const llmk_tensor bn0 = make_view(nullptr, LLMK_DTYPE_F32, {4, 0});
  const llmk_tensor dn0 = make_view(nullptr, LLMK_DTYPE_F32, {2, 0});
  EXPECT_EQ(matmul(a2, bn0, nullptr, nullptr, dn0), LLMK_SUCCESS) << llmk_last_error_message();
  // batch == 0, with a bias and an activation
  const llmk_tensor ab0 = make_view(nullptr, LLMK_DTYPE_F32, {0, 2, 4});
  const llmk_tensor db0 = make_view(nullptr, LLMK_DTYPE_F32, {0, 2, 2});
  const llmk_tensor bias = make_view(sentinel.data(), LLMK_DTYPE_F32, {2});
  config_.activation = LLMK_ACTIVATION_GELU;
  EXPECT_EQ(matmul(ab0, b4, nullptr, &bias, db0), LLMK_SUCCESS) << llmk_last_error_message();
  // path=gemv is not refused for an empty product either (nothing runs).
  config_.path = LLMK_MATMUL_PATH_GEMV;
  EXPECT_EQ(matmul(ab0, b4, nullptr, &bias, db0), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(MatmulCpu, BetaZeroDoesNotReadC) {
  // C full of NaN: with beta == 0 it must not reach D (0 * NaN would be NaN).
  constexpr int64_t kM = 3, kK = 5, kN = 4;
  std::mt19937_64 rng(8);
  std::vector<uint8_t> a = random_buffer(LLMK_DTYPE_F16, kM * kK, rng);
  std::vector<uint8_t> b = random_buffer(LLMK_DTYPE_F16, kK * kN, rng);
  std::vector<uint8_t> c = nan_buffer(LLMK_DTYPE_F16, kM * kN);
  std::vector<uint8_t> with_c = nan_buffer(LLMK_DTYPE_F16, kM * kN), without_c = with_c;
  const llmk_tensor av = make_view(a.data(), LLMK_DTYPE_F16, {kM, kK});
  const llmk_tensor bv = make_view(b.data(), LLMK_DTYPE_F16, {kK, kN});
  const llmk_tensor cv = make_view(c.data(), LLMK_DTYPE_F16, {kM, kN});
  const llmk_tensor d1 = make_view(with_c.data(), LLMK_DTYPE_F16, {kM, kN});
  const llmk_tensor d2 = make_view(without_c.data(), LLMK_DTYPE_F16, {kM, kN});
  config_.activation = LLMK_ACTIVATION_SILU;
  ASSERT_EQ(matmul(av, bv, &cv, nullptr, d1), LLMK_SUCCESS) << llmk_last_error_message();
  ASSERT_EQ(matmul(av, bv, nullptr, nullptr, d2), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(with_c, without_c);
  for (int64_t i = 0; i < kM * kN; ++i) {
    EXPECT_TRUE(std::isfinite(element_to_double(LLMK_DTYPE_F16, with_c.data() + 2 * i)));
  }
}

TEST_F(MatmulCpu, InPlaceOverC) {
  // D = A B + C with D the very view of C (a residual add), row- and column-major: the same
  // values as out of place.
  constexpr int64_t kM = 4, kK = 6, kN = 5;
  std::mt19937_64 rng(9);
  std::vector<uint8_t> a = random_buffer(LLMK_DTYPE_F32, kM * kK, rng);
  std::vector<uint8_t> b = random_buffer(LLMK_DTYPE_F32, kK * kN, rng);
  const std::vector<uint8_t> c0 = random_buffer(LLMK_DTYPE_F32, (kM + 1) * (kN + 1), rng);
  const llmk_tensor av = make_view(a.data(), LLMK_DTYPE_F32, {kM, kK});
  const llmk_tensor bv = make_view(b.data(), LLMK_DTYPE_F32, {kK, kN}, {1, kK});
  config_.beta = 1.0f;
  for (bool row_major : {true, false}) {
    SCOPED_TRACE(row_major ? "row-major" : "column-major");
    const std::vector<int64_t> strides =
        row_major ? std::vector<int64_t>{kN + 1, 1} : std::vector<int64_t>{1, kM + 1};
    std::vector<uint8_t> c = c0, out = nan_buffer(LLMK_DTYPE_F32, c0.size() / 4);
    const llmk_tensor cv = make_view(c.data(), LLMK_DTYPE_F32, {kM, kN}, strides);
    const llmk_tensor dv = make_view(out.data(), LLMK_DTYPE_F32, {kM, kN}, strides);
    ASSERT_EQ(matmul(av, bv, &cv, nullptr, dv), LLMK_SUCCESS) << llmk_last_error_message();
    ASSERT_EQ(matmul(av, bv, &cv, nullptr, cv), LLMK_SUCCESS) << llmk_last_error_message();
    const llmk_tensor view = make_view(nullptr, LLMK_DTYPE_F32, {kM, kN}, strides);
    for (int64_t i = 0; i < kM; ++i) {
      for (int64_t j = 0; j < kN; ++j) {
        const int64_t at = i * view.strides[0] + j * view.strides[1];
        EXPECT_EQ(std::memcmp(c.data() + 4 * at, out.data() + 4 * at, 4), 0) << i << "," << j;
      }
    }
  }
}

TEST_F(MatmulCpu, PathIsIgnoredOnTheCpu) {
  // path=gemv for a call the GEMV engine could not take (a batch of 2): the CPU runs it anyway.
  std::vector<float> a(2 * 3 * 4, 0.5f), b(4 * 5, 0.25f), d(2 * 3 * 5, NAN);
  const llmk_tensor av = make_view(a.data(), LLMK_DTYPE_F32, {2, 3, 4});
  const llmk_tensor bv = make_view(b.data(), LLMK_DTYPE_F32, {4, 5});
  const llmk_tensor dv = make_view(d.data(), LLMK_DTYPE_F32, {2, 3, 5});
  config_.path = LLMK_MATMUL_PATH_GEMV;
  config_.allow_tf32 = 1;
  ASSERT_EQ(matmul(av, bv, nullptr, nullptr, dv), LLMK_SUCCESS) << llmk_last_error_message();
  for (float v : d) EXPECT_EQ(v, 0.5f);
}

TEST_F(MatmulCpu, ConfigOfANewerHeaderIsRead) {
  // A caller whose header has more fields: struct_size is larger, the known fields are read.
  struct Newer {
    llmk_matmul_config known;
    int64_t future_field;
  } newer{};
  llmk_matmul_config_init(&newer.known);
  newer.known.struct_size = sizeof(Newer);
  newer.known.alpha = 3.0f;
  newer.future_field = 42;
  std::vector<float> a = {1, 2}, b = {3, 4}, d(1, NAN);
  const llmk_tensor av = make_view(a.data(), LLMK_DTYPE_F32, {1, 2});
  const llmk_tensor bv = make_view(b.data(), LLMK_DTYPE_F32, {2, 1});
  const llmk_tensor dv = make_view(d.data(), LLMK_DTYPE_F32, {1, 1});
  ASSERT_EQ(llmk_matmul(ctx_, &newer.known, &av, &bv, nullptr, nullptr, &dv, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(d[0], 33.0f);
}

// --- llmk_matmul_path_for and llmk_matmul_cache_stats ------------------------------------------

// f16 x [m, 64] times the nn.Linear weight W [n, 64] (B = W^T, column-major, ld 64: 128 bytes),
// every pointer 64-byte aligned: a call the GEMV engine can take while m <= 16.
class MatmulPath : public testing::Test {
 protected:
  static constexpr int64_t kK = 64, kN = 40, kMaxM = 32, kMaxK = 13824, kMaxN = 1024;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    a_bytes_.assign(2 * 2 * kMaxM * (kMaxK + 8) + 64, 0);
    b_bytes_.assign(2 * 2 * kN * (kMaxK + 8) + 64, 0);  // also [k, n] up to k * n = kN * kMaxK
    d_bytes_.assign(2 * 2 * kMaxM * kMaxN + 64, 0);
    llmk_matmul_config_init(&config_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  // The engine path_for names, or -1 with the status when it fails.
  int32_t path_for(int64_t m, int64_t k = kK) {
    a_ = make_view(aligned64(a_bytes_), LLMK_DTYPE_F16, {m, k}, {a_ld_ ? a_ld_ : k, 1});
    b_ = make_view(aligned64(b_bytes_), LLMK_DTYPE_F16, {k, n_}, {1, b_ld_ ? b_ld_ : k});
    d_ = make_view(aligned64(d_bytes_), LLMK_DTYPE_F16, {m, n_});
    if (a_offset_) a_.data = static_cast<uint8_t*>(a_.data) + 2 * a_offset_;
    int32_t path = -1;
    status_ = llmk_matmul_path_for(ctx_, &config_, &a_, &b_, nullptr, nullptr, &d_, &path);
    return status_ == LLMK_SUCCESS ? path : -1;
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> a_bytes_, b_bytes_, d_bytes_;
  llmk_tensor a_{}, b_{}, d_{};
  llmk_matmul_config config_{};
  int64_t a_ld_ = 0, b_ld_ = 0, a_offset_ = 0, n_ = kN;
  llmk_status status_ = LLMK_SUCCESS;
};

// AUTO takes the GEMV only where it measured faster than cuBLASLt: on the H200, one to eight rows
// of f16 or bf16 (matmul.cpp, auto_takes_gemv; N = 40 against K = 4096 here).
TEST_F(MatmulPath, AutoTakesTheGemvWhereItWins) {
  for (int64_t m = 1; m <= 4; ++m) {
    EXPECT_EQ(path_for(m, 4096), LLMK_MATMUL_PATH_GEMV) << "m " << m;
  }
  EXPECT_EQ(path_for(8, 4096), LLMK_MATMUL_PATH_GEMV) << llmk_last_error_message();
  EXPECT_EQ(path_for(9, 4096), LLMK_MATMUL_PATH_CUBLASLT) << llmk_last_error_message();
  EXPECT_EQ(path_for(16, 4096), LLMK_MATMUL_PATH_CUBLASLT) << llmk_last_error_message();
  EXPECT_EQ(path_for(17, 4096), LLMK_MATMUL_PATH_CUBLASLT) << llmk_last_error_message();
  EXPECT_EQ(path_for(kMaxM, 4096), LLMK_MATMUL_PATH_CUBLASLT) << llmk_last_error_message();
}

// ... at any k from one 256-element segment on, but for rows a little longer than one
// 2048-element group (2048 < k < 3072): there, and below one segment, the one-row GEMV measured
// slower than cuBLASLt (matmul.cpp). Asked for, the GEMV still runs.
TEST_F(MatmulPath, AutoLeavesTheGemvWhereItMeasuredSlower) {
  for (const int64_t k : {256, 1536, 2040, 2048, 3072, 4096, 5120, 11008, 13824}) {
    EXPECT_EQ(path_for(1, k), LLMK_MATMUL_PATH_GEMV) << "k " << k;
  }
  for (const int64_t k : {64, 248, 2056, 2304, 2560, 3064}) {
    EXPECT_EQ(path_for(1, k), LLMK_MATMUL_PATH_CUBLASLT) << "k " << k;
  }
  config_.path = LLMK_MATMUL_PATH_GEMV;
  for (const int64_t k : {64, 2304}) EXPECT_EQ(path_for(1, k), LLMK_MATMUL_PATH_GEMV) << "k " << k;
}

// Two rows: where at most a tenth of k lies past the two-row GEMV's last 1024-element group
// (matmul.cpp); below one group, or with more left over (1536 x 6144 measured 0.74x), cuBLASLt.
TEST_F(MatmulPath, AutoTakesTheTwoRowGemvWhereLittleIsLeftOver) {
  for (const int64_t k : {1024, 2048, 3072, 4096, 4504, 5120, 11008, 13824}) {
    EXPECT_EQ(path_for(2, k), LLMK_MATMUL_PATH_GEMV) << "k " << k;
  }
  for (const int64_t k : {64, 1016, 1536, 2304, 4608}) {
    EXPECT_EQ(path_for(2, k), LLMK_MATMUL_PATH_CUBLASLT) << "k " << k;
  }
  config_.path = LLMK_MATMUL_PATH_GEMV;
  EXPECT_EQ(path_for(2, 1536), LLMK_MATMUL_PATH_GEMV);
}

// Three and four rows: where at most a sixteenth of k lies past the four-row GEMV's last
// 256-element group (matmul.cpp; K = 2216 leaves 7.6%); below one group, cuBLASLt.
TEST_F(MatmulPath, AutoTakesTheFourRowGemvWhereLittleIsLeftOver) {
  for (const int64_t m : {3, 4}) {
    for (const int64_t k : {256, 512, 2176, 2304, 4096, 4296, 5120, 11008, 13824}) {
      EXPECT_EQ(path_for(m, k), LLMK_MATMUL_PATH_GEMV) << "m " << m << ", k " << k;
    }
    for (const int64_t k : {64, 248, 480, 2216}) {
      EXPECT_EQ(path_for(m, k), LLMK_MATMUL_PATH_CUBLASLT) << "m " << m << ", k " << k;
    }
  }
  config_.path = LLMK_MATMUL_PATH_GEMV;
  EXPECT_EQ(path_for(3, 64), LLMK_MATMUL_PATH_GEMV);
}

// Five to eight rows: where N <= K / 2 and at most a sixteenth of k lies past the eight-row GEMV's
// last 128-element group (matmul.cpp).
TEST_F(MatmulPath, AutoTakesTheEightRowGemvWhereNIsAtMostHalfOfK) {
  n_ = 256;
  for (const int64_t m : {5, 8}) {
    for (const int64_t k : {512, 1024, 4096}) {
      EXPECT_EQ(path_for(m, k), LLMK_MATMUL_PATH_GEMV) << "m " << m << ", k " << k;
    }
    // Below one group, more than a sixteenth left over (K = 600: 88), or N > K / 2.
    for (const int64_t k : {64, 120, 504, 600}) {
      EXPECT_EQ(path_for(m, k), LLMK_MATMUL_PATH_CUBLASLT) << "m " << m << ", k " << k;
    }
  }
  n_ = 257;
  EXPECT_EQ(path_for(8, 512), LLMK_MATMUL_PATH_CUBLASLT);
  config_.path = LLMK_MATMUL_PATH_GEMV;
  EXPECT_EQ(path_for(8, 512), LLMK_MATMUL_PATH_GEMV);
}

// Where the GEMV cannot run, asking for it is refused (and AUTO could not take it).
TEST_F(MatmulPath, TheGemvRefusesWhatItCannotRun) {
  config_.path = LLMK_MATMUL_PATH_GEMV;
  b_ld_ = kK + 1;  // 130 bytes: not a multiple of 16
  EXPECT_EQ(path_for(1), -1);
  EXPECT_EQ(status_, LLMK_ERROR_UNSUPPORTED);
  b_ld_ = 0;
  EXPECT_EQ(path_for(1, 36), -1);  // K = 36: 72-byte rows of A and B
  a_offset_ = 1;                   // A's data 2 bytes past a 16-byte boundary
  EXPECT_EQ(path_for(1), -1);
  EXPECT_EQ(status_, LLMK_ERROR_UNSUPPORTED);
  a_offset_ = 0;
  // B row-major (a weight stored [K, N]) is not what the GEMV streams.
  a_ = make_view(aligned64(a_bytes_), LLMK_DTYPE_F16, {1, kK});
  b_ = make_view(aligned64(b_bytes_), LLMK_DTYPE_F16, {kK, kN});
  d_ = make_view(aligned64(d_bytes_), LLMK_DTYPE_F16, {1, kN});
  int32_t path = -1;
  EXPECT_EQ(llmk_matmul_path_for(ctx_, &config_, &a_, &b_, nullptr, nullptr, &d_, &path),
            LLMK_ERROR_UNSUPPORTED);
  // A batch of 2 (rank-3 D), even with one shared weight.
  a_ = make_view(aligned64(a_bytes_), LLMK_DTYPE_F16, {2, 1, kK});
  b_ = make_view(aligned64(b_bytes_), LLMK_DTYPE_F16, {kK, kN}, {1, kK});
  d_ = make_view(aligned64(d_bytes_), LLMK_DTYPE_F16, {2, 1, kN});
  EXPECT_EQ(llmk_matmul_path_for(ctx_, &config_, &a_, &b_, nullptr, nullptr, &d_, &path),
            LLMK_ERROR_UNSUPPORTED);
}

TEST_F(MatmulPath, OneRowWithAPaddedLeadingDimensionTakesTheGemv) {
  // K = 36 (72-byte rows), but A's and B's leading dimensions padded to 40 (80 bytes): the
  // header's condition holds. With M = 1 A's leading dimension is never stepped over at all.
  config_.path = LLMK_MATMUL_PATH_GEMV;
  a_ld_ = b_ld_ = 40;
  EXPECT_EQ(path_for(2, 36), LLMK_MATMUL_PATH_GEMV) << llmk_last_error_message();
  EXPECT_EQ(path_for(1, 36), LLMK_MATMUL_PATH_GEMV) << llmk_last_error_message();
}

TEST_F(MatmulPath, ForcedPaths) {
  config_.path = LLMK_MATMUL_PATH_CUBLASLT;
  EXPECT_EQ(path_for(1), LLMK_MATMUL_PATH_CUBLASLT);
  config_.path = LLMK_MATMUL_PATH_GEMV;
  for (int64_t m = 1; m <= 16; ++m) EXPECT_EQ(path_for(m), LLMK_MATMUL_PATH_GEMV) << "m " << m;
  // Where the GEMV cannot run, asking for it is refused, and says why.
  EXPECT_EQ(path_for(17), -1);
  EXPECT_EQ(status_, LLMK_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(llmk_last_error_message()).find("matmul: the GEMV engine cannot take"),
            std::string::npos)
      << llmk_last_error_message();
  b_ld_ = kK + 1;
  EXPECT_EQ(path_for(1), -1);
  EXPECT_EQ(status_, LLMK_ERROR_UNSUPPORTED);
}

TEST_F(MatmulPath, NeverAnswersAuto) {
  for (int32_t asked : {LLMK_MATMUL_PATH_AUTO, LLMK_MATMUL_PATH_CUBLASLT}) {
    config_.path = asked;
    for (int64_t m : {1, 3, 8, 9, 16, 17, 32}) {
      const int32_t path = path_for(m);
      EXPECT_TRUE(path == LLMK_MATMUL_PATH_CUBLASLT || path == LLMK_MATMUL_PATH_GEMV)
          << "asked " << asked << ", m " << m << ": " << path;
    }
  }
}

TEST_F(MatmulPath, NullPathAndBadArguments) {
  a_ = make_view(aligned64(a_bytes_), LLMK_DTYPE_F16, {1, kK});
  b_ = make_view(aligned64(b_bytes_), LLMK_DTYPE_F16, {kK, kN}, {1, kK});
  d_ = make_view(aligned64(d_bytes_), LLMK_DTYPE_F16, {1, kN});
  EXPECT_EQ(llmk_matmul_path_for(ctx_, &config_, &a_, &b_, nullptr, nullptr, &d_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("path is NULL"), std::string::npos)
      << llmk_last_error_message();
  d_.shape[1] = kN + 1;
  int32_t path = -1;
  EXPECT_EQ(llmk_matmul_path_for(ctx_, &config_, &a_, &b_, nullptr, nullptr, &d_, &path),
            LLMK_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(path, -1);
}

TEST_F(MatmulPath, CacheStatsAreZeroOnTheCpu) {
  int64_t plans = -1, queries = -1, workspaces = -1;
  ASSERT_EQ(llmk_matmul_cache_stats(ctx_, &plans, &queries, &workspaces), LLMK_SUCCESS);
  EXPECT_EQ(plans, 0);
  EXPECT_EQ(queries, 0);
  EXPECT_EQ(workspaces, 0);
  // After a few matmuls, still nothing: the CPU has no plans to cache.
  std::vector<float> a(4, 1.0f), b(4, 1.0f), d(4, NAN);
  const llmk_tensor av = make_view(a.data(), LLMK_DTYPE_F32, {2, 2});
  const llmk_tensor bv = make_view(b.data(), LLMK_DTYPE_F32, {2, 2});
  const llmk_tensor dv = make_view(d.data(), LLMK_DTYPE_F32, {2, 2});
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(llmk_matmul(ctx_, &config_, &av, &bv, nullptr, nullptr, &dv, nullptr), LLMK_SUCCESS);
  }
  ASSERT_EQ(llmk_matmul_cache_stats(ctx_, &plans, &queries, &workspaces), LLMK_SUCCESS);
  EXPECT_EQ(plans + queries + workspaces, 0);
  // Either out pointer may be NULL; the context may not.
  EXPECT_EQ(llmk_matmul_cache_stats(ctx_, nullptr, &queries, nullptr), LLMK_SUCCESS);
  EXPECT_EQ(llmk_matmul_cache_stats(ctx_, nullptr, nullptr, nullptr), LLMK_SUCCESS);
  EXPECT_EQ(llmk_matmul_cache_stats(nullptr, &plans, &queries, &workspaces),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

// --- llmk_matmul_tune
// -----------------------------------------------------------------------------

TEST_F(MatmulBadInput, TuneOnTheCpuIsMatmul) {
  // Nothing to tune on the CPU: the same bits as llmk_matmul, and a report of nothing timed.
  std::vector<uint8_t> reference = d_data_;
  const llmk_tensor reference_d = make_view(reference.data(), LLMK_DTYPE_F32, {kM, kN});
  ASSERT_EQ(llmk_matmul(ctx_, &config_, &a_, &b_, &c_, &bias_, &reference_d, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  llmk_matmul_tuning tuning;
  std::memset(&tuning, 0x7f, sizeof tuning);
  tuning.struct_size = sizeof tuning;
  ASSERT_EQ(llmk_matmul_tune(ctx_, &config_, &a_, &b_, &c_, &bias_, &d_, nullptr, &tuning),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(d_data_, reference);
  EXPECT_EQ(tuning.candidates, 0);
  EXPECT_EQ(tuning.chosen, 0);
  EXPECT_EQ(tuning.first_us, 0.0f);
  EXPECT_EQ(tuning.chosen_us, 0.0f);
  // The report is optional.
  d_data_ = nan_buffer(LLMK_DTYPE_F32, d_data_.size() / 4);
  d_ = make_view(d_data_.data(), LLMK_DTYPE_F32, {kM, kN});
  ASSERT_EQ(llmk_matmul_tune(ctx_, &config_, &a_, &b_, &c_, &bias_, &d_, nullptr, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(d_data_, reference);
}

TEST_F(MatmulBadInput, TuneRefusesAReportTooSmall) {
  // struct_size must at least reach `candidates`: 0 is a caller who forgot to set it.
  llmk_matmul_tuning tuning{};
  for (size_t size : {size_t{0}, sizeof(size_t)}) {
    tuning.struct_size = size;
    EXPECT_EQ(llmk_matmul_tune(ctx_, &config_, &a_, &b_, &c_, &bias_, &d_, nullptr, &tuning),
              LLMK_ERROR_INVALID_VALUE);
    const std::string message = llmk_last_error_message();
    EXPECT_NE(message.find("matmul_tune: tuning->struct_size is " + std::to_string(size)),
              std::string::npos)
        << message;
  }
  for (size_t i = 0; i < d_data_.size() / 4; ++i) {
    float v;
    std::memcpy(&v, d_data_.data() + 4 * i, 4);
    ASSERT_TRUE(std::isnan(v)) << "d[" << i << "] written by a rejected call";
  }
  EXPECT_EQ(llmk_matmul_tune(nullptr, &config_, &a_, &b_, &c_, &bias_, &d_, nullptr, nullptr),
            LLMK_ERROR_NULL_POINTER);
}

}  // namespace matmul_test
