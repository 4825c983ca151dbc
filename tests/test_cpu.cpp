// Tests that need no GPU: every shared vector on the CPU context and the API's basics. Each op's
// bad-argument and layout tests are in ops/<op>_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>

#include "common/testing.hpp"
#include "common/vectors.hpp"
#include "core/fast_div.hpp"

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

// --- internals the kernels share -----------------------------------------------------------------

// The flat kernels find a row as index / units per row with FastDiv (core/fast_div.hpp), for
// indices below 2^31: every divisor shape (powers of two and their neighbours, the bench's row
// lengths, the largest), each at the edges of quotients and at random indices.
TEST(FastDiv, MatchesDivisionBelow2To31) {
  constexpr uint32_t kMaxIndex = INT32_MAX;
  std::vector<uint32_t> divisors = {1,        2,
                                    3,        5,
                                    7,        160,
                                    352,      512,
                                    688,      1376,
                                    5504,     11008,
                                    65535,    65537,
                                    1000003,  (1u << 30) - 1,
                                    1u << 30, (1u << 30) + 1,
                                    kMaxIndex};
  for (int bit = 1; bit < 31; ++bit) {
    for (const int64_t d : {(int64_t{1} << bit) - 1, int64_t{1} << bit, (int64_t{1} << bit) + 1}) {
      divisors.push_back(static_cast<uint32_t>(d));
    }
  }
  std::mt19937 random(42);
  for (const uint32_t d : divisors) {
    const llmk::FastDiv divide(d);
    const auto check = [&](uint64_t n) {
      if (n > kMaxIndex) return;
      ASSERT_EQ(divide(static_cast<uint32_t>(n)), n / d) << n << " / " << d;
    };
    for (const uint64_t q : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{kMaxIndex / d}}) {
      for (const int64_t offset : {-1, 0, 1}) check(q * d + offset);
    }
    for (int i = 0; i < 1000; ++i) check(random() % (uint64_t{kMaxIndex} + 1));
  }
}

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

}  // namespace
