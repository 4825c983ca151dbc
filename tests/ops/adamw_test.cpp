// adamw_step on the CPU context: one test per argument check (its status, a message that names
// the argument, and param / exp_avg / exp_avg_sq left untouched), then the semantics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/testing.hpp"

using namespace llmk_test;

namespace {

// A 4 x 64 f32 problem; each test breaks one thing.
class AdamWBadInput : public testing::Test {
 protected:
  static constexpr int64_t kRows = 4, kColumns = 64, kElements = kRows * kColumns;

  void SetUp() override {
    ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx_), LLMK_SUCCESS);
    llmk_adamw_config_init(&config_);
    std::mt19937_64 rng(3);
    // Each buffer holds two problems' worth, for views shifted into one another.
    param_data_ = random_buffer(LLMK_DTYPE_F32, 2 * kElements, rng);
    grad_data_ = random_buffer(LLMK_DTYPE_F32, 2 * kElements, rng);
    exp_avg_data_ = random_buffer(LLMK_DTYPE_F32, 2 * kElements, rng, 0.0, 0.1);
    exp_avg_sq_data_ = random_buffer(LLMK_DTYPE_F32, 2 * kElements, rng, 1.0, 0.1);
    param_ = view(param_data_);
    grad_ = view(grad_data_);
    exp_avg_ = view(exp_avg_data_);
    exp_avg_sq_ = view(exp_avg_sq_data_);
  }
  void TearDown() override { llmk_context_destroy(ctx_); }

  static llmk_tensor view(std::vector<uint8_t>& data) {
    return make_view(data.data(), LLMK_DTYPE_F32, {kRows, kColumns});
  }

  llmk_status call() {
    return llmk_adamw_step(ctx_, config_ptr_, param_ptr_, grad_ptr_, exp_avg_ptr_, exp_avg_sq_ptr_,
                           nullptr);
  }

  // The call fails with `status`, names `argument` in its message, and writes nothing.
  void expect_rejected(llmk_status status, const std::string& argument) {
    const std::vector<uint8_t> param = param_data_, exp_avg = exp_avg_data_,
                               exp_avg_sq = exp_avg_sq_data_;
    const llmk_status got = call();
    EXPECT_EQ(got, status) << llmk_status_string(got) << ": " << llmk_last_error_message();
    const std::string message = llmk_last_error_message();
    EXPECT_EQ(message.rfind("adamw_step: ", 0), 0u) << message;
    EXPECT_NE(message.find(argument), std::string::npos) << message;
    EXPECT_EQ(param, param_data_) << "param written by a rejected call";
    EXPECT_EQ(exp_avg, exp_avg_data_) << "exp_avg written by a rejected call";
    EXPECT_EQ(exp_avg_sq, exp_avg_sq_data_) << "exp_avg_sq written by a rejected call";
  }

  llmk_context* ctx_ = nullptr;
  llmk_adamw_config config_{};
  std::vector<uint8_t> param_data_, grad_data_, exp_avg_data_, exp_avg_sq_data_;
  llmk_tensor param_{}, grad_{}, exp_avg_{}, exp_avg_sq_{};
  const llmk_adamw_config* config_ptr_ = &config_;
  const llmk_tensor* param_ptr_ = &param_;
  const llmk_tensor* grad_ptr_ = &grad_;
  const llmk_tensor* exp_avg_ptr_ = &exp_avg_;
  const llmk_tensor* exp_avg_sq_ptr_ = &exp_avg_sq_;
};

TEST_F(AdamWBadInput, ValidCallSucceeds) {
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_STREQ(llmk_last_error_message(), "");
}

TEST_F(AdamWBadInput, NullContext) {
  EXPECT_EQ(llmk_adamw_step(nullptr, &config_, &param_, &grad_, &exp_avg_, &exp_avg_sq_, nullptr),
            LLMK_ERROR_NULL_POINTER);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ctx"), std::string::npos);
}

TEST_F(AdamWBadInput, NullConfig) {
  config_ptr_ = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "config is NULL");
}

