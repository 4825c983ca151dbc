// ffn and gated_mlp on a CUDA context against the CPU context: Llama-like blocks made smaller
// (d_model 256, d_ff 688), 1, 3, 17 and 300 tokens (gated_mlp also 2), every dtype, the cuBLASLt
// path, the GEMV where it can run (a few tokens) and auto; biases on and off, every activation;
// gated_mlp with vLLM's fused gate_up weight (w_up a view into w_gate's buffer) and with separate
// weights, and on the GEMV at 1 and 2 tokens with rows longer than a batch of loads (d_model 2344);
// padded row strides; f32 with TF32; config->tune on half the sweep's cases; a forced GEMV that
// cannot run refused before anything is written; a captured, replayed block; tuning pins every
// GEMM's plan, and is refused while the stream is captured.
//
// The comparison rule (tests/vectors/README.md, "matmul, ffn and gated_mlp"): y from the GPU
// against y from the CPU (f64 sums, each GEMM's output rounded to the dtype as the header says),
// |gpu - cpu| <= atol + rtol |cpu| with the dtype's rtol and atol the largest over y of
//   sum_f e_h[t, f] |W2[j, f]| + (d_ff + 2) 2^-24 (sum_f |h W2| + |b2|)   [+ 2^-9 sum |h W2| TF32]
// where e_h bounds how far the GPU's stored intermediate may be from the CPU's:
//   ffn:       e_h = L (first GEMM's accumulation bound) [+ L u |pre| for GELU / SiLU] + 2 u |h|
//   gated_mlp: e_h = L e_g (|up| + e_u) + |a(gate)| e_u + 2 u |h|,
//              e_g = (accumulation bound) + u |gate|, e_u likewise
// (L = max |a'|, u the dtype's unit roundoff; the engines may round the pre-activation, gate and
// up to the dtype, and each side rounds h once). y starts as NaN; gaps must keep their bits.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace mlp_gpu_test {

constexpr llmk_activation kActivations[] = {LLMK_ACTIVATION_IDENTITY, LLMK_ACTIVATION_GELU,
                                            LLMK_ACTIVATION_GELU_TANH, LLMK_ACTIVATION_SILU,
                                            LLMK_ACTIVATION_RELU};
constexpr int32_t kDtypes[] = {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16};

const char* path_name(int32_t path) {
  return path == LLMK_MATMUL_PATH_AUTO   ? "auto"
         : path == LLMK_MATMUL_PATH_GEMV ? "gemv"
                                         : "cublaslt";
}

// One block. Pads are added to row strides: x, y, the input weights (w1 / w_gate, and a fused
// w_up), a separate w_up, and w2 / w_down. The defaults keep every row a multiple of 16 bytes.
struct MlpSpec {
  bool gated = false;
  int32_t dtype = LLMK_DTYPE_BF16;
  int64_t tokens = 1, d_model = 256, d_ff = 688;
  llmk_activation activation = LLMK_ACTIVATION_SILU;
  bool b1 = false, b2 = false;  // ffn's biases
  bool fused = true;            // gated_mlp: w_up continues w_gate's buffer
  int64_t x_pad = 8, y_pad = 3, w_pad = 8, up_pad = 16, w2_pad = 8;
  bool tf32 = false;
  bool tune = false;

  std::string describe() const {
    std::string s = std::string(gated ? "gated_mlp " : "ffn ") + llmk::dtype_name(dtype) + " t" +
                    std::to_string(tokens) + " dm" + std::to_string(d_model) + " ff" +
                    std::to_string(d_ff) + " act" + std::to_string(activation);
    if (gated) s += fused ? " fused" : " separate";
    if (b1) s += " b1";
    if (b2) s += " b2";
    if (tf32) s += " tf32";
    if (tune) s += " tune";
    return s;
  }
};

struct MlpHost {
  HostTensor x, w_in, w_up, b1, w2, b2, y;  // w_in: w1, w_gate, or the fused [gate; up] buffer
};

