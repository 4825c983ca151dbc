// Tests that need a GPU. Without one the program exits with 77, which ctest reports as skipped.
//
//  - every shared vector on a CUDA context;
//  - (in ops/<op>_gpu_test.cu) each op's randomized sweep against the CPU backend;
//  - bad arguments only a CUDA context can see (host memory, another device);
//  - several threads on one context, graph capture, bit-identical repeated runs;
//  - an asynchronous failure reported as a lost context (its own process: see CMakeLists.txt).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "common/gpu_testing.hpp"
#include "common/vectors.hpp"

using namespace llmk_test;

namespace {

// --- the shared vectors ------------------------------------------------------------------------

class GpuVectors : public testing::TestWithParam<VectorCase> {};

TEST_P(GpuVectors, MatchesExpected) {
  for (const std::string& problem : run_vector_case(cuda_context(), GetParam(), vectors_dir())) {
    ADD_FAILURE() << GetParam().name << ": " << problem;
  }
}

INSTANTIATE_TEST_SUITE_P(Manifest, GpuVectors, testing::ValuesIn(load_manifest(vectors_dir())),
                         [](const auto& info) { return test_identifier(info.param); });

// --- bad arguments a CUDA context can see ------------------------------------------------------

TEST(GpuBadInput, HostMemoryIsRefused) {
  std::vector<float> host(64, 1.0f), out(64, NAN);
  void* device_w = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 64 * 4, &device_w));
  const llmk_tensor x = make_view(host.data(), LLMK_DTYPE_F32, {4, 16});
  const llmk_tensor w = make_view(device_w, LLMK_DTYPE_F32, {16});
  const llmk_tensor y = make_view(out.data(), LLMK_DTYPE_F32, {4, 16});
  EXPECT_EQ(llmk_rms_norm(cuda_context(), &x, &w, 1e-6f, &y, nullptr),
            LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("x.data"), std::string::npos)
      << llmk_last_error_message();
  for (float v : out) ASSERT_TRUE(std::isnan(v));
  ASSERT_LLMK(llmk_free(cuda_context(), device_w));
}

TEST(GpuBadInput, MemoryAndStreamOfAnotherDevice) {
  int32_t count = 0;
  ASSERT_LLMK(llmk_cuda_device_count(&count));
  if (count < 2) GTEST_SKIP() << "needs two GPUs";
  llmk_context* other = nullptr;
  ASSERT_LLMK(llmk_context_create(LLMK_BACKEND_CUDA, 1, &other));
  void *a = nullptr, *b = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 256, &a));
  ASSERT_LLMK(llmk_malloc(other, 256, &b));
  const llmk_tensor x = make_view(a, LLMK_DTYPE_F32, {4, 8});
  const llmk_tensor w = make_view(static_cast<float*>(a) + 32, LLMK_DTYPE_F32, {8});
  const llmk_tensor y = make_view(b, LLMK_DTYPE_F32, {4, 8});
  EXPECT_EQ(llmk_rms_norm(cuda_context(), &x, &w, 1e-6f, &y, nullptr), LLMK_ERROR_WRONG_DEVICE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("y is memory of device 1"),
            std::string::npos);
  cudaStream_t stream_of_other;
  ASSERT_CUDA(cudaSetDevice(1));
  ASSERT_CUDA(cudaStreamCreate(&stream_of_other));
  ASSERT_CUDA(cudaSetDevice(0));
  const llmk_tensor y0 = make_view(static_cast<float*>(a) + 40, LLMK_DTYPE_F32, {4, 8});
  EXPECT_EQ(llmk_rms_norm(cuda_context(), &x, &w, 1e-6f, &y0, stream_of_other),
            LLMK_ERROR_WRONG_DEVICE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("stream"), std::string::npos);
  ASSERT_CUDA(cudaStreamDestroy(stream_of_other));
  ASSERT_LLMK(llmk_free(cuda_context(), a));
  ASSERT_LLMK(llmk_free(other, b));
  llmk_context_destroy(other);
}

TEST(GpuBadInput, CallerDeviceIsRestored) {
  int32_t count = 0;
  ASSERT_LLMK(llmk_cuda_device_count(&count));
  if (count < 2) GTEST_SKIP() << "needs two GPUs";
  ASSERT_CUDA(cudaSetDevice(1));
  void* p = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 256, &p));
  int device = -1;
  ASSERT_CUDA(cudaGetDevice(&device));
  EXPECT_EQ(device, 1);
  ASSERT_LLMK(llmk_free(cuda_context(), p));
  ASSERT_CUDA(cudaSetDevice(0));
}

// --- concurrency, graphs, determinism ----------------------------------------------------------

// add_rms_norm on 4096 x 4096 bf16 buffers, as device copies.
struct Problem {
  std::mt19937_64 rng;
  HostTensor x, residual, w, y;
  explicit Problem(uint64_t seed) : rng(seed) {
    x = make_tensor(LLMK_DTYPE_BF16, {4096, 4096}, {}, 0, rng, 0.0, 1.0, false);
    residual = make_tensor(LLMK_DTYPE_BF16, {4096, 4096}, {}, 0, rng, 0.0, 1.0, false);
    w = make_tensor(LLMK_DTYPE_BF16, {4096}, {1}, 0, rng, 1.0, 0.2, false);
    y = make_tensor(LLMK_DTYPE_BF16, {4096, 4096}, {}, 0, rng, 0, 0, true);
  }
};

