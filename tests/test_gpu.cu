// Tests that need a GPU. Without one the program exits with 77, which ctest reports as skipped.
//
//  - every shared vector on a CUDA context;
//  - a randomized sweep of every op, dtype, odd and large sizes, strided, offset, in-place and
//    3-D layouts, compared with the CPU backend (the float64 reference) by the vectors' rule;
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

// --- the randomized sweep against the CPU backend ----------------------------------------------

enum class Op { rms, add_rms, layer, layer_no_bias };

const char* op_name(Op op) {
  switch (op) {
    case Op::rms: return "rms_norm";
    case Op::add_rms: return "add_rms_norm";
    case Op::layer: return "layer_norm";
    case Op::layer_no_bias: return "layer_norm(no bias)";
  }
  return "?";
}

struct Layout {
  const char* name;
  int64_t row_padding;  // row stride = hidden + padding (x, y and residual differ by design)
  int64_t offset;       // elements between the buffer start and the view
  bool in_place;
  bool three_d;  // [2, rows, hidden] with a gap between the two batches
};

llmk_status run_op(llmk_context* ctx, Op op, const llmk_tensor& x, const llmk_tensor* residual,
                   const llmk_tensor& w, const llmk_tensor* b, const llmk_tensor& y,
                   void* stream = nullptr) {
  const float eps = op == Op::rms || op == Op::add_rms ? 1e-6f : 1e-5f;
  switch (op) {
    case Op::rms: return llmk_rms_norm(ctx, &x, &w, eps, &y, stream);
    case Op::add_rms: return llmk_add_rms_norm(ctx, &x, residual, &w, eps, &y, stream);
    case Op::layer: return llmk_layer_norm(ctx, &x, &w, b, eps, &y, stream);
    case Op::layer_no_bias: return llmk_layer_norm(ctx, &x, &w, nullptr, eps, &y, stream);
  }
  return LLMK_ERROR_INTERNAL;
}

void sweep_case(Op op, int32_t dtype, int64_t rows, int64_t hidden, const Layout& layout) {
  const std::string what = std::string(op_name(op)) + " " + llmk::dtype_name(dtype) + " " +
                           std::to_string(rows) + "x" + std::to_string(hidden) + " " + layout.name;
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  const std::vector<int64_t> shape =
      layout.three_d ? std::vector<int64_t>{2, rows, hidden} : std::vector<int64_t>{rows, hidden};
  auto strides = [&](int64_t padding) -> std::vector<int64_t> {
    if (layout.three_d) return {rows * (hidden + padding) + 64, hidden + padding, 1};
    return {hidden + padding, 1};
  };
  const bool with_residual = op == Op::add_rms;
  HostTensor x =
      make_tensor(dtype, shape, strides(layout.row_padding), layout.offset, rng, 0.25, 1.5, false);
  HostTensor residual = make_tensor(dtype, shape, strides(layout.row_padding * 2), layout.offset,
                                    rng, 0.0, 1.0, false);
  HostTensor y =
      make_tensor(dtype, shape, strides(layout.row_padding + 1), layout.offset, rng, 0, 0, true);
  HostTensor w = make_tensor(dtype, {hidden}, {1}, 0, rng, 1.0, 0.2, false);
  HostTensor b = make_tensor(dtype, {hidden}, {1}, 0, rng, 0.0, 0.1, false);

  // CPU: the reference, on copies of the host buffers.
  HostTensor cpu_x = x, cpu_residual = residual, cpu_y = y;
  const llmk_tensor cx = view_at(cpu_x, cpu_x.bytes.data());
  const llmk_tensor cr = view_at(cpu_residual, cpu_residual.bytes.data());
  const llmk_tensor cw = view_at(w, w.bytes.data());
  const llmk_tensor cb = view_at(b, b.bytes.data());
  const llmk_tensor cy = layout.in_place ? cx : view_at(cpu_y, cpu_y.bytes.data());
  ASSERT_LLMK(run_op(cpu_context(), op, cx, with_residual ? &cr : nullptr, cw, &cb, cy));

  DeviceCopy dx(x), dr(residual), dy(y), dw(w), db(b);
  const llmk_tensor gx = view_at(x, dx.ptr);
  const llmk_tensor gr = view_at(residual, dr.ptr);
  const llmk_tensor gw = view_at(w, dw.ptr);
  const llmk_tensor gb = view_at(b, db.ptr);
  const llmk_tensor gy = layout.in_place ? gx : view_at(y, dy.ptr);
  ASSERT_LLMK(run_op(cuda_context(), op, gx, with_residual ? &gr : nullptr, gw, &gb, gy));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));

  if (layout.in_place) {
    expect_close("y (in x)", x, dx.read(x.bytes.size()), cpu_x.bytes);
  } else {
    expect_close("y", y, dy.read(y.bytes.size()), cpu_y.bytes);
  }
  if (with_residual)
    expect_close("residual", residual, dr.read(residual.bytes.size()), cpu_residual.bytes);
}

TEST(Sweep, EveryOpDtypeSizeAndLayout) {
  // Few rows load the parameters early; from 2 * 132 row groups on (H100/H200) they stream with
  // the parameters late (600x4096, 400x11008, 300x16384, 3000x64); rows longer than the
  // registers hold take the two-pass kernel (32768, 40000).
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},     {3, 3},     {17, 17},    {64, 4095},   {33, 4096},   {5, 5120},
      {9, 8192},  {7, 11008}, {4, 16384},  {3, 32768},   {2, 40000},   {1000, 128},
      {4097, 64}, {2, 24},    {600, 4096}, {400, 11008}, {300, 16384}, {3000, 64}};
  const std::vector<Layout> layouts = {
      {"contiguous", 0, 0, false, false},   {"row_stride+8", 8, 0, false, false},
      {"row_stride+3", 3, 0, false, false}, {"offset_by_1", 0, 1, false, false},
      {"in_place", 0, 0, true, false},      {"3d", 8, 0, false, true}};
  for (Op op : {Op::rms, Op::add_rms, Op::layer, Op::layer_no_bias}) {
    for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
      for (const auto& [rows, hidden] : sizes) {
        for (const Layout& layout : layouts) {
          sweep_case(op, dtype, rows, hidden, layout);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

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