MlpHost make_host(const MlpSpec& s, std::mt19937_64& rng) {
  MlpHost h;
  const int32_t t = s.dtype;
  const double w_scale = 1.5 / std::sqrt(static_cast<double>(s.d_model));
  h.x = make_tensor(t, {s.tokens, s.d_model}, {s.d_model + s.x_pad, 1}, 0, rng, 0.0, 1.0, false);
  const int64_t in_rows = s.gated && s.fused ? 2 * s.d_ff : s.d_ff;
  h.w_in =
      make_tensor(t, {in_rows, s.d_model}, {s.d_model + s.w_pad, 1}, 0, rng, 0.0, w_scale, false);
  if (s.gated && !s.fused) {
    h.w_up =
        make_tensor(t, {s.d_ff, s.d_model}, {s.d_model + s.up_pad, 1}, 0, rng, 0.0, w_scale, false);
  }
  if (s.b1) h.b1 = make_tensor(t, {s.d_ff}, {1}, 0, rng, 0.0, 0.5, false);
  h.w2 = make_tensor(t, {s.d_model, s.d_ff}, {s.d_ff + s.w2_pad, 1}, 0, rng, 0.0,
                     1.0 / std::sqrt(static_cast<double>(s.d_ff)), false);
  if (s.b2) h.b2 = make_tensor(t, {s.d_model}, {1}, 0, rng, 0.0, 0.5, false);
  h.y = make_tensor(t, {s.tokens, s.d_model}, {s.d_model + s.y_pad, 1}, 0, rng, 0.0, 0.0, true);
  return h;
}

// The views of one call over buffers at the given bases (absent roles: base ignored).
struct MlpViews {
  llmk_tensor x, w_gate, w_up, b1, w2, b2, y;
};

MlpViews views(const MlpSpec& s, const MlpHost& h, void* x, void* w_in, void* w_up, void* b1,
               void* w2, void* b2, void* y) {
  MlpViews v{};
  v.x = view_at(h.x, x);
  v.w_gate = view_at(h.w_in, w_in);
  v.w_gate.shape[0] = s.d_ff;
  if (s.gated) {
    if (s.fused) {
      v.w_up = v.w_gate;
      v.w_up.data =
          static_cast<uint8_t*>(w_in) + s.d_ff * h.w_in.view.strides[0] * element_bytes(s.dtype);
    } else {
      v.w_up = view_at(h.w_up, w_up);
    }
  }
  if (s.b1) v.b1 = view_at(h.b1, b1);
  v.w2 = view_at(h.w2, w2);
  if (s.b2) v.b2 = view_at(h.b2, b2);
  v.y = view_at(h.y, y);
  return v;
}

llmk_status call(llmk_context* ctx, const MlpSpec& s, const MlpViews& v, int32_t path,
                 void* workspace, size_t bytes, void* stream = nullptr) {
  llmk_mlp_config config;
  llmk_mlp_config_init(&config);
  config.allow_tf32 = s.tf32 ? 1 : 0;
  config.path = path;
  config.tune = s.tune ? 1 : 0;
  if (s.gated) {
    return llmk_gated_mlp(ctx, &config, &v.x, &v.w_gate, &v.w_up, &v.w2, s.activation, workspace,
                          bytes, &v.y, stream);
  }
  return llmk_ffn(ctx, &config, &v.x, &v.w_gate, s.b1 ? &v.b1 : nullptr, &v.w2,
                  s.b2 ? &v.b2 : nullptr, s.activation, workspace, bytes, &v.y, stream);
}

size_t workspace_size(llmk_context* ctx, const MlpSpec& s, const MlpViews& v) {
  size_t bytes = 0;
  const llmk_status status = s.gated ? llmk_gated_mlp_workspace_size(ctx, &v.x, &v.w_gate, &bytes)
                                     : llmk_ffn_workspace_size(ctx, &v.x, &v.w_gate, &bytes);
  EXPECT_EQ(status, LLMK_SUCCESS) << llmk_last_error_message();
  return bytes;
}