TEST_F(AdamWBadInput, UninitializedConfig) {
  config_.struct_size = 0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->struct_size is 0");
}

TEST_F(AdamWBadInput, NullTensors) {
  const llmk_tensor** slots[] = {&param_ptr_, &grad_ptr_, &exp_avg_ptr_, &exp_avg_sq_ptr_};
  const char* names[] = {"param is NULL", "grad is NULL", "exp_avg is NULL", "exp_avg_sq is NULL"};
  for (int i = 0; i < 4; ++i) {
    const llmk_tensor* kept = *slots[i];
    *slots[i] = nullptr;
    expect_rejected(LLMK_ERROR_NULL_POINTER, names[i]);
    *slots[i] = kept;
  }
}

TEST_F(AdamWBadInput, NullData) {
  exp_avg_.data = nullptr;
  expect_rejected(LLMK_ERROR_NULL_POINTER, "exp_avg.data");
}

TEST_F(AdamWBadInput, UnknownDtype) {
  grad_.dtype = 99;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "grad has dtype 99");
}

TEST_F(AdamWBadInput, GradDtype) {
  grad_.dtype = LLMK_DTYPE_I32;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "grad has dtype i32; supported: f32, f16, bf16");
}

TEST_F(AdamWBadInput, ParamAndStatesMustBeF32) {
  param_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "param has dtype bf16; supported: f32");
  param_.dtype = LLMK_DTYPE_F32;
  exp_avg_.dtype = LLMK_DTYPE_F16;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "exp_avg has dtype f16");
  exp_avg_.dtype = LLMK_DTYPE_F32;
  exp_avg_sq_.dtype = LLMK_DTYPE_BF16;
  expect_rejected(LLMK_ERROR_UNSUPPORTED_DTYPE, "exp_avg_sq has dtype bf16");
}

TEST_F(AdamWBadInput, ScalarParam) {
  param_.ndim = grad_.ndim = exp_avg_.ndim = exp_avg_sq_.ndim = 0;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "param has 0 dimensions");
}

TEST_F(AdamWBadInput, NdimOutOfRange) {
  grad_.ndim = LLMK_MAX_DIMS + 1;
  expect_rejected(LLMK_ERROR_INVALID_NDIM, "grad has ndim 9");
}

TEST_F(AdamWBadInput, ShapeMismatch) {
  grad_.shape[1] = kColumns - 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "grad has extent 63 in dimension 1 but param has 64");
  grad_.shape[1] = kColumns;
  exp_avg_sq_.ndim = 1;
  exp_avg_sq_.shape[0] = kElements;
  exp_avg_sq_.strides[0] = 1;
  expect_rejected(LLMK_ERROR_SHAPE_MISMATCH, "exp_avg_sq has 1 dimensions but param has 2");
}

TEST_F(AdamWBadInput, NegativeExtent) {
  exp_avg_.shape[0] = -4;
  expect_rejected(LLMK_ERROR_INVALID_SHAPE, "exp_avg has a negative extent");
}

TEST_F(AdamWBadInput, NegativeStride) {
  grad_.strides[0] = -kColumns;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "grad has a negative stride");
}

TEST_F(AdamWBadInput, OverflowingStride) {
  param_.strides[0] = INT64_MAX / 2;
  expect_rejected(LLMK_ERROR_INVALID_STRIDE, "param reaches beyond the address space");
}

TEST_F(AdamWBadInput, LastDimensionNotContiguous) {
  for (llmk_tensor* t : {&param_, &grad_, &exp_avg_, &exp_avg_sq_}) t->shape[1] = kColumns / 2;
  exp_avg_sq_.strides[1] = 2;
  expect_rejected(LLMK_ERROR_NOT_CONTIGUOUS, "exp_avg_sq must be contiguous in dimension 1");
}

TEST_F(AdamWBadInput, Misaligned) {
  grad_.data = grad_data_.data() + 2;  // a float at an odd half-word
  expect_rejected(LLMK_ERROR_MISALIGNED, "grad.data");
}

