// adamw_step on a CUDA context against the CPU backend (the float64 reference): a randomized sweep
// of grad dtypes, sizes (one element to a 2M-element row, many short rows) and layouts (16-byte
// packs with and without per-row tails, misaligned views that take the element-wise path, 3-D
// views), a five-step run compared after every step, and what only a CUDA context checks.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/gpu_testing.hpp"

namespace adamw_gpu_test {

using namespace llmk_test;

struct Layout {
  const char* name;
  int64_t padding;  // row stride = columns (rounded up to 4 with align_rows) + padding * (k+1)
  bool align_rows;  // for tensor k of param, grad, exp_avg, exp_avg_sq
  int64_t offset;   // elements from each f32 buffer's start to its view
  int64_t grad_offset;
  bool three_d;  // [2, rows, columns] with a gap between the two batches
};

const Layout kLayouts[] = {
    {"contiguous", 0, false, 0, 0, false},
    {"padded_rows", 3, false, 0, 0, false},  // rows that 16-byte packs do not fit
    {"aligned_rows", 4, true, 0, 0, false},  // packs fit; rows of columns % 4 != 0 have tails
    {"offset_by_1", 0, false, 1, 1, false},
    {"grad_offset_by_1", 0, false, 0, 1, false},
    {"3d", 4, true, 0, 0, true},
};

struct Config {
  llmk_adamw_config c;
  double grad_scale;
  double step_size() const { return c.lr / (1.0 - std::pow(c.beta1, static_cast<double>(c.step))); }
};

Config default_config(int64_t step) {
  Config config;
  llmk_adamw_config_init(&config.c);
  config.c.step = step;
  config.grad_scale = 1e-2;
  return config;
}

// beta1 < 0.5 takes torch's other lerp formula.
Config low_beta_config() {
  Config config = default_config(7);
  config.c.lr = 1e-2;
  config.c.beta1 = 0.3;
  config.c.beta2 = 0.95;
  config.c.eps = 1e-6;
  config.c.weight_decay = 0.1;
  config.grad_scale = 1.0;
  return config;
}

// The four tensors of one problem, on the host.
struct Problem {
  HostTensor param, grad, exp_avg, exp_avg_sq;
};

// Values like training's: exp_avg ~ N(0, 0.3 s) and exp_avg_sq = s^2 (0.1 + x^2), s the grad
// scale, so that exp_avg / sqrt(exp_avg_sq) stays of order one.
Problem make_problem(int32_t grad_dtype, int64_t rows, int64_t columns, const Layout& layout,
                     double grad_scale, std::mt19937_64& rng) {
  const std::vector<int64_t> shape =
      layout.three_d ? std::vector<int64_t>{2, rows, columns} : std::vector<int64_t>{rows, columns};
  auto strides = [&](int k) -> std::vector<int64_t> {
    const int64_t row =
        (layout.align_rows ? (columns + 3) / 4 * 4 : columns) + layout.padding * (k + 1);
    if (layout.three_d) return {rows * row + 64, row, 1};
    return {row, 1};
  };
  Problem p;
  p.param = make_tensor(LLMK_DTYPE_F32, shape, strides(0), layout.offset, rng, 0.0, 0.5, false);
  p.grad =
      make_tensor(grad_dtype, shape, strides(1), layout.grad_offset, rng, 0.0, grad_scale, false);
  p.exp_avg = make_tensor(LLMK_DTYPE_F32, shape, strides(2), layout.offset, rng, 0.0,
                          0.3 * grad_scale, false);
  p.exp_avg_sq =
      make_tensor(LLMK_DTYPE_F32, shape, strides(3), layout.offset, rng, 0.0, 1.0, false);
  auto* v = reinterpret_cast<float*>(p.exp_avg_sq.bytes.data());
  for (size_t i = 0; i < p.exp_avg_sq.bytes.size() / 4; ++i) {
    v[i] = static_cast<float>(grad_scale * grad_scale * (0.1 + double{v[i]} * v[i]));
  }
  return p;
}

// New gradients for the same layout.
HostTensor new_grad(const Problem& p, double grad_scale, std::mt19937_64& rng) {
  const llmk_tensor& g = p.grad.view;
  return make_tensor(g.dtype, std::vector<int64_t>(g.shape, g.shape + g.ndim),
                     std::vector<int64_t>(g.strides, g.strides + g.ndim), p.grad.offset, rng, 0.0,
                     grad_scale, false);
}

// (rtol, atol) of param, exp_avg and exp_avg_sq after `steps` steps: the vectors' single-step
// bounds (tests/vectors/ops/adamw.py says why), added up over the steps.
struct Tolerances {
  double rtol, param_atol, exp_avg_atol, exp_avg_sq_atol;
};

Tolerances tolerances(const Config& config, int steps) {
  Tolerances t{1e-5 * steps, 0.0, 1e-6 * steps * config.grad_scale,
               1e-6 * steps * config.grad_scale * config.grad_scale};
  Config step = config;
  for (int k = 0; k < steps; ++k, ++step.c.step) t.param_atol += 1e-5 * step.step_size();
  return t;
}

// The state on the CPU (host buffers) and on the GPU (device copies), stepped side by side.
class SideBySide {
 public:
  explicit SideBySide(const Problem& p)
      : host_(p), param_(p.param), exp_avg_(p.exp_avg), exp_avg_sq_(p.exp_avg_sq) {}

