// bias_activation and gated_activation on the CPU context: one test per argument check (its own
// status, a message naming the op and the argument, outputs untouched), the layouts that are
// allowed, and values the reference must get right. The shared vectors run in test_cpu.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace activation_test {

// x, bias, gate, up: 4 x 64 f32 inputs; y poisoned. Each test breaks one thing.
class ActivationBadInput : public testing::Test {
 protected:
  static constexpr int64_t kRows = 4, kN = 64;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(1);
    x_data_ = random_buffer(LLMK_DTYPE_F32, kRows * kN + 8, rng);
    up_data_ = random_buffer(LLMK_DTYPE_F32, kRows * kN + 8, rng);
    bias_data_ = random_buffer(LLMK_DTYPE_F32, kN + 8, rng);
    y_data_ = nan_buffer(LLMK_DTYPE_F32, kRows * kN + 8);
    x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kRows, kN});
    up_ = make_view(up_data_.data(), LLMK_DTYPE_F32, {kRows, kN});
    bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {kN});
    y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {kRows, kN});
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  llmk_status bias_activation() {
    return llmk_bias_activation(ctx_, x_ptr_, bias_ptr_, activation_, y_ptr_, nullptr);
  }
  llmk_status gated_activation() {  // x plays gate
    return llmk_gated_activation(ctx_, x_ptr_, up_ptr_, activation_, y_ptr_, nullptr);
  }

  // The op fails with `status`, says "<op>: ...<text>..." and leaves y untouched.
  void expect_rejected(const char* op, llmk_status got, llmk_status status, const char* text) {
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind(std::string(op) + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(text), std::string::npos) << message;
    for (size_t i = 0; i < y_data_.size() / 4; ++i) {
      float v;
      std::memcpy(&v, y_data_.data() + 4 * i, 4);
      ASSERT_TRUE(std::isnan(v)) << "y[" << i << "] written by a rejected call";
    }
  }
  void expect_bias_rejected(llmk_status status, const char* text) {
    expect_rejected("bias_activation", bias_activation(), status, text);
  }
  void expect_gated_rejected(llmk_status status, const char* text) {
    expect_rejected("gated_activation", gated_activation(), status, text);
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> x_data_, up_data_, bias_data_, y_data_;
  llmk_tensor x_{}, up_{}, bias_{}, y_{};
  const llmk_tensor* x_ptr_ = &x_;
  const llmk_tensor* up_ptr_ = &up_;
  const llmk_tensor* bias_ptr_ = &bias_;
  const llmk_tensor* y_ptr_ = &y_;
  llmk_activation activation_ = LLMK_ACTIVATION_GELU;
};