TEST_F(AdamWBadInput, OutputsRowsOverlapEachOther) {
  exp_avg_.strides[0] = 0;
  expect_rejected(LLMK_ERROR_OVERLAP, "exp_avg has stride 0 in dimension 0");
}

TEST_F(AdamWBadInput, EveryPairOfTensorsMustBeDisjoint) {
  // The second tensor of each pair moves into the first's buffer, one row further: the views
  // share three rows, and neither is the other.
  struct Pair {
    llmk_tensor* moved;
    std::vector<uint8_t>* into;
    const char* message;
  };
  const Pair pairs[] = {{&grad_, &param_data_, "param overlaps grad"},
                        {&exp_avg_, &param_data_, "param overlaps exp_avg"},
                        {&exp_avg_sq_, &param_data_, "param overlaps exp_avg_sq"},
                        {&grad_, &exp_avg_data_, "exp_avg overlaps grad"},
                        {&exp_avg_sq_, &exp_avg_data_, "exp_avg overlaps exp_avg_sq"},
                        {&grad_, &exp_avg_sq_data_, "exp_avg_sq overlaps grad"}};
  for (const Pair& pair : pairs) {
    void* kept = pair.moved->data;
    pair.moved->data = pair.into->data() + kColumns * 4;
    expect_rejected(LLMK_ERROR_OVERLAP, pair.message);
    pair.moved->data = kept;
  }
}

TEST_F(AdamWBadInput, IdenticalViewsAreRefusedToo) {
  exp_avg_sq_ = exp_avg_;  // nothing may alias, not even exactly
  expect_rejected(LLMK_ERROR_OVERLAP, "exp_avg overlaps exp_avg_sq");
  exp_avg_sq_ = view(exp_avg_sq_data_);
  grad_ = param_;
  expect_rejected(LLMK_ERROR_OVERLAP, "param overlaps grad");
}

TEST_F(AdamWBadInput, ColumnBlocksOfOneBufferAreDisjoint) {
  // param and exp_avg as the two halves of each row of one [4, 64] buffer.
  for (llmk_tensor* t : {&param_, &grad_, &exp_avg_, &exp_avg_sq_}) t->shape[1] = kColumns / 2;
  param_.strides[0] = exp_avg_.strides[0] = kColumns;
  exp_avg_.data = param_data_.data() + kColumns / 2 * 4;
  ASSERT_EQ(call(), LLMK_SUCCESS) << llmk_last_error_message();
}

TEST_F(AdamWBadInput, InvalidHyperparameters) {
  struct Bad {
    double llmk_adamw_config::*field;
    double value;
    const char* message;
  };
  const Bad bads[] = {
      {&llmk_adamw_config::lr, -1e-3, "config->lr is -0.001"},
      {&llmk_adamw_config::lr, NAN, "config->lr is nan"},
      {&llmk_adamw_config::lr, INFINITY, "config->lr is inf"},
      {&llmk_adamw_config::beta1, 1.0, "config->beta1 is 1"},
      {&llmk_adamw_config::beta1, -0.1, "config->beta1 is -0.1"},
      {&llmk_adamw_config::beta1, NAN, "config->beta1 is nan"},
      {&llmk_adamw_config::beta2, 1.0, "config->beta2 is 1"},
      {&llmk_adamw_config::beta2, -1e-9, "config->beta2 is -1e-09"},
      {&llmk_adamw_config::eps, 0.0, "config->eps is 0"},
      {&llmk_adamw_config::eps, -1e-8, "config->eps is -1e-08"},
      {&llmk_adamw_config::eps, INFINITY, "config->eps is inf"},
      {&llmk_adamw_config::weight_decay, -0.01, "config->weight_decay is -0.01"},
      {&llmk_adamw_config::weight_decay, NAN, "config->weight_decay is nan"},
  };
  for (const Bad& bad : bads) {
    SCOPED_TRACE(bad.message);
    llmk_adamw_config_init(&config_);
    config_.*bad.field = bad.value;
    expect_rejected(LLMK_ERROR_INVALID_VALUE, bad.message);
  }
}