  // One step on both with grad `g`.
  void step(const Config& config, const HostTensor& g) {
    HostTensor cpu_grad = g;
    const llmk_tensor cp = view_at(host_.param, host_.param.bytes.data());
    const llmk_tensor cg = view_at(cpu_grad, cpu_grad.bytes.data());
    const llmk_tensor cm = view_at(host_.exp_avg, host_.exp_avg.bytes.data());
    const llmk_tensor cv = view_at(host_.exp_avg_sq, host_.exp_avg_sq.bytes.data());
    ASSERT_LLMK(llmk_adamw_step(cpu_context(), &config.c, &cp, &cg, &cm, &cv, nullptr));

    DeviceCopy grad(g);
    const llmk_tensor gp = view_at(host_.param, param_.ptr);
    const llmk_tensor gg = view_at(g, grad.ptr);
    const llmk_tensor gm = view_at(host_.exp_avg, exp_avg_.ptr);
    const llmk_tensor gv = view_at(host_.exp_avg_sq, exp_avg_sq_.ptr);
    ASSERT_LLMK(llmk_adamw_step(cuda_context(), &config.c, &gp, &gg, &gm, &gv, nullptr));
    ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
    EXPECT_EQ(grad.read(g.bytes.size()), g.bytes) << "grad written";
  }

  // The GPU's state against the CPU's, by the tolerances of `steps` steps.
  void expect_close_after(const Config& config, int steps) const {
    const Tolerances t = tolerances(config, steps);
    llmk_test::expect_close("param", host_.param, param_.read(host_.param.bytes.size()),
                            host_.param.bytes, t.rtol, t.param_atol);
    llmk_test::expect_close("exp_avg", host_.exp_avg, exp_avg_.read(host_.exp_avg.bytes.size()),
                            host_.exp_avg.bytes, t.rtol, t.exp_avg_atol);
    llmk_test::expect_close("exp_avg_sq", host_.exp_avg_sq,
                            exp_avg_sq_.read(host_.exp_avg_sq.bytes.size()), host_.exp_avg_sq.bytes,
                            t.rtol, t.exp_avg_sq_atol);
  }