// The atol of the rule above.
double mlp_atol(const MlpSpec& s, const MlpHost& h) {
  const int64_t dm = s.d_model, ff = s.d_ff;
  const double slope = activation_slope(s.activation), u = unit_roundoff(s.dtype);
  const std::vector<double> x = read_matrix(h.x), w_in = read_matrix(h.w_in);
  const std::vector<double> w2 = read_matrix(h.w2);
  std::vector<double> w_up;
  if (s.gated)
    w_up = s.fused ? std::vector<double>(w_in.begin() + ff * dm, w_in.end()) : read_matrix(h.w_up);
  auto bias = [](const HostTensor& b, int64_t j) {
    return b.bytes.empty()
               ? 0.0
               : element_to_double(b.view.dtype, b.bytes.data() + j * element_bytes(b.view.dtype));
  };
  double worst = 0.0;
  std::vector<double> e_h(static_cast<size_t>(ff)), h_abs(static_cast<size_t>(ff));
  for (int64_t t = 0; t < s.tokens; ++t) {
    const double* xt = &x[t * dm];
    for (int64_t f = 0; f < ff; ++f) {
      const double* wf = &w_in[f * dm];
      double pre = 0.0, products = 0.0;
      for (int64_t k = 0; k < dm; ++k) {
        pre += xt[k] * wf[k];
        products += std::fabs(xt[k] * wf[k]);
      }
      if (!s.gated) {
        pre += bias(h.b1, f);
        const double hv = host_activate(s.activation, pre);
        double e =
            slope * accumulation_bound(dm, products + std::fabs(bias(h.b1, f)), products, s.tf32);
        if (rounds_pre_activation(s.activation)) e += slope * u * std::fabs(pre);
        // cuBLASLt's epilogue rounds x W1^T to the dtype before the bias and activation.
        if (s.b1 || s.activation != LLMK_ACTIVATION_IDENTITY) {
          e += slope * u * std::fabs(pre - bias(h.b1, f));
        }
        e_h[f] = e + 2 * u * std::fabs(hv);
        h_abs[f] = std::fabs(hv);
        continue;
      }
      const double* uf = &w_up[f * dm];
      double up = 0.0, up_products = 0.0;
      for (int64_t k = 0; k < dm; ++k) {
        up += xt[k] * uf[k];
        up_products += std::fabs(xt[k] * uf[k]);
      }
      const double e_g = accumulation_bound(dm, products, products, s.tf32) + u * std::fabs(pre);
      const double e_u =
          accumulation_bound(dm, up_products, up_products, s.tf32) + u * std::fabs(up);
      const double act = host_activate(s.activation, pre);
      const double hv = act * up;
      e_h[f] = slope * e_g * (std::fabs(up) + e_u) + std::fabs(act) * e_u + 2 * u * std::fabs(hv);
      h_abs[f] = std::fabs(hv);
    }
    for (int64_t j = 0; j < dm; ++j) {
      const double* wj = &w2[j * ff];
      double carried = 0.0, products = 0.0;
      for (int64_t f = 0; f < ff; ++f) {
        carried += e_h[f] * std::fabs(wj[f]);
        products += h_abs[f] * std::fabs(wj[f]);
      }
      double bound =
          carried + accumulation_bound(ff, products + std::fabs(bias(h.b2, j)), products, s.tf32);
      if (s.b2) bound += u * products;  // h W2^T rounded before the bias epilogue
      worst = std::max(worst, bound);
    }
  }
  return atol_of(s.dtype) + worst;
}

// Runs `s` on the CPU once, then on the GPU with each of `paths`, comparing y by the rule above.
void run_block(const MlpSpec& s, const std::vector<int32_t>& paths) {
  SCOPED_TRACE(s.describe());
  std::mt19937_64 rng(std::hash<std::string>{}(s.describe()));
  const MlpHost h = make_host(s, rng);

  HostTensor cpu_y = h.y;
  auto host = [](const HostTensor& t) { return const_cast<uint8_t*>(t.bytes.data()); };
  const MlpViews c = views(s, h, host(h.x), host(h.w_in), host(h.w_up), host(h.b1), host(h.w2),
                           host(h.b2), cpu_y.bytes.data());
  const size_t cpu_bytes = workspace_size(cpu_context(), s, c);
  std::vector<uint8_t> cpu_workspace(cpu_bytes + 16);
  void* cpu_ws =
      cpu_workspace.data() + (16 - reinterpret_cast<uintptr_t>(cpu_workspace.data()) % 16) % 16;
  ASSERT_LLMK(call(cpu_context(), s, c, LLMK_MATMUL_PATH_AUTO, cpu_ws, cpu_bytes));
  const double atol = mlp_atol(s, h);

  DeviceCopy dx(h.x), dw(h.w_in), dw2(h.w2);
  std::optional<DeviceCopy> dup, db1, db2;
  if (!h.w_up.bytes.empty()) dup.emplace(h.w_up);
  if (s.b1) db1.emplace(h.b1);
  if (s.b2) db2.emplace(h.b2);
  for (int32_t path : paths) {
    SCOPED_TRACE(std::string("path ") + path_name(path));
    DeviceCopy dy(h.y);
    const MlpViews g = views(s, h, dx.ptr, dw.ptr, dup ? dup->ptr : nullptr,
                             db1 ? db1->ptr : nullptr, dw2.ptr, db2 ? db2->ptr : nullptr, dy.ptr);
    const size_t bytes = workspace_size(cuda_context(), s, g);
    EXPECT_EQ(bytes, cpu_bytes) << "the workspace size differs between the contexts";
    void* workspace = nullptr;
    ASSERT_LLMK(llmk_malloc(cuda_context(), bytes, &workspace));
    const llmk_status status = call(cuda_context(), s, g, path, workspace, bytes);
    ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
    ASSERT_LLMK(llmk_free(cuda_context(), workspace));
    ASSERT_EQ(status, LLMK_SUCCESS) << llmk_last_error_message();
    expect_close("y", h.y, dy.read(h.y.bytes.size()), cpu_y.bytes, rtol_of(s.dtype), atol);
  }
}

