// bias_activation and gated_activation on a CUDA context: a randomized sweep against the CPU
// backend (every form, activation and dtype; odd, long and many short rows; aligned, misaligned,
// strided, 3-D, fused [gate | up] and in-place layouts; NaN-poisoned outputs), the far tails of
// every activation, and a captured CUDA graph.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace activation_gpu_test {

enum class Form { plain, bias, gated };

const char* form_name(Form form) {
  switch (form) {
    case Form::plain: return "bias_activation(no bias)";
    case Form::bias: return "bias_activation";
    case Form::gated: return "gated_activation";
  }
  return "?";
}

const char* activation_name(llmk_activation a) {
  switch (a) {
    case LLMK_ACTIVATION_IDENTITY: return "identity";
    case LLMK_ACTIVATION_GELU: return "gelu";
    case LLMK_ACTIVATION_GELU_TANH: return "gelu_tanh";
    case LLMK_ACTIVATION_SILU: return "silu";
    case LLMK_ACTIVATION_RELU: return "relu";
  }
  return "?";
}

constexpr llmk_activation kActivations[] = {LLMK_ACTIVATION_IDENTITY, LLMK_ACTIVATION_GELU,
                                            LLMK_ACTIVATION_GELU_TANH, LLMK_ACTIVATION_SILU,
                                            LLMK_ACTIVATION_RELU};
constexpr int32_t kDtypes[] = {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16};

// x is bias_activation's x or gated_activation's gate; second is the bias or up (unused for
// Form::plain).
llmk_status run_op(llmk_context* ctx, Form form, llmk_activation a, const llmk_tensor& x,
                   const llmk_tensor& second, const llmk_tensor& y, void* stream = nullptr) {
  switch (form) {
    case Form::plain: return llmk_bias_activation(ctx, &x, nullptr, a, &y, stream);
    case Form::bias: return llmk_bias_activation(ctx, &x, &second, a, &y, stream);
    case Form::gated: return llmk_gated_activation(ctx, &x, &second, a, &y, stream);
  }
  return LLMK_ERROR_INTERNAL;
}

enum class Output { y, in_x, in_up };

struct Layout {
  const char* name;
  int64_t x_padding, up_padding, y_padding;  // row stride = row width + padding
  int64_t offset;                            // elements between each buffer start and its view
  Output output;
  bool three_d;  // [2, rows, n] with a gap between the two batches
  bool fused;    // gated: gate and up are the two halves of each row of one [.., 2n] buffer
};

const Layout kLayouts[] = {
    {"contiguous", 0, 0, 0, 0, Output::y, false, false},
    {"row_stride+8", 8, 16, 24, 0, Output::y, false, false},
    {"row_stride+3", 3, 0, 1, 0, Output::y, false, false},
    {"offset_by_1", 0, 0, 0, 1, Output::y, false, false},
    {"in_place", 8, 0, 0, 0, Output::in_x, false, false},
    {"in_place_over_up", 0, 8, 0, 0, Output::in_up, false, false},
    {"3d", 8, 8, 0, 0, Output::y, true, false},
    {"fused", 0, 0, 0, 0, Output::y, false, true},
    {"fused_in_place", 0, 0, 0, 0, Output::in_x, false, true},
    {"fused_3d", 8, 0, 0, 0, Output::y, true, true},
};

// The first (half 0) or second (half 1) n columns of a fused [..., 2n] view.
llmk_tensor half_of(llmk_tensor fused, int half) {
  const int last = fused.ndim - 1;
  fused.shape[last] /= 2;
  fused.data = static_cast<uint8_t*>(fused.data) +
               half * fused.shape[last] * static_cast<int64_t>(element_bytes(fused.dtype));
  return fused;
}