 private:
  Problem host_;  // the CPU's state
  DeviceCopy param_, exp_avg_, exp_avg_sq_;
};

void sweep_case(int32_t grad_dtype, int64_t rows, int64_t columns, const Layout& layout,
                const Config& config) {
  const std::string what = std::string(llmk::dtype_name(grad_dtype)) + " grad " +
                           std::to_string(rows) + "x" + std::to_string(columns) + " " +
                           layout.name + " step " + std::to_string(config.c.step);
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  const Problem problem = make_problem(grad_dtype, rows, columns, layout, config.grad_scale, rng);
  SideBySide state(problem);
  state.step(config, problem.grad);
  state.expect_close_after(config, 1);
}

TEST(AdamWSweep, EveryGradDtypeSizeAndLayout) {
  // A long row is cut into column chunks of 1024 elements (2M + 3: 2049 chunks, the last one a
  // partial pack); short rows share a block (4097 x 3, 1000 x 128).
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},    {1, 3},    {1, 17},     {3, 17},   {1, 4095},  {1, 4096},
      {1, 4097}, {5, 4097}, {1000, 128}, {4097, 3}, {2, 65537}, {1, (1 << 21) + 3}};
  const Config configs[] = {default_config(1), low_beta_config()};
  int index = 0;
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (const auto& [rows, columns] : sizes) {
      for (const Layout& layout : kLayouts) {
        sweep_case(dtype, rows, columns, layout, configs[index++ % 2]);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Five steps with new gradients each, the GPU and the CPU each carrying their own state, compared
// after every step.
TEST(AdamWSweep, FiveStepsTrackTheCpu) {
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (const Layout& layout : {kLayouts[0], kLayouts[2], kLayouts[3]}) {
      SCOPED_TRACE(std::string(llmk::dtype_name(dtype)) + " " + layout.name);
      std::mt19937_64 rng(dtype * 10 + layout.padding);
      Config config = default_config(1);
      const Problem problem = make_problem(dtype, 37, 1001, layout, config.grad_scale, rng);
      SideBySide state(problem);
      const Config first = config;
      for (int step = 1; step <= 5; ++step, ++config.c.step) {
        SCOPED_TRACE("step " + std::to_string(step));
        state.step(config, step == 1 ? problem.grad : new_grad(problem, config.grad_scale, rng));
        if (HasFatalFailure()) return;
        state.expect_close_after(first, step);
      }
    }
  }
}

// --- what only a CUDA context checks, and capture ----------------------------------------------

TEST(AdamWGpu, HostStateIsRefused) {
  void* device = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 3 * 64 * 4, &device));
  std::vector<float> host(64, 1.0f);
  auto* d = static_cast<float*>(device);
  const llmk_tensor param = make_view(d, LLMK_DTYPE_F32, {64});
  const llmk_tensor grad = make_view(d + 64, LLMK_DTYPE_F32, {64});
  const llmk_tensor exp_avg = make_view(d + 128, LLMK_DTYPE_F32, {64});
  const llmk_tensor exp_avg_sq = make_view(host.data(), LLMK_DTYPE_F32, {64});
  llmk_adamw_config config;
  llmk_adamw_config_init(&config);
  EXPECT_EQ(llmk_adamw_step(cuda_context(), &config, &param, &grad, &exp_avg, &exp_avg_sq, nullptr),
            LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("exp_avg_sq.data"), std::string::npos)
      << llmk_last_error_message();
  for (float v : host) ASSERT_EQ(v, 1.0f);
  ASSERT_LLMK(llmk_free(cuda_context(), device));
}

// A captured step replays to the bits of a direct one: nothing in the call synchronizes or
// allocates.
TEST(AdamWGpu, CapturedStepReplaysTheSameResult) {
  std::mt19937_64 rng(21);
  const Config config = default_config(3);
  const Problem p = make_problem(LLMK_DTYPE_BF16, 64, 4096, kLayouts[0], config.grad_scale, rng);
  std::vector<uint8_t> results[2];
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int captured = 0; captured < 2; ++captured) {
    DeviceCopy param(p.param), grad(p.grad), exp_avg(p.exp_avg), exp_avg_sq(p.exp_avg_sq);
    const llmk_tensor pv = view_at(p.param, param.ptr), gv = view_at(p.grad, grad.ptr),
                      mv = view_at(p.exp_avg, exp_avg.ptr),
                      vv = view_at(p.exp_avg_sq, exp_avg_sq.ptr);
    if (captured) {
      cudaGraph_t graph;
      ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
      ASSERT_LLMK(llmk_adamw_step(cuda_context(), &config.c, &pv, &gv, &mv, &vv, stream));
      ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
      cudaGraphExec_t exec;
      ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
      ASSERT_CUDA(cudaGraphLaunch(exec, stream));
      ASSERT_CUDA(cudaStreamSynchronize(stream));
      ASSERT_CUDA(cudaGraphExecDestroy(exec));
      ASSERT_CUDA(cudaGraphDestroy(graph));
    } else {
      ASSERT_LLMK(llmk_adamw_step(cuda_context(), &config.c, &pv, &gv, &mv, &vv, stream));
      ASSERT_CUDA(cudaStreamSynchronize(stream));
    }
    for (const auto& [copy, host] : {std::pair{&param, &p.param}, std::pair{&exp_avg, &p.exp_avg},
                                     std::pair{&exp_avg_sq, &p.exp_avg_sq}}) {
      const std::vector<uint8_t> bytes = copy->read(host->bytes.size());
      results[captured].insert(results[captured].end(), bytes.begin(), bytes.end());
    }
  }
  EXPECT_EQ(results[0], results[1]);
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

}  // namespace adamw_gpu_test
