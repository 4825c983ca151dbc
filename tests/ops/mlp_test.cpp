// ffn and gated_mlp on the CPU context: the workspace size queries, one test per argument check
// (status, a message naming the op and the argument, y untouched), and the composition the header
// promises: each GEMM as llmk_matmul computes it with the intermediate rounded to the dtype, so
// on the CPU a block gives the very bits of the separate calls. The shared vectors run in
// test_cpu.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace mlp_test {

// The first 16-byte aligned address in `bytes` (give it 16 bytes of slack).
void* aligned16(std::vector<uint8_t>& bytes) {
  const auto address = reinterpret_cast<uintptr_t>(bytes.data());
  return bytes.data() + (16 - address % 16) % 16;
}

// x [3, 16] f32, d_ff 40: w1 [40, 16], b1 [40], w2 [16, 40], b2 [16]; gated_mlp's w_gate and w_up
// are the two halves of one fused [80, 16] weight, w_down [16, 40]. y is poisoned; the workspace
// comes from llmk_malloc (256-byte aligned) with the size the query gives. Each test breaks one
// thing.
class MlpBadInput : public testing::Test {
 protected:
  static constexpr int64_t kTokens = 3, kModel = 16, kFf = 40;
  static constexpr size_t kSlack = 64;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    std::mt19937_64 rng(4);
    x_data_ = random_buffer(LLMK_DTYPE_F32, kTokens * kModel + kSlack, rng);
    w1_data_ = random_buffer(LLMK_DTYPE_F32, 2 * kFf * kModel + kSlack, rng, 0.0, 0.25);
    b1_data_ = random_buffer(LLMK_DTYPE_F32, kFf + kSlack, rng);
    w2_data_ = random_buffer(LLMK_DTYPE_F32, kModel * kFf + kSlack, rng, 0.0, 0.2);
    b2_data_ = random_buffer(LLMK_DTYPE_F32, kModel + kSlack, rng);
    y_data_ = nan_buffer(LLMK_DTYPE_F32, kTokens * kModel + kSlack);
    x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel});
    w1_ = make_view(w1_data_.data(), LLMK_DTYPE_F32, {kFf, kModel});
    w_up_ = make_view(w1_data_.data() + 4 * kFf * kModel, LLMK_DTYPE_F32, {kFf, kModel});
    b1_ = make_view(b1_data_.data(), LLMK_DTYPE_F32, {kFf});
    w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel, kFf});
    b2_ = make_view(b2_data_.data(), LLMK_DTYPE_F32, {kModel});
    y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel});
    llmk_mlp_config_init(&config_);
    size_t ffn_bytes = 0, gated_bytes = 0;
    ASSERT_EQ(llmk_ffn_workspace_size(ctx_, &x_, &w1_, &ffn_bytes), LLMK_SUCCESS);
    ASSERT_EQ(llmk_gated_mlp_workspace_size(ctx_, &x_, &w1_, &gated_bytes), LLMK_SUCCESS);
    workspace_bytes_ = std::max(ffn_bytes, gated_bytes);
    ASSERT_EQ(llmk_malloc(ctx_, workspace_bytes_ + 256, &workspace_allocation_), LLMK_SUCCESS);
    workspace_ = workspace_allocation_;
  }
  void TearDown() override {
    EXPECT_EQ(llmk_free(ctx_, workspace_allocation_), LLMK_SUCCESS);
    llmk_context_destroy(ctx_);
  }

  // w1 plays w_gate, w2 plays w_down.
  llmk_status ffn() {
    return llmk_ffn(ctx_, config_ptr_, x_ptr_, w1_ptr_, b1_ptr_, w2_ptr_, b2_ptr_, activation_,
                    workspace_, workspace_bytes_, y_ptr_, nullptr);
  }
  llmk_status gated_mlp() {
    return llmk_gated_mlp(ctx_, config_ptr_, x_ptr_, w1_ptr_, w_up_ptr_, w2_ptr_, activation_,
                          workspace_, workspace_bytes_, y_ptr_, nullptr);
  }

  void expect_rejected(const char* op, llmk_status got, llmk_status status, const char* text) {
    EXPECT_EQ(got, status) << op << ": " << llmk_status_string(got) << ": "
                           << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind(std::string(op) + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(text), std::string::npos) << message;
    for (size_t i = 0; i < y_data_.size() / 4; ++i) {
      float v;
      std::memcpy(&v, y_data_.data() + 4 * i, 4);
      ASSERT_TRUE(std::isnan(v)) << "y[" << i << "] written by a rejected call";
    }
  }
  void expect_ffn_rejected(llmk_status status, const char* text) {
    expect_rejected("ffn", ffn(), status, text);
  }
  void expect_gated_rejected(llmk_status status, const char* text) {
    expect_rejected("gated_mlp", gated_mlp(), status, text);
  }
  // Both ops fail the same way (w1 / w_gate and w2 / w_down are named by each op's own names,
  // so `text` is what the two messages share).
  void expect_both_rejected(llmk_status status, const char* text) {
    expect_ffn_rejected(status, text);
    expect_gated_rejected(status, text);
  }

  llmk_context* ctx_ = nullptr;
  std::vector<uint8_t> x_data_, w1_data_, b1_data_, w2_data_, b2_data_, y_data_;
  llmk_tensor x_{}, w1_{}, w_up_{}, b1_{}, w2_{}, b2_{}, y_{};
  llmk_mlp_config config_{};
  const llmk_mlp_config* config_ptr_ = &config_;
  const llmk_tensor* x_ptr_ = &x_;
  const llmk_tensor* w1_ptr_ = &w1_;
  const llmk_tensor* w_up_ptr_ = &w_up_;
  const llmk_tensor* b1_ptr_ = &b1_;
  const llmk_tensor* w2_ptr_ = &w2_;
  const llmk_tensor* b2_ptr_ = &b2_;
  const llmk_tensor* y_ptr_ = &y_;
  llmk_activation activation_ = LLMK_ACTIVATION_SILU;
  void* workspace_allocation_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