void sweep_case(Form form, llmk_activation activation, int32_t dtype, int64_t rows, int64_t n,
                const Layout& layout) {
  const std::string what = std::string(form_name(form)) + " " + activation_name(activation) + " " +
                           llmk::dtype_name(dtype) + " " + std::to_string(rows) + "x" +
                           std::to_string(n) + " " + layout.name;
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  const bool gated = form == Form::gated;
  const int64_t x_width = layout.fused ? 2 * n : n;
  auto shape = [&](int64_t width) -> std::vector<int64_t> {
    if (layout.three_d) return {2, rows, width};
    return {rows, width};
  };
  auto strides = [&](int64_t width, int64_t padding) -> std::vector<int64_t> {
    if (layout.three_d) return {rows * (width + padding) + 64, width + padding, 1};
    return {width + padding, 1};
  };
  HostTensor x = make_tensor(dtype, shape(x_width), strides(x_width, layout.x_padding),
                             layout.offset, rng, 0.0, 2.5, false);
  HostTensor up = make_tensor(dtype, shape(n), strides(n, layout.up_padding), layout.offset, rng,
                              0.0, 1.0, false);
  HostTensor bias = make_tensor(dtype, {n}, {1}, layout.offset, rng, 0.0, 0.5, false);
  HostTensor y =
      make_tensor(dtype, shape(n), strides(n, layout.y_padding), layout.offset, rng, 0, 0, true);

  // The views of one run over buffers at the given bases; y is a view of x or up in place.
  struct Views {
    llmk_tensor x, second, y;
  };
  auto views = [&](void* x_base, void* up_base, void* bias_base, void* y_base) {
    Views v;
    const llmk_tensor x_view = view_at(x, x_base);
    v.x = layout.fused ? half_of(x_view, 0) : x_view;
    const llmk_tensor up_view = layout.fused ? half_of(x_view, 1) : view_at(up, up_base);
    v.second = gated ? up_view : view_at(bias, bias_base);
    switch (layout.output) {
      case Output::y: v.y = view_at(y, y_base); break;
      case Output::in_x: v.y = v.x; break;
      case Output::in_up: v.y = up_view; break;
    }
    return v;
  };

  // CPU: the reference, on copies of the host buffers.
  HostTensor cpu_x = x, cpu_up = up, cpu_y = y;
  const Views c =
      views(cpu_x.bytes.data(), cpu_up.bytes.data(), bias.bytes.data(), cpu_y.bytes.data());
  ASSERT_LLMK(run_op(cpu_context(), form, activation, c.x, c.second, c.y));

  DeviceCopy dx(x), dup(up), dbias(bias), dy(y);
  const Views g = views(dx.ptr, dup.ptr, dbias.ptr, dy.ptr);
  ASSERT_LLMK(run_op(cuda_context(), form, activation, g.x, g.second, g.y));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));

  switch (layout.output) {
    case Output::y: expect_close("y", y, dy.read(y.bytes.size()), cpu_y.bytes); break;
    case Output::in_x: expect_close("y (in x)", x, dx.read(x.bytes.size()), cpu_x.bytes); break;
    case Output::in_up:
      expect_close("y (in up)", up, dup.read(up.bytes.size()), cpu_up.bytes);
      break;
  }
}

bool applies(Form form, const Layout& layout) {
  const bool needs_up = layout.fused || layout.output == Output::in_up;
  return form == Form::gated || !needs_up;
}