TEST_F(AdamWBadInput, StepCountsFromOne) {
  config_.step = 0;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->step is 0");
  config_.step = -3;
  expect_rejected(LLMK_ERROR_INVALID_VALUE, "config->step is -3");
}

TEST_F(AdamWBadInput, TooManyUnmergeableLeadingDimensions) {
  // [2, 2, 2, 2, 8] with every leading stride padded: four strided dimensions.
  const std::vector<int64_t> shape = {2, 2, 2, 2, 8}, strides = {160, 72, 32, 12, 1};
  for (llmk_tensor* t : {&param_, &grad_, &exp_avg_, &exp_avg_sq_}) {
    *t = make_view(t->data, LLMK_DTYPE_F32, shape, strides);
  }
  expect_rejected(LLMK_ERROR_UNSUPPORTED, "at most 3");
}

// --- semantics ---------------------------------------------------------------------------------

TEST(AdamWSemantics, DefaultsAreTorchs) {
  llmk_adamw_config c;
  llmk_adamw_config_init(&c);
  EXPECT_EQ(c.struct_size, sizeof(llmk_adamw_config));
  EXPECT_EQ(c.lr, 1e-3);
  EXPECT_EQ(c.beta1, 0.9);
  EXPECT_EQ(c.beta2, 0.999);
  EXPECT_EQ(c.eps, 1e-8);
  EXPECT_EQ(c.weight_decay, 1e-2);
  EXPECT_EQ(c.step, 1);
  llmk_adamw_config_init(nullptr);  // accepted, does nothing
}

// From zero moments, step 1 moves each parameter by lr against its gradient's sign, whatever the
// gradient's size: m = (1 - beta1) g and sqrt(v) = sqrt(1 - beta2) |g| cancel the bias
// corrections exactly, so param = param (1 - lr wd) - lr g / (|g| + eps).
TEST(AdamWSemantics, FirstStepMovesByLrAgainstTheGradient) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::vector<float> param = {1.0f, 1.0f, -2.0f, 0.5f}, grad = {2.0f, -1e-3f, 30.0f, 0.0f},
                     exp_avg(4, 0.0f), exp_avg_sq(4, 0.0f);
  const llmk_tensor p = make_view(param.data(), LLMK_DTYPE_F32, {4});
  const llmk_tensor g = make_view(grad.data(), LLMK_DTYPE_F32, {4});
  const llmk_tensor m = make_view(exp_avg.data(), LLMK_DTYPE_F32, {4});
  const llmk_tensor v = make_view(exp_avg_sq.data(), LLMK_DTYPE_F32, {4});
  llmk_adamw_config config;
  llmk_adamw_config_init(&config);
  config.lr = 0.01;
  config.weight_decay = 0.1;
  ASSERT_EQ(llmk_adamw_step(ctx, &config, &p, &g, &m, &v, nullptr), LLMK_SUCCESS);
  const double decay = 1.0 - 0.01 * 0.1;
  const double initial[] = {1.0, 1.0, -2.0, 0.5};
  for (int i = 0; i < 4; ++i) {
    const double expected =
        initial[i] * decay - 0.01 * grad[i] / (std::fabs(double{grad[i]}) + 1e-8);
    EXPECT_NEAR(param[i], expected, 3e-7) << i;
    EXPECT_FLOAT_EQ(exp_avg[i], 0.1f * grad[i]) << i;
    EXPECT_NEAR(exp_avg_sq[i], 0.001 * grad[i] * grad[i], 1e-9 * grad[i] * grad[i]) << i;
  }
  llmk_context_destroy(ctx);
}