TEST_F(MlpBadInput, ValidCallsSucceed) {
  EXPECT_EQ(ffn(), LLMK_SUCCESS) << llmk_last_error_message();
  b1_ptr_ = b2_ptr_ = nullptr;
  EXPECT_EQ(ffn(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(gated_mlp(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(MlpBadInput, WorkspaceSizes) {
  // The intermediate of the block at least: h [tokens, d_ff] for ffn, [gate | up] for gated_mlp.
  size_t ffn_bytes = 0, gated_bytes = 0;
  ASSERT_EQ(llmk_ffn_workspace_size(ctx_, &x_, &w1_, &ffn_bytes), LLMK_SUCCESS);
  ASSERT_EQ(llmk_gated_mlp_workspace_size(ctx_, &x_, &w1_, &gated_bytes), LLMK_SUCCESS);
  EXPECT_GE(ffn_bytes, size_t{kTokens * kFf * 4});
  EXPECT_GE(gated_bytes, size_t{kTokens * kFf * 4});
  // Exactly the size asked for is enough.
  EXPECT_EQ(llmk_ffn(ctx_, &config_, &x_, &w1_, &b1_, &w2_, &b2_, activation_, workspace_,
                     ffn_bytes, &y_, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(llmk_gated_mlp(ctx_, &config_, &x_, &w1_, &w_up_, &w2_, activation_, workspace_,
                           gated_bytes, &y_, nullptr),
            LLMK_SUCCESS)
      << llmk_last_error_message();
  // No tokens: nothing needed.
  const llmk_tensor no_tokens = make_view(nullptr, LLMK_DTYPE_F32, {0, kModel});
  ASSERT_EQ(llmk_ffn_workspace_size(ctx_, &no_tokens, &w1_, &ffn_bytes), LLMK_SUCCESS);
  EXPECT_EQ(ffn_bytes, 0u);
}

TEST_F(MlpBadInput, WorkspaceSizeErrors) {
  size_t bytes = 12345;
  EXPECT_EQ(llmk_ffn_workspace_size(nullptr, &x_, &w1_, &bytes), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
  EXPECT_EQ(llmk_ffn_workspace_size(ctx_, &x_, &w1_, nullptr), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("bytes is NULL"), std::string::npos)
      << llmk_last_error_message();
  EXPECT_EQ(llmk_gated_mlp_workspace_size(ctx_, nullptr, &w1_, &bytes), LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("x is NULL"), std::string::npos)
      << llmk_last_error_message();
  w1_.shape[1] = kModel - 1;
  EXPECT_EQ(llmk_ffn_workspace_size(ctx_, &x_, &w1_, &bytes), LLMK_ERROR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(llmk_last_error_message()).find("w1 has 15 columns"), std::string::npos)
      << llmk_last_error_message();
  EXPECT_EQ(llmk_gated_mlp_workspace_size(ctx_, &x_, &w1_, &bytes), LLMK_ERROR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(llmk_last_error_message()).find("w_gate has 15 columns"), std::string::npos)
      << llmk_last_error_message();
  EXPECT_EQ(bytes, 12345u) << "a failed query wrote its answer";
}

TEST_F(MlpBadInput, NullContextAndConfig) {
  EXPECT_EQ(llmk_ffn(nullptr, &config_, &x_, &w1_, &b1_, &w2_, &b2_, activation_, workspace_,
                     workspace_bytes_, &y_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ffn: ctx is NULL"), std::string::npos);
  EXPECT_EQ(llmk_gated_mlp(nullptr, &config_, &x_, &w1_, &w_up_, &w2_, activation_, workspace_,
                           workspace_bytes_, &y_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("gated_mlp: ctx is NULL"),
            std::string::npos);
  config_ptr_ = nullptr;
  expect_both_rejected(LLMK_ERROR_NULL_POINTER, "config is NULL");
  config_ptr_ = &config_;
  config_.struct_size = 4;
  expect_both_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 4");
}

TEST_F(MlpBadInput, ConfigDefaults) {
  llmk_mlp_config config;
  std::memset(&config, 0xCD, sizeof config);
  llmk_mlp_config_init(&config);
  EXPECT_EQ(config.struct_size, sizeof(llmk_mlp_config));
  EXPECT_EQ(config.allow_tf32, 0);
  EXPECT_EQ(config.path, LLMK_MATMUL_PATH_AUTO);
  EXPECT_EQ(config.tune, 0);
  llmk_mlp_config_init(nullptr);
}

TEST_F(MlpBadInput, ConfigOfAnOlderHeader) {
  // The first llmk_mlp_config ended at path: a caller built against it passes that struct_size,
  // and the fields it did not have (tune) take their defaults, whatever the bytes after it hold.
  config_.tune = 0x5EED;
  config_.struct_size = offsetof(llmk_mlp_config, tune) - 1;
  expect_both_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 15");
  config_.struct_size = offsetof(llmk_mlp_config, tune);
  EXPECT_EQ(ffn(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(gated_mlp(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(MlpBadInput, NullTensors) {
  x_ptr_ = nullptr;
  expect_both_rejected(LLMK_ERROR_NULL_POINTER, "x is NULL");
  x_ptr_ = &x_;
  w1_ptr_ = nullptr;
  expect_ffn_rejected(LLMK_ERROR_NULL_POINTER, "w1 is NULL");
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "w_gate is NULL");
  w1_ptr_ = &w1_;
  w_up_ptr_ = nullptr;
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "w_up is NULL");
  w_up_ptr_ = &w_up_;
  w2_ptr_ = nullptr;
  expect_ffn_rejected(LLMK_ERROR_NULL_POINTER, "w2 is NULL");
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "w_down is NULL");
  w2_ptr_ = &w2_;
  y_ptr_ = nullptr;
  expect_both_rejected(LLMK_ERROR_NULL_POINTER, "y is NULL");
}

TEST_F(MlpBadInput, NullData) {
  b1_.data = nullptr;
  expect_ffn_rejected(LLMK_ERROR_NULL_POINTER, "b1.data is NULL");
  b1_.data = b1_data_.data();
  w_up_.data = nullptr;
  expect_gated_rejected(LLMK_ERROR_NULL_POINTER, "w_up.data is NULL");
}

TEST_F(MlpBadInput, Dtypes) {
  x_.dtype = w1_.dtype = w_up_.dtype = b1_.dtype = w2_.dtype = b2_.dtype = y_.dtype =
      LLMK_DTYPE_I32;
  expect_both_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "x has dtype i32");
  x_.dtype = w1_.dtype = w_up_.dtype = b1_.dtype = w2_.dtype = b2_.dtype = y_.dtype =
      LLMK_DTYPE_F32;
  w2_.dtype = LLMK_DTYPE_BF16;
  expect_ffn_rejected(LLMK_ERROR_DTYPE_MISMATCH, "w2 is bf16 but x is f32");
  expect_gated_rejected(LLMK_ERROR_DTYPE_MISMATCH, "w_down is bf16 but x is f32");
  w2_.dtype = LLMK_DTYPE_F32;
  w_up_.dtype = LLMK_DTYPE_F16;
  expect_gated_rejected(LLMK_ERROR_DTYPE_MISMATCH, "w_up is f16 but x is f32");
  w_up_.dtype = LLMK_DTYPE_F32;
  b2_.dtype = LLMK_DTYPE_F16;
  expect_ffn_rejected(LLMK_ERROR_DTYPE_MISMATCH, "b2 is f16 but x is f32");
  b2_.dtype = LLMK_DTYPE_F32;
  y_.dtype = LLMK_DTYPE_BF16;
  expect_both_rejected(LLMK_ERROR_DTYPE_MISMATCH, "y is bf16 but x is f32");
}

TEST_F(MlpBadInput, Ndim) {
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {1, kTokens, kModel});
  expect_both_rejected(LLMK_ERROR_INVALID_NDIM, "x has 3 dimensions; it must have 2");
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel});
  w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel * kFf});
  expect_ffn_rejected(LLMK_ERROR_INVALID_NDIM, "w2 has 1 dimensions; it must have 2");
  expect_gated_rejected(LLMK_ERROR_INVALID_NDIM, "w_down has 1 dimensions; it must have 2");
  w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel, kFf});
  b1_ = make_view(b1_data_.data(), LLMK_DTYPE_F32, {1, kFf});
  expect_ffn_rejected(LLMK_ERROR_INVALID_NDIM, "b1 has 2 dimensions; it must have 1");
}

TEST_F(MlpBadInput, InputWeightShapes) {
  w1_.shape[1] = kModel - 1;
  expect_ffn_rejected(LLMK_ERROR_SHAPE_MISMATCH, "w1 has 15 columns (in_features), x has 16");
  expect_gated_rejected(LLMK_ERROR_SHAPE_MISMATCH, "w_gate has 15 columns (in_features), x has 16");
  w1_.shape[1] = kModel;
  w_up_.shape[0] = kFf - 1;
  expect_gated_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                        "w_up has extent 39 in dimension 0 but w_gate has 40");
}

TEST_F(MlpBadInput, OutputWeightShape) {
  w2_.shape[1] = kFf - 1;
  expect_ffn_rejected(LLMK_ERROR_SHAPE_MISMATCH,
                      "w2 is [16, 39]; it must be [d_model, d_ff] = [16, 40]");
  expect_gated_rejected(LLMK_ERROR_SHAPE_MISMATCH, "w_down is [16, 39]");
  w2_.shape[1] = kFf;
  w2_.shape[0] = kModel + 1;
  expect_ffn_rejected(LLMK_ERROR_SHAPE_MISMATCH, "w2 is [17, 40]");
}

TEST_F(MlpBadInput, BiasLengths) {
  b1_.shape[0] = kFf - 1;
  expect_ffn_rejected(LLMK_ERROR_SHAPE_MISMATCH, "b1 has 39 elements; it must have d_ff = 40");
  b1_.shape[0] = kFf;
  b2_.shape[0] = kModel + 1;
  expect_ffn_rejected(LLMK_ERROR_SHAPE_MISMATCH, "b2 has 17 elements; it must have d_model = 16");
}

TEST_F(MlpBadInput, BiasNotContiguous) {
  b2_ = make_view(b2_data_.data(), LLMK_DTYPE_F32, {kModel}, {2});
  expect_ffn_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "b2 must be contiguous in dimension 0");
}

TEST_F(MlpBadInput, YShape) {
  y_.shape[0] = kTokens - 1;
  expect_both_rejected(LLMK_ERROR_SHAPE_MISMATCH, "y has extent 2 in dimension 0 but x has 3");
}

TEST_F(MlpBadInput, LastDimensionNotContiguous) {
  // Every tensor is a matrix of rows: last dimension stride 1.
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel}, {2 * kModel, 2});
  expect_both_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "x must be contiguous in dimension 1");
  x_ = make_view(x_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel});
  w1_ = make_view(w1_data_.data(), LLMK_DTYPE_F32, {kFf, kModel}, {1, kFf});  // W^T's layout
  expect_ffn_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "w1 must be contiguous in dimension 1");
  expect_gated_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "w_gate must be contiguous in dimension 1");
  w1_ = make_view(w1_data_.data(), LLMK_DTYPE_F32, {kFf, kModel});
  w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel, kFf}, {1, kModel});
  expect_ffn_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "w2 must be contiguous in dimension 1");
  w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel, kFf});
  y_ = make_view(y_data_.data(), LLMK_DTYPE_F32, {kTokens, kModel / 2}, {kModel, 2});
  x_.shape[1] = kModel / 2;
  w1_.shape[1] = w_up_.shape[1] = kModel / 2;
  w2_ = make_view(w2_data_.data(), LLMK_DTYPE_F32, {kModel / 2, kFf});
  b2_.shape[0] = kModel / 2;
  expect_both_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "y must be contiguous in dimension 1");
}