std::vector<uint8_t> run_problem(const Problem& p, cudaStream_t stream) {
  DeviceCopy dx(p.x), dr(p.residual), dw(p.w), dy(p.y);
  const llmk_tensor x = view_at(p.x, dx.ptr), r = view_at(p.residual, dr.ptr),
                    w = view_at(p.w, dw.ptr), y = view_at(p.y, dy.ptr);
  EXPECT_EQ(llmk_add_rms_norm(cuda_context(), &x, &r, &w, 1e-6f, &y, stream), LLMK_SUCCESS);
  EXPECT_EQ(llmk_synchronize(cuda_context(), stream), LLMK_SUCCESS);
  return dy.read(p.y.bytes.size());
}

TEST(Concurrency, ThreadsWithTheirOwnStreamsShareOneContext) {
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<Problem>> problems;
  std::vector<std::vector<uint8_t>> alone(kThreads), together(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    problems.push_back(std::make_unique<Problem>(100 + t));
    alone[t] = run_problem(*problems[t], nullptr);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      cudaStream_t stream;
      ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      for (int repeat = 0; repeat < 5; ++repeat) together[t] = run_problem(*problems[t], stream);
      ASSERT_CUDA(cudaStreamDestroy(stream));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(alone[t], together[t]) << "thread " << t;
}

TEST(Graphs, CapturedCallReplaysTheSameResult) {
  Problem p(7);
  const std::vector<uint8_t> direct = run_problem(p, nullptr);
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  DeviceCopy dx(p.x), dr(p.residual), dw(p.w), dy(p.y);
  const llmk_tensor x = view_at(p.x, dx.ptr), r = view_at(p.residual, dr.ptr),
                    w = view_at(p.w, dw.ptr), y = view_at(p.y, dy.ptr);
  // Global capture mode: any synchronization or allocation inside the call would break capture.
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  ASSERT_LLMK(llmk_add_rms_norm(cuda_context(), &x, &r, &w, 1e-6f, &y, stream));
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  EXPECT_EQ(dy.read(p.y.bytes.size()), direct);
  ASSERT_CUDA(cudaGraphExecDestroy(exec));
  ASSERT_CUDA(cudaGraphDestroy(graph));
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

// The runtime's special stream handles name no stream object; the stream check asks the driver
// first, which must take them as the runtime does.
TEST(Streams, PerThreadAndLegacyHandlesAreAccepted) {
  Problem p(9);
  const std::vector<uint8_t> direct = run_problem(p, nullptr);
  EXPECT_EQ(run_problem(p, cudaStreamPerThread), direct);
  EXPECT_EQ(run_problem(p, cudaStreamLegacy), direct);
}

// A thread that has made no CUDA call has no current context; the driver's launch needs one, so
// a call made first thing on a fresh thread must still find the device's.
TEST(Threads, FirstCallOnAThreadWithoutCudaCalls) {
  Problem p(13);
  const std::vector<uint8_t> direct = run_problem(p, nullptr);
  DeviceCopy dx(p.x), dr(p.residual), dw(p.w), dy(p.y);
  const llmk_tensor x = view_at(p.x, dx.ptr), r = view_at(p.residual, dr.ptr),
                    w = view_at(p.w, dw.ptr), y = view_at(p.y, dy.ptr);
  llmk_status launched = LLMK_ERROR_INTERNAL, synchronized = LLMK_ERROR_INTERNAL;
  std::string message;
  std::thread([&] {
    launched = llmk_add_rms_norm(cuda_context(), &x, &r, &w, 1e-6f, &y, nullptr);
    message = llmk_last_error_message();
    synchronized = llmk_synchronize(cuda_context(), nullptr);
  }).join();
  ASSERT_EQ(launched, LLMK_SUCCESS) << message;
  ASSERT_EQ(synchronized, LLMK_SUCCESS);
  EXPECT_EQ(dy.read(p.y.bytes.size()), direct);
}

TEST(Determinism, RepeatedRunsGiveIdenticalBits) {
  Problem p(11);
  EXPECT_EQ(run_problem(p, nullptr), run_problem(p, nullptr));
}

// --- a lost context ----------------------------------------------------------------------------

__global__ void write_to_address(float* p) { *p = 1.0f; }

TEST(ContextLost, AsynchronousFailureHasItsOwnStatus) {
  llmk_context* ctx = cuda_context();
  void* buffer = nullptr;
  ASSERT_LLMK(llmk_malloc(ctx, 1024, &buffer));
  // An illegal address: the kernel faults asynchronously and poisons the CUDA context.
  write_to_address<<<1, 1>>>(reinterpret_cast<float*>(uintptr_t{16}));
  EXPECT_NE(cudaDeviceSynchronize(), cudaSuccess);
  const llmk_tensor x = make_view(buffer, LLMK_DTYPE_F32, {4, 16});
  const llmk_tensor w = make_view(static_cast<float*>(buffer) + 64, LLMK_DTYPE_F32, {16});
  const llmk_tensor y = make_view(static_cast<float*>(buffer) + 128, LLMK_DTYPE_F32, {4, 16});
  EXPECT_EQ(llmk_rms_norm(ctx, &x, &w, 1e-6f, &y, nullptr), LLMK_ERROR_CUDA_CONTEXT_LOST)
      << llmk_last_error_message();
  EXPECT_EQ(llmk_synchronize(ctx, nullptr), LLMK_ERROR_CUDA_CONTEXT_LOST);
  EXPECT_NE(std::string(llmk_last_error_message()).find("context is lost"), std::string::npos);
}

}  // namespace

int main(int argc, char** argv) {
  int32_t count = 0;
  if (llmk_cuda_device_count(&count) != LLMK_SUCCESS || count == 0) {
    std::printf("no CUDA device: GPU tests skipped\n");
    return 77;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