TEST_F(ActivationBadInput, ValidCallsSucceed) {
  EXPECT_EQ(bias_activation(), LLMK_SUCCESS) << llmk_last_error_message();
  bias_ptr_ = nullptr;
  EXPECT_EQ(bias_activation(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(gated_activation(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(ActivationBadInput, NullContext) {
  EXPECT_EQ(llmk_bias_activation(nullptr, &x_, &bias_, activation_, &y_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
  EXPECT_EQ(llmk_gated_activation(nullptr, &x_, &up_, activation_, &y_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(ActivationBadInput, NullTensors) {
  x_ptr_ = nullptr;
  expect_bias_rejected(LLMK_ERROR_NULL_POINTER, "x is NULL");
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "gate is NULL");
  x_ptr_ = &x_;
  up_ptr_ = nullptr;
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "up is NULL");
  y_ptr_ = nullptr;
  expect_bias_rejected(LLMK_ERROR_NULL_POINTER, "y is NULL");
}

TEST_F(ActivationBadInput, NullData) {
  bias_.data = nullptr;
  expect_bias_rejected(LLMK_ERROR_NULL_POINTER, "bias.data");
  up_.data = nullptr;
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "up.data");
}

TEST_F(ActivationBadInput, UnknownDtype) {
  bias_.dtype = 99;
  expect_bias_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "bias has dtype 99");
  up_.dtype = 99;
  expect_gated_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "up has dtype 99");
}

TEST_F(ActivationBadInput, UnsupportedDtype) {
  x_.dtype = up_.dtype = bias_.dtype = y_.dtype = LLMK_DTYPE_I32;
  expect_bias_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "x has dtype i32");
  expect_gated_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "gate has dtype i32");
}

TEST_F(ActivationBadInput, DtypeMismatch) {
  bias_.dtype = LLMK_DTYPE_BF16;
  expect_bias_rejected(LLMK_ERROR_DTYPE_MISMATCH, "bias is bf16 but x is f32");
  up_.dtype = LLMK_DTYPE_F16;
  expect_gated_rejected(LLMK_ERROR_DTYPE_MISMATCH, "up is f16 but gate is f32");
  up_.dtype = LLMK_DTYPE_F32;
  y_.dtype = LLMK_DTYPE_BF16;
  expect_gated_rejected(LLMK_ERROR_DTYPE_MISMATCH, "y is bf16 but gate is f32");
}

TEST_F(ActivationBadInput, ShapeMismatch) {
  y_.shape[0] = kRows - 1;
  expect_bias_rejected(LLMK_ERROR_SHAPE_MISMATCH, "y has extent 3 in dimension 0 but x has 4");
  y_.shape[0] = kRows;
  up_.shape[1] = kN - 1;
  expect_gated_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                        "up has extent 63 in dimension 1 but gate has 64");
  up_.shape[1] = kN;
  up_.ndim = 3;
  up_.shape[2] = 1;
  expect_gated_rejected(LLMK_ERROR_SHAPE_MISMATCH, "up has 3 dimensions but gate has 2");
}

TEST_F(ActivationBadInput, BiasLengthMismatch) {
  bias_.shape[0] = kN - 1;
  expect_bias_rejected(LLMK_ERROR_SHAPE_MISMATCH, "bias has 63 elements, x rows have 64");
}

TEST_F(ActivationBadInput, BiasMustBeOneDimensional) {
  bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {1, kN});
  expect_bias_rejected(LLMK_ERROR_INVALID_NDIM, "bias has 2 dimensions; it must have 1");
}

TEST_F(ActivationBadInput, BiasNotContiguous) {
  bias_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {kN / 2}, {2});
  x_.shape[1] = y_.shape[1] = kN / 2;
  expect_bias_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "bias must be contiguous in dimension 0");
}

TEST_F(ActivationBadInput, NdimOutOfRange) {
  x_.ndim = LLMK_MAX_DIMS + 1;
  expect_bias_rejected(LLMK_ERROR_INVALID_NDIM, "x has ndim 9");
  expect_gated_rejected(LLMK_ERROR_INVALID_NDIM, "gate has ndim 9");
}

TEST_F(ActivationBadInput, ScalarInput) {
  x_.ndim = y_.ndim = up_.ndim = 0;
  expect_bias_rejected(LLMK_ERROR_INVALID_NDIM, "x has 0 dimensions");
  expect_gated_rejected(LLMK_ERROR_INVALID_NDIM, "gate has 0 dimensions");
}

TEST_F(ActivationBadInput, NegativeExtent) {
  up_.shape[0] = -4;
  expect_gated_rejected(LLMK_ERROR_INVALID_SHAPE, "up has a negative extent");
}

TEST_F(ActivationBadInput, NegativeStride) {
  x_.strides[0] = -kN;
  expect_bias_rejected(LLMK_ERROR_INVALID_STRIDE, "x has a negative stride");
}

TEST_F(ActivationBadInput, OverflowingStride) {
  up_.strides[0] = INT64_MAX / 2;
  expect_gated_rejected(LLMK_ERROR_INVALID_STRIDE, "up reaches beyond the address space");
}