TEST_F(MlpBadInput, RowStrideSmallerThanARow) {
  w1_.strides[0] = kModel - 1;
  expect_ffn_rejected(LLMK_ERROR_INVALID_STRIDE, "w1 has a row stride of 15, less than its 16");
  w1_.strides[0] = kModel;
  y_.strides[0] = 0;
  expect_both_rejected(LLMK_ERROR_INVALID_STRIDE, "y has a row stride of 0");
}

TEST_F(MlpBadInput, InvalidActivationAndPath) {
  activation_ = static_cast<llmk_activation>(9);
  expect_both_rejected(LLMK_ERROR_INVALID_VALUE, "activation is 9");
  activation_ = LLMK_ACTIVATION_GELU;
  config_.path = 3;
  expect_both_rejected(LLMK_ERROR_INVALID_VALUE, "config->path is 3");
  config_.path = -2;
  expect_both_rejected(LLMK_ERROR_INVALID_VALUE, "config->path is -2");
}

TEST_F(MlpBadInput, EmptyFeatureDimensions) {
  // d_model or d_ff of 0 is refused (the implementation's choice; the header does not say).
  w1_.shape[0] = w_up_.shape[0] = 0;
  b1_.shape[0] = 0;
  w2_.shape[1] = 0;
  expect_both_rejected(LLMK_ERROR_UNSUPPORTED, "d_model and d_ff must be > 0");
}