// A late step has (almost) no bias correction: with beta1 = beta2 = 0 there is no memory, and the
// update is lr g / (|g| + eps) at any step; with the default betas at step 10^6 the corrections
// are 1 to f64 rounding, and the update is lr m / (sqrt(v) + eps) on the new moments.
TEST(AdamWSemantics, LateStepsHaveNoBiasCorrection) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::vector<float> param = {0.0f}, grad = {0.5f}, exp_avg = {0.25f}, exp_avg_sq = {0.04f};
  const llmk_tensor p = make_view(param.data(), LLMK_DTYPE_F32, {1});
  const llmk_tensor g = make_view(grad.data(), LLMK_DTYPE_F32, {1});
  const llmk_tensor m = make_view(exp_avg.data(), LLMK_DTYPE_F32, {1});
  const llmk_tensor v = make_view(exp_avg_sq.data(), LLMK_DTYPE_F32, {1});
  llmk_adamw_config config;
  llmk_adamw_config_init(&config);
  config.step = 1000000;
  ASSERT_EQ(llmk_adamw_step(ctx, &config, &p, &g, &m, &v, nullptr), LLMK_SUCCESS);
  const double new_m = 0.9 * 0.25 + 0.1 * 0.5, new_v = 0.999 * double{0.04f} + 0.001 * 0.25;
  EXPECT_NEAR(param[0], -1e-3 * new_m / (std::sqrt(new_v) + 1e-8), 1e-9);
  llmk_context_destroy(ctx);
}

TEST(AdamWSemantics, EmptyTensorsAreANoOp) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  float unused = 1.0f;
  const llmk_tensor t = make_view(&unused, LLMK_DTYPE_F32, {0, 64});
  llmk_tensor g = make_view(nullptr, LLMK_DTYPE_BF16, {0, 64});
  llmk_adamw_config config;
  llmk_adamw_config_init(&config);
  // Empty views overlap nothing, whatever their pointers.
  EXPECT_EQ(llmk_adamw_step(ctx, &config, &t, &g, &t, &t, nullptr), LLMK_SUCCESS)
      << llmk_last_error_message();
  EXPECT_EQ(unused, 1.0f);
  llmk_context_destroy(ctx);
}

// A grad of each dtype gives what its f32 values give.
TEST(AdamWSemantics, SixteenBitGradsActAsTheirValues) {
  llmk_context* ctx = nullptr;
  ASSERT_EQ(llmk_context_create(LLMK_BACKEND_CPU, 0, &ctx), LLMK_SUCCESS);
  std::mt19937_64 rng(5);
  constexpr int64_t kN = 37;
  for (int32_t dtype : {LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    std::vector<uint8_t> grad16 = random_buffer(dtype, kN, rng);
    std::vector<float> grad32(kN);
    for (int64_t i = 0; i < kN; ++i) {
      grad32[i] = static_cast<float>(element_to_double(dtype, grad16.data() + i * 2));
    }
    const std::vector<uint8_t> param = random_buffer(LLMK_DTYPE_F32, kN, rng);
    const std::vector<uint8_t> exp_avg = random_buffer(LLMK_DTYPE_F32, kN, rng);
    const std::vector<uint8_t> exp_avg_sq = random_buffer(LLMK_DTYPE_F32, kN, rng, 2.0, 0.1);
    std::vector<uint8_t> results[2];
    for (int run = 0; run < 2; ++run) {
      std::vector<uint8_t> p = param, m = exp_avg, v = exp_avg_sq;
      const llmk_tensor pt = make_view(p.data(), LLMK_DTYPE_F32, {kN});
      const llmk_tensor mt = make_view(m.data(), LLMK_DTYPE_F32, {kN});
      const llmk_tensor vt = make_view(v.data(), LLMK_DTYPE_F32, {kN});
      const llmk_tensor gt = run == 0 ? make_view(grad16.data(), dtype, {kN})
                                      : make_view(grad32.data(), LLMK_DTYPE_F32, {kN});
      llmk_adamw_config config;
      llmk_adamw_config_init(&config);
      config.step = 4;
      ASSERT_EQ(llmk_adamw_step(ctx, &config, &pt, &gt, &mt, &vt, nullptr), LLMK_SUCCESS);
      results[run] = p;
      results[run].insert(results[run].end(), m.begin(), m.end());
      results[run].insert(results[run].end(), v.begin(), v.end());
    }
    EXPECT_EQ(results[0], results[1]) << llmk::dtype_name(dtype);
  }
  llmk_context_destroy(ctx);
}

}  // namespace