std::vector<int32_t> paths_for(const MlpSpec& s) {
  std::vector<int32_t> paths = {LLMK_MATMUL_PATH_CUBLASLT, LLMK_MATMUL_PATH_AUTO};
  if (s.tokens <= 16) paths.push_back(LLMK_MATMUL_PATH_GEMV);
  return paths;
}

TEST(MlpSweep, FfnAgainstTheCpu) {
  int turn = 0;
  for (int32_t dtype : kDtypes) {
    for (int64_t tokens : {1, 3, 17, 300}) {
      for (int variant = 0; variant < 2; ++variant) {
        MlpSpec s;
        s.dtype = dtype;
        s.tokens = tokens;
        s.activation = kActivations[turn++ % 5];
        s.b1 = variant == 1 || tokens == 3;
        s.b2 = variant == 1;
        s.tune = variant == 1;
        run_block(s, paths_for(s));
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MlpSweep, GatedMlpAgainstTheCpu) {
  int turn = 0;
  for (int32_t dtype : kDtypes) {
    for (int64_t tokens : {1, 2, 3, 17, 300}) {
      for (bool fused : {true, false}) {
        MlpSpec s;
        s.gated = true;
        s.dtype = dtype;
        s.tokens = tokens;
        s.fused = fused;
        // SwiGLU (Llama, Mistral) on every other case; the others take turns.
        s.activation = turn % 2 == 0 ? LLMK_ACTIVATION_SILU : kActivations[(turn / 2) % 5];
        s.tune = (turn / 2) % 2 == 1;
        ++turn;
        run_block(s, paths_for(s));
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MlpSweep, GatedGemvWithRowsLongerThanABatch) {
  // One to eight tokens on gated_mlp's GEMV with d_model = 2344: its warps take groups of k in
  // turn (1024 elements at one and two tokens, 256 at three and four, 128 at eight), and one warp
  // per row also the 296 (40) left after the last whole group. d_ff = 264 rows leave SMs idle at
  // two warps per row, so more share a row (never more than it has groups); 1704 takes two.
  for (int32_t dtype : kDtypes) {
    for (int64_t tokens : {1, 2, 3, 4, 8}) {
      for (int64_t d_ff : {264, 1704}) {
        MlpSpec s;
        s.gated = true;
        s.dtype = dtype;
        s.tokens = tokens;
        s.d_model = 2344;
        s.d_ff = d_ff;
        s.activation = LLMK_ACTIVATION_SILU;
        run_block(s, {LLMK_MATMUL_PATH_GEMV});
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MlpSweep, OddDimensions) {
  // d_model and d_ff with no 16-byte rows anywhere: cuBLASLt (and auto, which must not pick the
  // GEMV here).
  for (bool gated : {false, true}) {
    for (int32_t dtype : kDtypes) {
      MlpSpec s;
      s.gated = gated;
      s.dtype = dtype;
      s.tokens = 5;
      s.d_model = 100;
      s.d_ff = 271;
      s.x_pad = 1;
      s.w_pad = 3;
      s.w2_pad = 1;
      s.up_pad = 5;
      s.fused = dtype != LLMK_DTYPE_F16;
      s.b1 = s.b2 = !gated;
      s.activation = LLMK_ACTIVATION_GELU;
      run_block(s, {LLMK_MATMUL_PATH_CUBLASLT, LLMK_MATMUL_PATH_AUTO});
      if (HasFatalFailure()) return;
    }
  }
}

TEST(MlpSweep, Tf32) {
  for (bool gated : {false, true}) {
    for (int64_t tokens : {3, 300}) {
      MlpSpec s;
      s.gated = gated;
      s.dtype = LLMK_DTYPE_F32;
      s.tokens = tokens;
      s.tf32 = true;
      s.b1 = s.b2 = !gated;
      s.activation = gated ? LLMK_ACTIVATION_SILU : LLMK_ACTIVATION_GELU;
      run_block(s, {LLMK_MATMUL_PATH_CUBLASLT});
      if (HasFatalFailure()) return;
    }
  }
}

TEST(MlpGpu, ForcedGemvThatCannotRunIsRefusedBeforeAnyWork) {
  // 17 tokens: over the GEMV's 16 rows. Nothing may have been launched: y stays NaN.
  for (bool gated : {false, true}) {
    MlpSpec s;
    s.gated = gated;
    s.tokens = 17;
    s.b1 = !gated;
    std::mt19937_64 rng(17);
    const MlpHost h = make_host(s, rng);
    DeviceCopy dx(h.x), dw(h.w_in), dw2(h.w2), dy(h.y);
    std::optional<DeviceCopy> db1;
    if (s.b1) db1.emplace(h.b1);
    const MlpViews g =
        views(s, h, dx.ptr, dw.ptr, nullptr, db1 ? db1->ptr : nullptr, dw2.ptr, nullptr, dy.ptr);
    const size_t bytes = workspace_size(cuda_context(), s, g);
    void* workspace = nullptr;
    ASSERT_LLMK(llmk_malloc(cuda_context(), bytes, &workspace));
    EXPECT_EQ(call(cuda_context(), s, g, LLMK_MATMUL_PATH_GEMV, workspace, bytes),
              LLMK_ERROR_UNSUPPORTED);
    EXPECT_NE(std::string(llmk_last_error_message()).find("GEMV"), std::string::npos)
        << llmk_last_error_message();
    ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
    EXPECT_EQ(dy.read(h.y.bytes.size()), h.y.bytes) << "y written by a refused call";
    ASSERT_LLMK(llmk_free(cuda_context(), workspace));
  }
}

TEST(MlpGpu, ForcedGemvWithAnUpWeightItCannotStreamWritesNothing) {
  // gated_mlp with path=gemv, 3 tokens: w_gate can take the GEMV but a separate w_up whose rows
  // are not 16-byte multiples cannot. The call must be refused before any GEMM runs: y and the
  // (NaN-poisoned) workspace keep their bits.
  MlpSpec s;
  s.gated = true;
  s.fused = false;
  s.dtype = LLMK_DTYPE_F16;
  s.tokens = 3;
  s.up_pad = 1;  // rows of 257 halves
  std::mt19937_64 rng(3);
  const MlpHost h = make_host(s, rng);
  DeviceCopy dx(h.x), dw(h.w_in), dup(h.w_up), dw2(h.w2), dy(h.y);
  const MlpViews g = views(s, h, dx.ptr, dw.ptr, dup.ptr, nullptr, dw2.ptr, nullptr, dy.ptr);
  const size_t bytes = workspace_size(cuda_context(), s, g);
  HostTensor poison;
  poison.view = make_view(nullptr, LLMK_DTYPE_F16, {static_cast<int64_t>(bytes / 2)});
  poison.bytes = nan_buffer(LLMK_DTYPE_F16, bytes / 2);
  DeviceCopy workspace(poison);
  EXPECT_EQ(call(cuda_context(), s, g, LLMK_MATMUL_PATH_GEMV, workspace.ptr, bytes),
            LLMK_ERROR_UNSUPPORTED)
      << llmk_last_error_message();
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
  EXPECT_EQ(dy.read(h.y.bytes.size()), h.y.bytes) << "y written by a refused call";
  EXPECT_EQ(workspace.read(poison.bytes.size()), poison.bytes)
      << "the workspace was written: a GEMM ran before the call was refused";
}

TEST(MlpGpu, CapturedBlocksReplayTheSameResult) {
  // After one call on a stream (its cuBLASLt workspace set aside), ffn and gated_mlp capture in
  // global mode and replay to the bits of the direct call.
  for (bool gated : {false, true}) {
    MlpSpec s;
    s.gated = gated;
    s.tokens = 64;
    s.b1 = s.b2 = !gated;
    s.activation = gated ? LLMK_ACTIVATION_SILU : LLMK_ACTIVATION_GELU;
    SCOPED_TRACE(s.describe());
    std::mt19937_64 rng(64);
    const MlpHost h = make_host(s, rng);
    DeviceCopy dx(h.x), dw(h.w_in), dw2(h.w2), dy(h.y), replayed(h.y);
    std::optional<DeviceCopy> db1, db2;
    if (s.b1) db1.emplace(h.b1);
    if (s.b2) db2.emplace(h.b2);
    auto views_into = [&](void* y) {
      return views(s, h, dx.ptr, dw.ptr, nullptr, db1 ? db1->ptr : nullptr, dw2.ptr,
                   db2 ? db2->ptr : nullptr, y);
    };
    const MlpViews direct = views_into(dy.ptr), captured = views_into(replayed.ptr);
    const size_t bytes = workspace_size(cuda_context(), s, direct);
    void* workspace = nullptr;
    ASSERT_LLMK(llmk_malloc(cuda_context(), bytes, &workspace));
    cudaStream_t stream;
    ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    ASSERT_LLMK(call(cuda_context(), s, direct, LLMK_MATMUL_PATH_AUTO, workspace, bytes, stream));
    ASSERT_LLMK(llmk_synchronize(cuda_context(), stream));
    const std::vector<uint8_t> expected = dy.read(h.y.bytes.size());
    cudaGraph_t graph;
    ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const llmk_status status =
        call(cuda_context(), s, captured, LLMK_MATMUL_PATH_AUTO, workspace, bytes, stream);
    ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
    ASSERT_EQ(status, LLMK_SUCCESS) << llmk_last_error_message();
    cudaGraphExec_t exec;
    ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    ASSERT_CUDA(cudaGraphLaunch(exec, stream));
    ASSERT_CUDA(cudaStreamSynchronize(stream));
    EXPECT_EQ(replayed.read(h.y.bytes.size()), expected);
    ASSERT_CUDA(cudaGraphExecDestroy(exec));
    ASSERT_CUDA(cudaGraphDestroy(graph));
    ASSERT_CUDA(cudaStreamDestroy(stream));
    ASSERT_LLMK(llmk_free(cuda_context(), workspace));
  }
}

struct CacheStats {
  int64_t plans = 0, queries = 0;
  bool operator==(const CacheStats& o) const { return plans == o.plans && queries == o.queries; }
};

CacheStats cache_stats() {
  CacheStats s;
  EXPECT_EQ(llmk_matmul_cache_stats(cuda_context(), &s.plans, &s.queries, nullptr), LLMK_SUCCESS);
  return s;
}

// One block on the GPU with the spec's buffers, over and over: the tests below call it tuned
// and untuned, and compare bits and the plan cache between the calls.
class DeviceBlock {
 public:
  explicit DeviceBlock(const MlpSpec& s)
      : spec_(s), rng_(static_cast<uint64_t>(s.tokens)), host_(make_host(s, rng_)) {
    x_.emplace(host_.x);
    w_in_.emplace(host_.w_in);
    w2_.emplace(host_.w2);
    y_.emplace(host_.y);
    if (!host_.w_up.bytes.empty()) w_up_.emplace(host_.w_up);
    if (s.b1) b1_.emplace(host_.b1);
    if (s.b2) b2_.emplace(host_.b2);
    views_ = views(s, host_, x_->ptr, w_in_->ptr, w_up_ ? w_up_->ptr : nullptr,
                   b1_ ? b1_->ptr : nullptr, w2_->ptr, b2_ ? b2_->ptr : nullptr, y_->ptr);
    bytes_ = workspace_size(cuda_context(), s, views_);
    EXPECT_EQ(llmk_malloc(cuda_context(), bytes_, &workspace_), LLMK_SUCCESS);
  }
  ~DeviceBlock() { EXPECT_EQ(llmk_free(cuda_context(), workspace_), LLMK_SUCCESS); }

  llmk_status run(bool tune, void* stream = nullptr) {
    MlpSpec s = spec_;
    s.tune = tune;
    return call(cuda_context(), s, views_, LLMK_MATMUL_PATH_AUTO, workspace_, bytes_, stream);
  }
  std::vector<uint8_t> y() {
    EXPECT_EQ(llmk_synchronize(cuda_context(), nullptr), LLMK_SUCCESS);
    return y_->read(host_.y.bytes.size());
  }
  const std::vector<uint8_t>& poisoned_y() const { return host_.y.bytes; }

 private:
  MlpSpec spec_;
  std::mt19937_64 rng_;
  MlpHost host_;
  std::optional<DeviceCopy> x_, w_in_, w_up_, b1_, w2_, b2_, y_;
  MlpViews views_{};
  void* workspace_ = nullptr;
  size_t bytes_ = 0;
};

TEST(MlpTune, PinsThePlanOfEveryGemm) {
  // Shapes no other test uses, so that each GEMM of the block is a new key. The tuned call asks
  // the heuristic once per GEMM and makes its plan; untuned calls afterwards ask nothing, make
  // nothing, and give the tuned call's bits (the pinned algorithms). ffn with biases and
  // GELU-tanh (two GEMMs), gated_mlp with separate weights and exact GELU (three GEMMs and the
  // activation passes).
  for (bool gated : {false, true}) {
    MlpSpec s;
    s.gated = gated;
    s.fused = false;
    s.tokens = 200;
    s.d_model = 320;
    s.d_ff = 864;
    s.b1 = s.b2 = !gated;
    s.activation = gated ? LLMK_ACTIVATION_GELU : LLMK_ACTIVATION_GELU_TANH;
    SCOPED_TRACE(s.describe());
    DeviceBlock block(s);
    const int gemms = gated ? 3 : 2;
    const CacheStats before = cache_stats();
    ASSERT_LLMK(block.run(true));
    const std::vector<uint8_t> tuned = block.y();
    const CacheStats after = cache_stats();
    EXPECT_EQ(after.plans, before.plans + gemms);
    EXPECT_EQ(after.queries, before.queries + gemms);
    for (int repeat = 0; repeat < 2; ++repeat) {
      ASSERT_LLMK(block.run(false));
      EXPECT_EQ(block.y(), tuned) << "an untuned call after the tuning ran another algorithm";
    }
    EXPECT_EQ(cache_stats(), after) << "an untuned call after the tuning changed the cache";
    // Tuning again re-times the same plans: one query per GEMM, no new plan.
    ASSERT_LLMK(block.run(true));
    EXPECT_EQ(cache_stats().plans, after.plans);
    EXPECT_EQ(cache_stats().queries, after.queries + gemms);
  }
}

TEST(MlpTune, OneTokenOnTheGemvTunesTheCublasltGemmsOnly) {
  // gated_mlp at one token: the fused gate/up GEMV (nothing to tune) and the down projection's
  // GEMV under AUTO, which takes them at these widths (k a whole number of the GEMVs' groups).
  // Tuning changes nothing: no query, no plan, the untuned call's bits.
  MlpSpec s;
  s.gated = true;
  s.dtype = LLMK_DTYPE_F16;
  s.tokens = 1;
  s.d_model = 1024;
  s.d_ff = 2048;
  DeviceBlock block(s);
  ASSERT_LLMK(block.run(false));
  const std::vector<uint8_t> plain = block.y();
  const CacheStats before = cache_stats();
  ASSERT_LLMK(block.run(true));
  EXPECT_EQ(block.y(), plain);
  EXPECT_EQ(cache_stats(), before);
}

TEST(MlpTune, RefusedWhileCapturing) {
  // Tuning times calls and synchronizes: a block asked to tune on a stream being captured is
  // refused before it launches anything, so the capture stays valid and empty, and y keeps its
  // bits.
  for (bool gated : {false, true}) {
    MlpSpec s;
    s.gated = gated;
    s.tokens = 64;
    SCOPED_TRACE(s.describe());
    DeviceBlock block(s);
    cudaStream_t stream;
    ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    expect_refused_while_capturing(gated ? "gated_mlp" : "ffn", stream,
                                   [&] { return block.run(true, stream); });
    EXPECT_EQ(block.y(), block.poisoned_y()) << "y written by a refused call";
    ASSERT_CUDA(cudaStreamDestroy(stream));
  }
}

}  // namespace mlp_gpu_test