TEST_F(MlpBadInput, NoTokensIsANoOp) {
  x_ = make_view(nullptr, LLMK_DTYPE_F32, {0, kModel});
  y_ = make_view(nullptr, LLMK_DTYPE_F32, {0, kModel});
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  EXPECT_EQ(ffn(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(gated_mlp(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(MlpBadInput, WorkspaceNull) {
  workspace_ = nullptr;
  expect_both_rejected(LLMK_ERROR_NULL_POINTER, "workspace is NULL");
}

TEST_F(MlpBadInput, WorkspaceTooSmall) {
  size_t ffn_bytes = 0, gated_bytes = 0;
  ASSERT_EQ(llmk_ffn_workspace_size(ctx_, &x_, &w1_, &ffn_bytes), LLMK_SUCCESS);
  ASSERT_EQ(llmk_gated_mlp_workspace_size(ctx_, &x_, &w1_, &gated_bytes), LLMK_SUCCESS);
  workspace_bytes_ = ffn_bytes - 1;
  expect_ffn_rejected(LLMK_ERROR_INVALID_VALUE, "workspace_bytes is");
  workspace_bytes_ = gated_bytes - 1;
  expect_gated_rejected(LLMK_ERROR_INVALID_VALUE, "workspace_bytes is");
}

TEST_F(MlpBadInput, WorkspaceMisaligned) {
  workspace_ = static_cast<uint8_t*>(workspace_allocation_) + 4;  // aligned to floats, not to 16
  expect_both_rejected(LLMK_ERROR_MISALIGNED, "workspace");
}

TEST_F(MlpBadInput, WorkspaceOverlapsATensor) {
  // The workspace laid over an input (x, a weight) or the output.
  std::vector<uint8_t> big(workspace_bytes_ + 16 + 4 * kModel * kFf);
  void* base = aligned16(big);
  x_.data = base;
  workspace_ = base;
  expect_both_rejected(LLMK_ERROR_OVERLAP, "workspace overlaps x");
  x_.data = x_data_.data();
  w2_.data = base;
  expect_ffn_rejected(LLMK_ERROR_OVERLAP, "workspace overlaps w2");
  w2_.data = w2_data_.data();
  y_.data = base;
  expect_both_rejected(LLMK_ERROR_OVERLAP, "y overlaps workspace");
}

TEST_F(MlpBadInput, OutputOverlapsAnInput) {
  y_.data = x_data_.data() + 4;
  expect_both_rejected(LLMK_ERROR_OVERLAP, "y overlaps x");
  y_.data = w1_data_.data();
  expect_ffn_rejected(LLMK_ERROR_OVERLAP, "y overlaps w1");
  expect_gated_rejected(LLMK_ERROR_OVERLAP, "y overlaps w_gate");
  y_.data = b2_data_.data();
  expect_ffn_rejected(LLMK_ERROR_OVERLAP, "y overlaps b2");
}

// --- the composition -----------------------------------------------------------------------------

class MlpCpu : public testing::TestWithParam<int32_t> {
 protected:
  static constexpr int64_t kTokens = 5, kModel = 24, kFf = 56;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    dtype_ = GetParam();
    std::mt19937_64 rng(21 + dtype_);
    // Padded rows everywhere: x and y rows of 24 + 3, weights of 24 + 8 and 56 + 1.
    x_ = tensor(rng, {kTokens, kModel}, {kModel + 3, 1}, 1.0);
    wgu_ = tensor(rng, {2 * kFf, kModel}, {kModel + 8, 1}, 0.3);  // [gate; up], vLLM's layout
    w_gate_ = wgu_.view;
    w_gate_.shape[0] = kFf;
    w_up_ = w_gate_;
    w_up_.data = static_cast<uint8_t*>(w_gate_.data) + kFf * (kModel + 8) * element_bytes(dtype_);
    b1_ = tensor(rng, {kFf}, {1}, 0.5);
    w2_ = tensor(rng, {kModel, kFf}, {kFf + 1, 1}, 0.2);
    b2_ = tensor(rng, {kModel}, {1}, 0.5);
    llmk_mlp_config_init(&config_);
    llmk_matmul_config_init(&matmul_config_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  struct Tensor {
    std::vector<uint8_t> bytes;
    llmk_tensor view;
  };
  Tensor tensor(std::mt19937_64& rng, std::vector<int64_t> shape, std::vector<int64_t> strides,
                double scale) {
    Tensor t;
    t.view = make_view(nullptr, dtype_, shape, strides);
    t.bytes = random_buffer(dtype_, buffer_elements(t.view), rng, 0.0, scale);
    t.view.data = t.bytes.data();
    return t;
  }
  Tensor output(std::vector<int64_t> shape, std::vector<int64_t> strides) {
    Tensor t;
    t.view = make_view(nullptr, dtype_, shape, strides);
    t.bytes = nan_buffer(dtype_, buffer_elements(t.view));
    t.view.data = t.bytes.data();
    return t;
  }
  // nn.Linear's B = W^T: the transposed view of a row-major weight.
  static llmk_tensor transposed(llmk_tensor w) {
    std::swap(w.shape[0], w.shape[1]);
    std::swap(w.strides[0], w.strides[1]);
    return w;
  }
  void matmul(const llmk_tensor& a, const llmk_tensor& w, const llmk_tensor* bias,
              llmk_activation activation, const llmk_tensor& d) {
    matmul_config_.activation = activation;
    const llmk_tensor b = transposed(w);
    ASSERT_EQ(llmk_matmul(ctx_, &matmul_config_, &a, &b, nullptr, bias, &d, nullptr), LLMK_SUCCESS)
        << llmk_last_error_message();
  }
  std::vector<uint8_t> workspace(size_t bytes) {
    std::vector<uint8_t> w(bytes + 64);
    return w;
  }

  llmk_context* ctx_ = nullptr;
  int32_t dtype_ = LLMK_DTYPE_F32;
  Tensor x_, wgu_, b1_, w2_, b2_;
  llmk_tensor w_gate_{}, w_up_{};
  llmk_mlp_config config_{};
  llmk_matmul_config matmul_config_{};
};

TEST_P(MlpCpu, FfnIsTwoMatmulsWithHRoundedToTheDtype) {
  // The header: each GEMM runs as llmk_matmul would, and h is rounded to the dtype, as separate
  // calls round it. On the CPU both sides are the reference, so the bits must agree.
  for (llmk_activation activation :
       {LLMK_ACTIVATION_IDENTITY, LLMK_ACTIVATION_GELU, LLMK_ACTIVATION_GELU_TANH,
        LLMK_ACTIVATION_SILU, LLMK_ACTIVATION_RELU}) {
    SCOPED_TRACE(activation);
    for (bool biases : {false, true}) {
      Tensor h = output({kTokens, kFf}, {kFf, 1});
      Tensor separate = output({kTokens, kModel}, {kModel + 2, 1});
      matmul(x_.view, w_gate_, biases ? &b1_.view : nullptr, activation, h.view);
      matmul(h.view, w2_.view, biases ? &b2_.view : nullptr, LLMK_ACTIVATION_IDENTITY,
             separate.view);

      Tensor fused = output({kTokens, kModel}, {kModel + 2, 1});
      size_t bytes = 0;
      ASSERT_EQ(llmk_ffn_workspace_size(ctx_, &x_.view, &w_gate_, &bytes), LLMK_SUCCESS);
      std::vector<uint8_t> scratch = workspace(bytes);
      ASSERT_EQ(llmk_ffn(ctx_, &config_, &x_.view, &w_gate_, biases ? &b1_.view : nullptr,
                         &w2_.view, biases ? &b2_.view : nullptr, activation, aligned16(scratch),
                         bytes, &fused.view, nullptr),
                LLMK_SUCCESS)
          << llmk_last_error_message();
      EXPECT_EQ(fused.bytes, separate.bytes) << "biases " << biases;

      // On the CPU there is nothing to tune: the same call, the same bits.
      llmk_mlp_config tuned = config_;
      tuned.tune = 1;
      Tensor after_tuning = output({kTokens, kModel}, {kModel + 2, 1});
      ASSERT_EQ(llmk_ffn(ctx_, &tuned, &x_.view, &w_gate_, biases ? &b1_.view : nullptr, &w2_.view,
                         biases ? &b2_.view : nullptr, activation, aligned16(scratch), bytes,
                         &after_tuning.view, nullptr),
                LLMK_SUCCESS)
          << llmk_last_error_message();
      EXPECT_EQ(after_tuning.bytes, separate.bytes) << "tuned, biases " << biases;
    }
  }
}

TEST_P(MlpCpu, GatedMlpIsMatmulsAndGatedActivation) {
  // gate and up each rounded to the dtype (the CPU computes [gate | up] as cuBLASLt's path
  // does), h = a(gate) * up rounded, y = h Wd^T: bit for bit, with the fused [gate; up] weight
  // and with two separate weights alike.
  for (llmk_activation activation :
       {LLMK_ACTIVATION_IDENTITY, LLMK_ACTIVATION_GELU, LLMK_ACTIVATION_GELU_TANH,
        LLMK_ACTIVATION_SILU, LLMK_ACTIVATION_RELU}) {
    SCOPED_TRACE(activation);
    Tensor gate = output({kTokens, kFf}, {kFf, 1}), up = output({kTokens, kFf}, {kFf, 1});
    Tensor h = output({kTokens, kFf}, {kFf, 1});
    Tensor separate = output({kTokens, kModel}, {kModel + 2, 1});
    matmul(x_.view, w_gate_, nullptr, LLMK_ACTIVATION_IDENTITY, gate.view);
    matmul(x_.view, w_up_, nullptr, LLMK_ACTIVATION_IDENTITY, up.view);
    ASSERT_EQ(llmk_gated_activation(ctx_, &gate.view, &up.view, activation, &h.view, nullptr),
              LLMK_SUCCESS);
    matmul(h.view, w2_.view, nullptr, LLMK_ACTIVATION_IDENTITY, separate.view);

    size_t bytes = 0;
    ASSERT_EQ(llmk_gated_mlp_workspace_size(ctx_, &x_.view, &w_gate_, &bytes), LLMK_SUCCESS);
    std::vector<uint8_t> scratch = workspace(bytes);
    Tensor fused = output({kTokens, kModel}, {kModel + 2, 1});
    ASSERT_EQ(llmk_gated_mlp(ctx_, &config_, &x_.view, &w_gate_, &w_up_, &w2_.view, activation,
                             aligned16(scratch), bytes, &fused.view, nullptr),
              LLMK_SUCCESS)
        << llmk_last_error_message();
    EXPECT_EQ(fused.bytes, separate.bytes) << "fused weight";
    llmk_mlp_config tuned = config_;
    tuned.tune = 1;
    Tensor after_tuning = output({kTokens, kModel}, {kModel + 2, 1});
    ASSERT_EQ(llmk_gated_mlp(ctx_, &tuned, &x_.view, &w_gate_, &w_up_, &w2_.view, activation,
                             aligned16(scratch), bytes, &after_tuning.view, nullptr),
              LLMK_SUCCESS)
        << llmk_last_error_message();
    EXPECT_EQ(after_tuning.bytes, separate.bytes) << "fused weight, tuned";

    // w_up in a buffer of its own, with another row stride.
    Tensor own_up = output({kFf, kModel}, {kModel + 5, 1});
    for (int64_t r = 0; r < kFf; ++r) {
      std::memcpy(
          own_up.bytes.data() + r * (kModel + 5) * element_bytes(dtype_),
          static_cast<const uint8_t*>(w_up_.data) + r * (kModel + 8) * element_bytes(dtype_),
          kModel * element_bytes(dtype_));
    }
    Tensor apart = output({kTokens, kModel}, {kModel + 2, 1});
    ASSERT_EQ(llmk_gated_mlp(ctx_, &config_, &x_.view, &w_gate_, &own_up.view, &w2_.view,
                             activation, aligned16(scratch), bytes, &apart.view, nullptr),
              LLMK_SUCCESS)
        << llmk_last_error_message();
    EXPECT_EQ(apart.bytes, separate.bytes) << "separate weights";
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MlpCpu,
                         testing::Values(LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16),
                         [](const auto& info) {
                           return std::string(llmk::dtype_name(info.param));
                         });

}  // namespace mlp_test