TEST(ActivationSweep, EveryFormActivationDtypeSizeAndLayout) {
  // Rows of every kind: single elements and odd lengths (packs of one element), rows shared by a
  // block (8, 24, 64 elements), one block per row (4096, 5504: 688 packs over 192 threads), rows
  // cut into chunks (11008, 40000), many short rows and odd row counts.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},    {3, 3},    {17, 17},  {2, 24},    {5, 64},    {1000, 8},
      {4097, 3}, {7, 4097}, {3, 5504}, {33, 4096}, {2, 11008}, {1, 40000}};
  for (Form form : {Form::plain, Form::bias, Form::gated}) {
    for (llmk_activation activation : kActivations) {
      for (int32_t dtype : kDtypes) {
        for (const auto& [rows, n] : sizes) {
          for (const Layout& layout : kLayouts) {
            if (!applies(form, layout)) continue;
            sweep_case(form, activation, dtype, rows, n, layout);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(ActivationSweep, LargeRowsAndManyRows) {
  // A lone row of 2^20 + 8 elements (hundreds of chunks), and many rows of a model's width, once
  // per form and dtype with the activation taking turns.
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{1, (1 << 20) + 8}, {300, 5504}};
  const Layout& contiguous = kLayouts[0];
  const Layout& fused = kLayouts[7];
  int turn = 0;
  for (Form form : {Form::plain, Form::bias, Form::gated}) {
    for (int32_t dtype : kDtypes) {
      for (const auto& [rows, n] : sizes) {
        const llmk_activation activation = kActivations[turn++ % 5];
        sweep_case(form, activation, dtype, rows, n, form == Form::gated ? fused : contiguous);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(ActivationGpu, TailsAndLargeMagnitudes) {
  // Where exp overflows or underflows and erf saturates, the fast 16-bit forms must still give
  // the reference's finite values (and no NaN).
  const std::vector<double> values = {-6e4, -1e3, -100,  -88.5, -40,  -17.5, -9.5, -5.25,
                                      -3,   -1,   -1e-3, 0,     1e-3, 1,     3,    5.25,
                                      9.5,  17.5, 40,    88.5,  100,  1e3,   6e4};
  const int64_t n = static_cast<int64_t>(values.size());
  for (int32_t dtype : kDtypes) {
    HostTensor x;
    x.view = make_view(nullptr, dtype, {1, n});
    x.bytes.resize(n * element_bytes(dtype));
    for (int64_t i = 0; i < n; ++i)
      double_to_element(dtype, values[i], x.bytes.data() + i * element_bytes(dtype));
    std::mt19937_64 rng(5);
    HostTensor y = make_tensor(dtype, {1, n}, {}, 0, rng, 0, 0, true);
    for (llmk_activation activation : kActivations) {
      SCOPED_TRACE(std::string(activation_name(activation)) + " " + llmk::dtype_name(dtype));
      HostTensor cpu_y = y;
      const llmk_tensor cx = view_at(x, x.bytes.data()), cy = view_at(cpu_y, cpu_y.bytes.data());
      ASSERT_LLMK(run_op(cpu_context(), Form::plain, activation, cx, cx, cy));
      DeviceCopy dx(x), dy(y);
      const llmk_tensor gx = view_at(x, dx.ptr), gy = view_at(y, dy.ptr);
      ASSERT_LLMK(run_op(cuda_context(), Form::plain, activation, gx, gx, gy));
      ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
      expect_close("y", y, dy.read(y.bytes.size()), cpu_y.bytes);
    }
  }
}

TEST(ActivationGpu, CapturedCallReplaysTheSameResult) {
  std::mt19937_64 rng(9);
  HostTensor x = make_tensor(LLMK_DTYPE_BF16, {512, 2 * 1376}, {}, 0, rng, 0.0, 2.0, false);
  HostTensor y = make_tensor(LLMK_DTYPE_BF16, {512, 1376}, {}, 0, rng, 0, 0, true);
  DeviceCopy dx(x), dy(y);
  const llmk_tensor fused = view_at(x, dx.ptr), out = view_at(y, dy.ptr);
  const llmk_tensor gate = half_of(fused, 0), up = half_of(fused, 1);
  ASSERT_LLMK(
      llmk_gated_activation(cuda_context(), &gate, &up, LLMK_ACTIVATION_SILU, &out, nullptr));
  const std::vector<uint8_t> direct = dy.read(y.bytes.size());
  DeviceCopy replayed(y);
  const llmk_tensor replayed_out = view_at(y, replayed.ptr);
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // Global capture mode: a synchronization or allocation inside the call would break capture.
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  ASSERT_LLMK(llmk_gated_activation(cuda_context(), &gate, &up, LLMK_ACTIVATION_SILU, &replayed_out,
                                    stream));
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  EXPECT_EQ(replayed.read(y.bytes.size()), direct);
  ASSERT_CUDA(cudaGraphExecDestroy(exec));
  ASSERT_CUDA(cudaGraphDestroy(graph));
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

TEST(ActivationGpu, HostMemoryIsRefused) {
  std::vector<float> host(64, 1.0f), out(64, NAN);
  void* device = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 64 * 4, &device));
  const llmk_tensor gate = make_view(device, LLMK_DTYPE_F32, {4, 16});
  const llmk_tensor up = make_view(host.data(), LLMK_DTYPE_F32, {4, 16});
  const llmk_tensor y = make_view(out.data(), LLMK_DTYPE_F32, {4, 16});
  EXPECT_EQ(llmk_gated_activation(cuda_context(), &gate, &up, LLMK_ACTIVATION_SILU, &y, nullptr),
            LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("gated_activation: up.data"),
            std::string::npos)
      << llmk_last_error_message();
  for (float v : out) ASSERT_TRUE(std::isnan(v));
  ASSERT_LLMK(llmk_free(cuda_context(), device));
}

}  // namespace activation_gpu_test