TEST_F(ActivationBadInput, LastDimensionNotContiguous) {
  x_.shape[1] = y_.shape[1] = up_.shape[1] = bias_.shape[0] = kN / 2;
  x_.strides[1] = 2;
  expect_bias_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "x must be contiguous in dimension 1");
  x_.strides[1] = 1;
  up_.strides[1] = 2;
  expect_gated_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "up must be contiguous in dimension 1");
  up_.strides[1] = 1;
  y_.strides[1] = 2;
  expect_gated_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "y must be contiguous in dimension 1");
}

TEST_F(ActivationBadInput, Misaligned) {
  x_.data = x_data_.data() + 2;  // a float at an odd half-word
  expect_bias_rejected(LLMK_ERROR_MISALIGNED, "x.data");
  x_.data = x_data_.data();
  up_.data = up_data_.data() + 1;
  expect_gated_rejected(LLMK_ERROR_MISALIGNED, "up.data");
}

TEST_F(ActivationBadInput, OutputOverlapsAnInput) {
  // Shifted by one element: neither disjoint nor the same view.
  y_.data = static_cast<float*>(x_.data) + 1;
  expect_rejected("bias_activation", bias_activation(), LLMK_ERROR_OVERLAP, "y overlaps x");
  expect_rejected("gated_activation", gated_activation(), LLMK_ERROR_OVERLAP, "y overlaps gate");
  y_.data = static_cast<float*>(up_.data) + 1;
  expect_rejected("gated_activation", gated_activation(), LLMK_ERROR_OVERLAP, "y overlaps up");
}

TEST_F(ActivationBadInput, OutputIsTheBias) {
  // In place is x only: y over the bias (rows of stride 0 there) is refused.
  y_ = make_view(bias_data_.data(), LLMK_DTYPE_F32, {1, kN});
  x_.shape[0] = 1;
  expect_rejected("bias_activation", bias_activation(), LLMK_ERROR_OVERLAP, "y overlaps bias");
}

TEST_F(ActivationBadInput, OutputRowsOverlapEachOther) {
  y_.strides[0] = 0;
  expect_bias_rejected(LLMK_ERROR_OVERLAP, "y has stride 0 in dimension 0");
  expect_gated_rejected(LLMK_ERROR_OVERLAP, "y has stride 0 in dimension 0");
}

TEST_F(ActivationBadInput, InvalidActivation) {
  activation_ = static_cast<llmk_activation>(5);
  expect_bias_rejected(LLMK_ERROR_INVALID_VALUE, "activation is 5");
  activation_ = static_cast<llmk_activation>(-1);
  expect_gated_rejected(LLMK_ERROR_INVALID_VALUE, "activation is -1");
}

TEST_F(ActivationBadInput, TooManyUnmergeableLeadingDimensions) {
  // [2, 2, 2, 2, 4] with gaps between every leading dimension: four strided row dimensions.
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {2, 2, 2, 2, 4}, {80, 24, 11, 5, 1});
  y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {2, 2, 2, 2, 4}, {80, 24, 11, 5, 1});
  up_ = make_view(up_data_.data(), LLMK_DTYPE_F32, {2, 2, 2, 2, 4}, {80, 24, 11, 5, 1});
  bias_.shape[0] = 4;
  expect_bias_rejected(LLMK_ERROR_UNSUPPORTED, "at most 3");
  expect_gated_rejected(LLMK_ERROR_UNSUPPORTED, "at most 3");
}

// --- layouts that are allowed, and values ------------------------------------------------------

class ActivationCpu : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }
  llmk_context* ctx_ = nullptr;
};

TEST_F(ActivationCpu, FusedGateUpLayout) {
  // vLLM's silu_and_mul input [rows, 2n]: gate is each row's first n columns, up the next n.
  constexpr int64_t kRows = 3, kN = 5;
  std::vector<float> fused(kRows * 2 * kN), y(kRows * kN, NAN);
  for (size_t i = 0; i < fused.size(); ++i) fused[i] = 0.25f * static_cast<float>(i) - 3.0f;
  const llmk_tensor gate = make_view(fused.data(), LLMK_DTYPE_F32, {kRows, kN}, {2 * kN, 1});
  const llmk_tensor up = make_view(fused.data() + kN, LLMK_DTYPE_F32, {kRows, kN}, {2 * kN, 1});
  const llmk_tensor out = make_view(y.data(), LLMK_DTYPE_F32, {kRows, kN});
  ASSERT_EQ(llmk_gated_activation(ctx_, &gate, &up, LLMK_ACTIVATION_SILU, &out, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t i = 0; i < kN; ++i) {
      const double g = fused[r * 2 * kN + i], u = fused[r * 2 * kN + kN + i];
      EXPECT_NEAR(y[r * kN + i], g / (1.0 + std::exp(-g)) * u, 1e-6) << r << "," << i;
    }
  }
}

TEST_F(ActivationCpu, InPlaceOverGateOrUp) {
  std::vector<float> gate_data = {-2.0f, -0.5f, 0.5f, 2.0f}, up_data = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<float> gate0 = gate_data, up0 = up_data;
  const llmk_tensor gate = make_view(gate_data.data(), LLMK_DTYPE_F32, {4});
  const llmk_tensor up = make_view(up_data.data(), LLMK_DTYPE_F32, {4});
  ASSERT_EQ(llmk_gated_activation(ctx_, &gate, &up, LLMK_ACTIVATION_RELU, &up, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(up_data[i], std::max(gate0[i], 0.0f) * up0[i]);
  ASSERT_EQ(llmk_gated_activation(ctx_, &gate, &up, LLMK_ACTIVATION_IDENTITY, &gate, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(gate_data[i], gate0[i] * up_data[i]);
}

TEST_F(ActivationCpu, GateAndUpMayBeOneTensor) {
  // a(x) * x: both inputs are the same view, and y may be that view too.
  std::vector<float> data = {-1.0f, 0.0f, 1.5f};
  const llmk_tensor x = make_view(data.data(), LLMK_DTYPE_F32, {3});
  ASSERT_EQ(llmk_gated_activation(ctx_, &x, &x, LLMK_ACTIVATION_RELU, &x, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(data, (std::vector<float>{0.0f, 0.0f, 2.25f}));
}

TEST_F(ActivationCpu, EmptyInputIsANoOp) {
  float bias = 1.0f;
  const llmk_tensor x = make_view(nullptr, LLMK_DTYPE_F32, {0, 1});
  const llmk_tensor b = make_view(&bias, LLMK_DTYPE_F32, {1});
  EXPECT_EQ(llmk_bias_activation(ctx_, &x, &b, LLMK_ACTIVATION_GELU, &x, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  const llmk_tensor rows_of_nothing = make_view(nullptr, LLMK_DTYPE_BF16, {4, 0});
  EXPECT_EQ(llmk_gated_activation(ctx_, &rows_of_nothing, &rows_of_nothing, LLMK_ACTIVATION_SILU,
                                  &rows_of_nothing, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
}

TEST_F(ActivationCpu, KnownValues) {
  // f32 outputs of 1 + 0.5 (x + bias) and of the far tails, against closed forms.
  const float x_values[] = {1.0f, -10.0f, 30.0f, -30.0f};
  struct Expected {
    llmk_activation activation;
    double y[4];
  };
  const Expected expected[] = {
      {LLMK_ACTIVATION_IDENTITY, {1.5, -9.5, 30.5, -29.5}},
      // x Phi(x) = x erfc(-x / sqrt 2) / 2; at -9.5 about -1e-20, where 1 + erf cancels to 0.
      {LLMK_ACTIVATION_GELU,
       {0.75 * std::erfc(-1.5 / std::sqrt(2.0)), -4.75 * std::erfc(9.5 / std::sqrt(2.0)), 30.5, 0}},
      {LLMK_ACTIVATION_SILU,
       {1.5 / (1 + std::exp(-1.5)), -9.5 / (1 + std::exp(9.5)), 30.5,
        -29.5 / (1 + std::exp(29.5))}},
      {LLMK_ACTIVATION_RELU, {1.5, 0.0, 30.5, 0.0}},
  };
  for (const Expected& e : expected) {
    std::vector<float> x(x_values, x_values + 4), y(4, NAN), bias = {0.5f, 0.5f, 0.5f, 0.5f};
    const llmk_tensor xv = make_view(x.data(), LLMK_DTYPE_F32, {1, 4});
    const llmk_tensor bv = make_view(bias.data(), LLMK_DTYPE_F32, {4});
    const llmk_tensor yv = make_view(y.data(), LLMK_DTYPE_F32, {1, 4});
    ASSERT_EQ(llmk_bias_activation(ctx_, &xv, &bv, e.activation, &yv, nullptr), LLMK_SUCCESS);
    for (int i = 0; i < 4; ++i) {
      if (e.activation == LLMK_ACTIVATION_GELU && i == 3) {
        EXPECT_LT(std::fabs(y[i]), 1e-30) << "gelu(-29.5)";  // about 1e-190: zero in f32
        continue;
      }
      EXPECT_NEAR(y[i], e.y[i], 1e-6 * std::fabs(e.y[i])) << e.activation << " at " << i;
    }
  }
}

TEST_F(ActivationCpu, GeluTanhMatchesItsFormula) {
  std::vector<float> x = {-3.0f, -0.5f, 0.0f, 0.75f, 4.0f}, y(5, NAN);
  const llmk_tensor xv = make_view(x.data(), LLMK_DTYPE_F32, {5});
  const llmk_tensor yv = make_view(y.data(), LLMK_DTYPE_F32, {5});
  ASSERT_EQ(llmk_bias_activation(ctx_, &xv, nullptr, LLMK_ACTIVATION_GELU_TANH, &yv, nullptr),
            LLMK_SUCCESS);
  for (int i = 0; i < 5; ++i) {
    const double v = x[i];
    const double want = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    EXPECT_NEAR(y[i], want, 1e-6 * std::fabs(want) + 1e-12) << v;
  }
}

TEST_F(ActivationCpu, OutputIsRoundedOnce) {
  // bf16 keeps 8 significant bits. gate = up = 1 + 2^-7 with identity: the f64 product
  // 1 + 2^-6 + 2^-14 rounds once, to 1 + 2^-6; x + bias = 1 + 2^-8 + 2^-9 (above the tie between
  // 1 and 1 + 2^-7) rounds once, to 1 + 2^-7, where rounding the bias away first would give 1.
  const uint16_t one_plus = llmk::bf16_from_double(1 + 0x1p-7);
  const uint16_t three_halves_ulp = llmk::bf16_from_double(0x1p-8 + 0x1p-9);
  uint16_t gate = one_plus, up = one_plus, y = 0, x = llmk::bf16_from_double(1.0);
  uint16_t bias = three_halves_ulp;
  const llmk_tensor gv = make_view(&gate, LLMK_DTYPE_BF16, {1});
  const llmk_tensor uv = make_view(&up, LLMK_DTYPE_BF16, {1});
  const llmk_tensor yv = make_view(&y, LLMK_DTYPE_BF16, {1});
  ASSERT_EQ(llmk_gated_activation(ctx_, &gv, &uv, LLMK_ACTIVATION_IDENTITY, &yv, nullptr),
            LLMK_SUCCESS);
  EXPECT_EQ(llmk::bf16_to_double(y), 1 + 0x1p-6);
  const llmk_tensor xv = make_view(&x, LLMK_DTYPE_BF16, {1});
  const llmk_tensor bv = make_view(&bias, LLMK_DTYPE_BF16, {1});
  ASSERT_EQ(llmk_bias_activation(ctx_, &xv, &bv, LLMK_ACTIVATION_RELU, &yv, nullptr), LLMK_SUCCESS);
  EXPECT_EQ(llmk::bf16_to_double(y), 1 + 0x1p-7);
}

}  // namespace activation_test
