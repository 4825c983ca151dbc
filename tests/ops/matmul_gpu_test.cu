// matmul on a CUDA context: randomized sweeps against the CPU backend over every layout and
// transpose of A, B and D (padded leading dimensions, offsets), odd sizes (M = 1, 3, 17; N up to
// 11008; K not a multiple of 8), every activation with and without bias, alpha / beta / C and the
// in-place form, batches with their own strides, stride 0 and rank-2 broadcast, every path
// (cuBLASLt for all, the GEMV where it can run, auto), and f32 with and without TF32. Then what
// only the GPU has: the plan cache (a repeated call asks no heuristic and sets aside no
// workspace), capture into a CUDA graph (and the refusal on a stream with no workspace yet),
// and several threads with their own streams on one context.
//
// The comparison rule (tests/vectors/README.md, "matmul, ffn and gated_mlp"): D from the GPU
// against D from the CPU reference (f64 sums, rounded once), elementwise
//   |gpu - cpu| <= atol + rtol |cpu|,
// rtol = the dtype's (2^-7 bf16, 2^-10 f16, 1e-5 f32: the two outputs' own roundings), and atol
// the largest over D's elements of
//   L * ((K + 2) 2^-24 S  [+ 2^-9 |alpha| sum |a b| with TF32])  [+ L u S with C, a bias or
//   an activation]
// with S = |alpha| sum_k |a_ik b_kj| + |beta c_ij| + |bias_j| (which also bounds the
// pre-activation), L = max |a'| and u the dtype's unit roundoff: f32 accumulation in any order,
// TF32's input rounding, and what cuBLASLt rounds to the dtype before its bias and activation
// epilogues (alpha A B + beta C) or before the GELU / SiLU pass (the pre-activation). Outputs start
// as NaN, so an unwritten element fails; buffer elements outside D's view (gaps, offsets) must keep
// their bits.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace matmul_gpu_test {

constexpr llmk_activation kActivations[] = {LLMK_ACTIVATION_IDENTITY, LLMK_ACTIVATION_GELU,
                                            LLMK_ACTIVATION_GELU_TANH, LLMK_ACTIVATION_SILU,
                                            LLMK_ACTIVATION_RELU};
constexpr int32_t kDtypes[] = {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16};

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

const char* path_name(int32_t path) {
  switch (path) {
    case LLMK_MATMUL_PATH_AUTO: return "auto";
    case LLMK_MATMUL_PATH_CUBLASLT: return "cublaslt";
    case LLMK_MATMUL_PATH_GEMV: return "gemv";
  }
  return "?";
}

// How a batched operand repeats: its own batch stride (with a gap between matrices), batch
// stride 0, or rank 2 against a rank-3 D.
enum class Batch { own, zero, rank2 };

// One matmul problem. batch 0: rank-2 D. Pads are added to leading dimensions; offset is the
// elements between each buffer's start and its view (0 keeps llmk_malloc's 256-byte alignment, 1
// breaks 16-byte alignment).
struct Spec {
  int32_t dtype = LLMK_DTYPE_BF16;
  int64_t batch = 0, m = 1, n = 1, k = 1;
  bool a_row = true, b_row = false, d_row = true;  // default: nn.Linear, B = W^T
  int64_t a_pad = 0, b_pad = 0, c_pad = 0, d_pad = 0;
  Batch a_batch = Batch::own, b_batch = Batch::own, c_batch = Batch::own;
  bool c = false, bias = false, in_place = false;
  llmk_activation activation = LLMK_ACTIVATION_IDENTITY;
  float alpha = 1.0f, beta = 0.0f;
  bool tf32 = false;
  int64_t offset = 0;

  std::string describe() const {
    std::string s = std::string(llmk::dtype_name(dtype)) + " ";
    if (batch > 0) s += "batch " + std::to_string(batch) + " ";
    s += std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
    s += std::string(" a ") + (a_row ? "row" : "col") + "+" + std::to_string(a_pad);
    s += std::string(" b ") + (b_row ? "row" : "col") + "+" + std::to_string(b_pad);
    s += std::string(" d ") + (d_row ? "row" : "col") + "+" + std::to_string(d_pad);
    if (c) s += in_place ? " c=d" : " c+" + std::to_string(c_pad);
    if (bias) s += " bias";
    s += std::string(" ") + activation_name(activation);
    if (alpha != 1.0f || beta != 0.0f) {
      s += " alpha " + std::to_string(alpha) + " beta " + std::to_string(beta);
    }
    if (tf32) s += " tf32";
    if (offset) s += " offset " + std::to_string(offset);
    if (batch > 0) {
      s += " batches " + std::to_string(static_cast<int>(a_batch)) +
           std::to_string(static_cast<int>(b_batch)) + std::to_string(static_cast<int>(c_batch));
    }
    return s;
  }
};

// Shape and strides of one operand of `s`.
void operand_layout(const Spec& s, int64_t rows, int64_t cols, bool row, int64_t pad, Batch mode,
                    std::vector<int64_t>& shape, std::vector<int64_t>& strides) {
  const int64_t ld = (row ? cols : rows) + pad;
  shape = {rows, cols};
  strides = row ? std::vector<int64_t>{ld, 1} : std::vector<int64_t>{1, ld};
  if (s.batch == 0 || mode == Batch::rank2) return;
  const int64_t matrix = ld * (row ? rows : cols);
  shape.insert(shape.begin(), s.batch);
  strides.insert(strides.begin(), mode == Batch::zero ? 0 : matrix + 5);
}

HostTensor operand(const Spec& s, int64_t rows, int64_t cols, bool row, int64_t pad, Batch mode,
                   std::mt19937_64& rng, double scale, bool poison) {
  std::vector<int64_t> shape, strides;
  operand_layout(s, rows, cols, row, pad, mode, shape, strides);
  return make_tensor(s.dtype, shape, strides, s.offset, rng, 0.0, scale, poison);
}

// Element (batch, i, j) of a rank-2 or rank-3 view (batch ignored for rank 2).
double element(const HostTensor& h, int64_t batch, int64_t i, int64_t j) {
  const llmk_tensor& v = h.view;
  int64_t e = h.offset + i * v.strides[v.ndim - 2] + j * v.strides[v.ndim - 1];
  if (v.ndim == 3) e += batch * v.strides[0];
  return element_to_double(v.dtype, h.bytes.data() + e * element_bytes(v.dtype));
}

// Element j of a 1-D view.
double element(const HostTensor& h, int64_t j) {
  return element_to_double(h.view.dtype, h.bytes.data() + (h.offset + j * h.view.strides[0]) *
                                                              element_bytes(h.view.dtype));
}

struct Operands {
  HostTensor a, b, c, bias, d;  // c.bytes empty without C; d is c in place
};

Operands make_operands(const Spec& s, std::mt19937_64& rng) {
  Operands o;
  o.a = operand(s, s.m, s.k, s.a_row, s.a_pad, s.a_batch, rng, 1.0, false);
  o.b = operand(s, s.k, s.n, s.b_row, s.b_pad, s.b_batch, rng,
                1.5 / std::sqrt(static_cast<double>(std::max<int64_t>(s.k, 1))), false);
  if (s.c) {
    o.c = operand(s, s.m, s.n, s.d_row, s.in_place ? s.d_pad : s.c_pad,
                  s.in_place ? Batch::own : s.c_batch, rng, 1.0, false);
  }
  if (s.bias) o.bias = make_tensor(s.dtype, {s.n}, {1}, s.offset, rng, 0.0, 0.5, false);
  o.d = operand(s, s.m, s.n, s.d_row, s.d_pad, Batch::own, rng, 0.0, true);
  return o;
}

// The atol of the rule above for these operands.
double matmul_atol(const Spec& s, const Operands& o) {
  const double slope = activation_slope(s.activation);
  double worst = 0.0;
  std::vector<double> a_abs(static_cast<size_t>(s.m * s.k)), b_abs(static_cast<size_t>(s.n * s.k));
  for (int64_t batch = 0; batch < std::max<int64_t>(s.batch, 1); ++batch) {
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t kk = 0; kk < s.k; ++kk)
        a_abs[i * s.k + kk] = std::fabs(element(o.a, batch, i, kk));
    }
    for (int64_t j = 0; j < s.n; ++j) {  // B's columns, contiguous
      for (int64_t kk = 0; kk < s.k; ++kk)
        b_abs[j * s.k + kk] = std::fabs(element(o.b, batch, kk, j));
    }
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) {
        double products = 0.0;
        for (int64_t kk = 0; kk < s.k; ++kk) products += a_abs[i * s.k + kk] * b_abs[j * s.k + kk];
        products *= std::fabs(s.alpha);
        double magnitude = products;
        if (s.c && s.beta != 0.0f) magnitude += std::fabs(s.beta * element(o.c, batch, i, j));
        if (s.bias) magnitude += std::fabs(element(o.bias, j));
        double bound = slope * accumulation_bound(s.k, magnitude, products, s.tf32);
        // GELU / SiLU: cuBLASLt's path rounds the pre-activation before their pass; it rounds
        // alpha A B before adding beta C, and that before a bias or activation epilogue. S bounds
        // them all.
        if (rounds_pre_activation(s.activation) || s.bias || (s.c && s.beta != 0.0f) ||
            s.activation != LLMK_ACTIVATION_IDENTITY) {
          bound += slope * unit_roundoff(s.dtype) * magnitude;
        }
        worst = std::max(worst, bound);
      }
    }
  }
  return atol_of(s.dtype) + worst;
}

llmk_matmul_config config_of(const Spec& s, int32_t path) {
  llmk_matmul_config config;
  llmk_matmul_config_init(&config);
  config.alpha = s.alpha;
  config.beta = s.beta;
  config.activation = s.activation;
  config.allow_tf32 = s.tf32 ? 1 : 0;
  config.path = path;
  return config;
}

// The paths to try for `s`: auto and cuBLASLt always, the GEMV where it can take the call
// (llmk_matmul_path_for with path=gemv answers that on the CPU context, as on the GPU).
std::vector<int32_t> paths_for(const Spec& s, const Operands& o) {
  std::vector<int32_t> paths = {LLMK_MATMUL_PATH_AUTO, LLMK_MATMUL_PATH_CUBLASLT};
  const llmk_matmul_config config = config_of(s, LLMK_MATMUL_PATH_GEMV);
  const llmk_tensor a = view_at(o.a, const_cast<uint8_t*>(o.a.bytes.data()));
  const llmk_tensor b = view_at(o.b, const_cast<uint8_t*>(o.b.bytes.data()));
  const llmk_tensor c = view_at(o.c, const_cast<uint8_t*>(o.c.bytes.data()));
  const llmk_tensor bias = view_at(o.bias, const_cast<uint8_t*>(o.bias.bytes.data()));
  const llmk_tensor d = s.in_place ? c : view_at(o.d, const_cast<uint8_t*>(o.d.bytes.data()));
  int32_t path = -1;
  if (llmk_matmul_path_for(cpu_context(), &config, &a, &b, s.c ? &c : nullptr,
                           s.bias ? &bias : nullptr, &d, &path) == LLMK_SUCCESS) {
    EXPECT_EQ(path, LLMK_MATMUL_PATH_GEMV);
    paths.push_back(LLMK_MATMUL_PATH_GEMV);
  }
  return paths;
}

// What llmk_matmul_tune must report for a call that took `path`: timings of cuBLASLt's
// candidates, or nothing where the GEMV ran.
void expect_tuning_report(const llmk_matmul_tuning& t, int32_t path) {
  if (path == LLMK_MATMUL_PATH_GEMV) {
    EXPECT_EQ(t.candidates, 0);
    EXPECT_EQ(t.chosen, 0);
    EXPECT_EQ(t.first_us, 0.0f);
    EXPECT_EQ(t.chosen_us, 0.0f);
    return;
  }
  EXPECT_GE(t.candidates, 1);
  EXPECT_LE(t.candidates, 8);
  EXPECT_GE(t.chosen, 0);
  EXPECT_LT(t.chosen, 8);
  EXPECT_GT(t.first_us, 0.0f);
  EXPECT_GT(t.chosen_us, 0.0f);
  EXPECT_LE(t.chosen_us, t.first_us);
  if (t.chosen == 0) EXPECT_EQ(t.chosen_us, t.first_us);
}

// Runs `s` on the CPU context and on the CUDA context with `path`, and compares D (or C, in
// place) by the rule above. Also checks that llmk_matmul_path_for answers alike on both contexts.
// With `tune`, the CUDA call is llmk_matmul_tune: its candidates must leave no trace in D (in
// place, none may have accumulated into it).
void run_case(const Spec& s, int32_t path, bool tune = false) {
  const std::string what = s.describe() + " path " + path_name(path) + (tune ? " tuned" : "");
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(s.describe()));
  const Operands o = make_operands(s, rng);
  const llmk_matmul_config config = config_of(s, path);
  const HostTensor& out = s.in_place ? o.c : o.d;

  // CPU: the reference, over copies of the host buffers.
  HostTensor cpu_c = o.c, cpu_d = o.d;
  const llmk_tensor a = view_at(o.a, const_cast<uint8_t*>(o.a.bytes.data()));
  const llmk_tensor b = view_at(o.b, const_cast<uint8_t*>(o.b.bytes.data()));
  const llmk_tensor bias = view_at(o.bias, const_cast<uint8_t*>(o.bias.bytes.data()));
  const llmk_tensor c = view_at(cpu_c, cpu_c.bytes.data());
  const llmk_tensor d = s.in_place ? c : view_at(cpu_d, cpu_d.bytes.data());
  ASSERT_LLMK(llmk_matmul(cpu_context(), &config, &a, &b, s.c ? &c : nullptr,
                          s.bias ? &bias : nullptr, &d, nullptr));
  int32_t cpu_path = -1;
  ASSERT_LLMK(llmk_matmul_path_for(cpu_context(), &config, &a, &b, s.c ? &c : nullptr,
                                   s.bias ? &bias : nullptr, &d, &cpu_path));

  DeviceCopy da(o.a), db(o.b), dd(o.d);
  std::optional<DeviceCopy> dc, dbias;
  if (s.c) dc.emplace(o.c);
  if (s.bias) dbias.emplace(o.bias);
  const llmk_tensor ga = view_at(o.a, da.ptr), gb = view_at(o.b, db.ptr);
  const llmk_tensor gc = s.c ? view_at(o.c, dc->ptr) : llmk_tensor{};
  const llmk_tensor gbias = s.bias ? view_at(o.bias, dbias->ptr) : llmk_tensor{};
  const llmk_tensor gd = s.in_place ? gc : view_at(o.d, dd.ptr);
  int32_t gpu_path = -1;
  ASSERT_LLMK(llmk_matmul_path_for(cuda_context(), &config, &ga, &gb, s.c ? &gc : nullptr,
                                   s.bias ? &gbias : nullptr, &gd, &gpu_path));
  EXPECT_EQ(gpu_path, cpu_path) << "path_for differs between the CPU and the CUDA context";
  if (path != LLMK_MATMUL_PATH_AUTO) EXPECT_EQ(gpu_path, path);
  if (tune) {
    llmk_matmul_tuning tuning{};
    tuning.struct_size = sizeof tuning;
    ASSERT_LLMK(llmk_matmul_tune(cuda_context(), &config, &ga, &gb, s.c ? &gc : nullptr,
                                 s.bias ? &gbias : nullptr, &gd, nullptr, &tuning));
    expect_tuning_report(tuning, gpu_path);
  } else {
    ASSERT_LLMK(llmk_matmul(cuda_context(), &config, &ga, &gb, s.c ? &gc : nullptr,
                            s.bias ? &gbias : nullptr, &gd, nullptr));
  }
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));

  const double atol = matmul_atol(s, o);
  if (s.in_place) {
    expect_close("d (in c)", out, dc->read(out.bytes.size()), cpu_c.bytes, rtol_of(s.dtype), atol);
  } else {
    expect_close("d", out, dd.read(out.bytes.size()), cpu_d.bytes, rtol_of(s.dtype), atol);
  }
}

void run_all_paths(const Spec& s) {
  std::mt19937_64 rng(std::hash<std::string>{}(s.describe()));
  const Operands o = make_operands(s, rng);
  for (int32_t path : paths_for(s, o)) {
    run_case(s, path);
    if (testing::Test::HasFatalFailure()) return;
  }
}

// --- sweeps --------------------------------------------------------------------------------------

TEST(MatmulSweep, EveryLayoutAndTranspose) {
  // Each (M, N, K) with A, B and D row- or column-major, every dtype; leading dimensions padded
  // on every other case. Where D is row-major, a bias and an activation take turns.
  struct Size {
    int64_t m, n, k;
  };
  const Size sizes[] = {{1, 11008, 40}, {3, 11008, 24}, {17, 11008, 40}, {3, 257, 300},
                        {17, 96, 37},   {1, 24, 1},     {5, 1, 17},      {16, 130, 64}};
  int turn = 0;
  for (int32_t dtype : kDtypes) {
    for (int layout = 0; layout < 8; ++layout) {
      for (const Size& size : sizes) {
        Spec s;
        s.dtype = dtype;
        s.m = size.m;
        s.n = size.n;
        s.k = size.k;
        s.a_row = layout & 1;
        s.b_row = layout & 2;
        s.d_row = layout & 4;
        if (++turn % 2 == 0) {
          s.a_pad = 3;
          s.b_pad = 8;
          s.d_pad = 1;
        }
        if (s.d_row) {
          s.bias = turn % 3 != 0;
          s.activation = kActivations[turn % 5];
        }
        run_all_paths(s);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MatmulSweep, EpiloguesAndScalars) {
  // Every activation with and without bias, and alpha / beta with C (separate and in place), at
  // a decode size (the GEMV's) and a prefill size; each also through llmk_matmul_tune.
  struct Scalars {
    float alpha, beta;
    bool c, in_place;
  };
  const Scalars scalars[] = {
      {1.0f, 0.0f, false, false}, {0.5f, -1.25f, true, false}, {-2.0f, 1.0f, true, true}};
  for (int32_t dtype : kDtypes) {
    for (llmk_activation activation : kActivations) {
      for (bool bias : {false, true}) {
        for (const Scalars& sc : scalars) {
          for (int64_t m : {1, 17}) {
            Spec s;
            s.dtype = dtype;
            s.m = m;
            s.n = 515;
            s.k = 72;
            s.bias = bias;
            s.activation = activation;
            s.alpha = sc.alpha;
            s.beta = sc.beta;
            s.c = sc.c;
            s.in_place = sc.in_place;
            s.c_pad = 2;
            run_all_paths(s);
            for (int32_t path : {LLMK_MATMUL_PATH_AUTO, LLMK_MATMUL_PATH_CUBLASLT}) {
              run_case(s, path, /*tune=*/true);
            }
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(MatmulSweep, BatchesStridesAndBroadcast) {
  for (int32_t dtype : kDtypes) {
    std::vector<Spec> specs;
    Spec s;
    s.dtype = dtype;
    s.batch = 3;
    s.m = 17;
    s.n = 40;
    s.k = 37;
    specs.push_back(s);  // own batch strides everywhere
    s.b_batch = Batch::zero;
    s.bias = true;
    s.activation = LLMK_ACTIVATION_SILU;
    specs.push_back(s);  // one weight for every batch, through stride 0
    s.b_batch = Batch::rank2;
    s.a_batch = Batch::own;
    s.c = true;
    s.c_batch = Batch::rank2;
    s.beta = 0.75f;
    specs.push_back(s);  // rank-2 B and C against a rank-3 D
    s = Spec{};
    s.dtype = dtype;
    s.batch = 4;
    s.m = 5;
    s.n = 33;
    s.k = 64;
    s.a_row = false;
    s.b_row = true;
    s.d_row = false;
    s.a_pad = 2;
    s.d_pad = 3;
    s.c = true;
    s.c_batch = Batch::zero;
    s.beta = -1.0f;
    s.activation = LLMK_ACTIVATION_GELU_TANH;
    specs.push_back(s);  // column-major D batches, C broadcast through stride 0
    s.c_batch = Batch::own;
    s.in_place = true;
    specs.push_back(s);  // in place over batched C
    s = Spec{};
    s.dtype = dtype;
    s.batch = 2;
    s.m = 1;
    s.n = 11008;
    s.k = 32;
    s.a_batch = Batch::rank2;
    s.bias = true;
    specs.push_back(s);  // one row against two weights
    s = Spec{};
    s.dtype = dtype;
    s.batch = 1;
    s.m = 4;
    s.n = 96;
    s.k = 128;
    s.bias = true;
    s.activation = LLMK_ACTIVATION_GELU;
    specs.push_back(s);  // a batch of one: still the GEMV's
    for (const Spec& spec : specs) {
      run_all_paths(spec);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(MatmulSweep, MisalignedViews) {
  // Views one element past the allocation's start: cuBLASLt with low alignment, never the GEMV.
  for (int32_t dtype : kDtypes) {
    Spec s;
    s.dtype = dtype;
    s.m = 3;
    s.n = 257;
    s.k = 64;
    s.offset = 1;
    s.bias = true;
    s.activation = LLMK_ACTIVATION_RELU;
    run_all_paths(s);
    if (HasFatalFailure()) return;
    s.m = 33;
    s.c = true;
    s.beta = 1.0f;
    s.bias = false;
    run_all_paths(s);
    if (HasFatalFailure()) return;
  }
}

TEST(MatmulGemv, DecodeRowsWithALongK) {
  // M = 1 ... 16 rows against a 4096-deep weight, on the GEMV and on cuBLASLt; K not a multiple
  // of 8 (4099, with leading dimensions padded to 16 bytes) at a few M; alpha, beta and C.
  for (int32_t dtype : kDtypes) {
    for (int64_t m = 1; m <= 16; ++m) {
      Spec s;
      s.dtype = dtype;
      s.m = m;
      s.n = 257;
      s.k = 4096;
      s.bias = m % 2 == 1;
      s.activation = kActivations[m % 5];
      run_case(s, LLMK_MATMUL_PATH_GEMV);
      if (HasFatalFailure()) return;
      run_case(s, LLMK_MATMUL_PATH_CUBLASLT);
      if (HasFatalFailure()) return;
      if (m == 2 || m == 4 || m == 7 || m == 16) {
        s.k = 4099;
        s.a_pad = s.b_pad = 5;  // 4104 elements: 16-byte rows in every dtype
        run_case(s, LLMK_MATMUL_PATH_GEMV);
        if (HasFatalFailure()) return;
      }
      if (m == 3) {
        s.k = 4096;
        s.c = true;
        s.alpha = 0.5f;
        s.beta = 2.0f;
        run_case(s, LLMK_MATMUL_PATH_GEMV);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MatmulGemv, FewRowsAcrossWarpShares) {
  // The one- to eight-row GEMV's warps take groups of k in turn (2048 elements at one row, 1024 at
  // two, where a warp holds two rows of W, 256 at three and four, 8 rows of W, 128 at eight, 16
  // rows), and one warp per tile also the elements left after the last whole group, element by
  // element. N = 257 rows leave SMs idle at two warps per tile, so up to 8 warps share one; N =
  // 2200 takes two. K = 5133 (2 groups and 1037 elements at one row, 5 and 13 at two, 20 and 13
  // at four, 40 and 13 at eight) and 17000 (8 and 616; 16 and 616; 66 and 104; 132 and 104) give
  // warps of a tile different numbers of groups, and the leftover to one of them; K = 1000 is all
  // leftover at two rows (one row takes RunWarp there). N = 257 leaves the last two-row tile's
  // second row past N, and all but one row of the last four- and eight-row tiles; N = 4300 gives
  // two rows enough tiles that a share two warps would split unevenly (K = 5133: 5 groups;
  // 17000: a leftover) takes one warp per tile. Three rows leave the four-row tile's last row of x
  // past M. From three rows on, N = 4300 (a case of the two-row tile's split) and K = 17000 are
  // left out: their CPU reference would take minutes, and K = 5133 already gives some warps a
  // group more and the leftover. Every dtype (f32 takes the FMA tiles).
  for (int32_t dtype : kDtypes) {
    for (int64_t m : {1, 2, 3, 4, 8}) {
      for (int64_t n : {257, 2200, 4300}) {
        for (int64_t k : {1000, 5133, 17000}) {
          if (m > 2 && (n == 4300 || k == 17000)) continue;
          Spec s;
          s.dtype = dtype;
          s.m = m;
          s.n = n;
          s.k = k;
          s.a_pad = s.b_pad = k == 5133 ? 3 : 0;  // 5136 elements: 16-byte rows in every dtype
          s.bias = m == 1;
          s.activation = kActivations[(k + n) % 5];
          run_case(s, LLMK_MATMUL_PATH_GEMV);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(MatmulGemv, OneRowInContiguousRunsPerWarp) {
  // Where the one-row GEMV would leave much of k to one warp (k < 2048, or k % 2048 over a tenth
  // of k), f16 and bf16 take RunWarp: each warp of a row one contiguous run of its 256-element
  // segments, in batches of up to 4, and the last warp the k % 256 after them. The launcher picks
  // 1 to 8 warps per row from N, k and the SM count; on 132 SMs N = 3 takes 8 (K = 8453, 33
  // segments: six runs of 5, one of 3 and an empty last run, whose warp still sums the 5 left
  // over), and N = 2200 one warp of 5 batches at K = 5133, which finishes its row without the
  // block. K = 1 and 255 are all leftover.
  for (int32_t dtype : {LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (int64_t n : {3, 257, 2200}) {
      for (int64_t k : {1, 255, 1000, 2304, 5133, 8453, 13829}) {
        Spec s;
        s.dtype = dtype;
        s.n = n;
        s.k = k;
        s.b_pad = (8 - k % 8) % 8;  // 16-byte rows of W
        s.bias = k % 2 == 1;
        s.activation = kActivations[(k + n) % 5];
        run_case(s, LLMK_MATMUL_PATH_GEMV);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(MatmulTf32, F32WithAndWithoutTf32) {
  // The same f32 problem in full f32 (atol from f32 accumulation alone) and with TF32 allowed
  // (atol adds 2^-9 sum |a b|).
  for (bool tf32 : {false, true}) {
    for (int64_t m : {1, 17, 256}) {
      Spec s;
      s.dtype = LLMK_DTYPE_F32;
      s.m = m;
      s.n = 257;
      s.k = 300;
      s.bias = true;
      s.activation = LLMK_ACTIVATION_GELU;
      s.tf32 = tf32;
      run_all_paths(s);
      if (HasFatalFailure()) return;
    }
  }
}

// --- the plan cache, graphs, threads -------------------------------------------------------------

struct Stats {
  int64_t plans = 0, queries = 0, workspaces = 0;
  bool operator==(const Stats& o) const {
    return plans == o.plans && queries == o.queries && workspaces == o.workspaces;
  }
};

Stats stats() {
  Stats s;
  EXPECT_EQ(llmk_matmul_cache_stats(cuda_context(), &s.plans, &s.queries, &s.workspaces),
            LLMK_SUCCESS);
  return s;
}

std::ostream& operator<<(std::ostream& os, const Stats& s) {
  return os << "{plans " << s.plans << ", queries " << s.queries << ", workspaces " << s.workspaces
            << "}";
}

// A prefill-sized problem on device copies, run on any stream into any D copy.
struct Problem {
  Spec spec;
  Operands host;
  std::unique_ptr<DeviceCopy> a, b, bias, c;
  llmk_matmul_config config;
  explicit Problem(const Spec& s, int32_t path = LLMK_MATMUL_PATH_CUBLASLT) : spec(s) {
    std::mt19937_64 rng(std::hash<std::string>{}(s.describe()));
    host = make_operands(s, rng);
    a = std::make_unique<DeviceCopy>(host.a);
    b = std::make_unique<DeviceCopy>(host.b);
    if (s.bias) bias = std::make_unique<DeviceCopy>(host.bias);
    if (s.c) c = std::make_unique<DeviceCopy>(host.c);
    config = config_of(s, path);
  }
  llmk_status run(const DeviceCopy& d, cudaStream_t stream) const {
    const llmk_tensor av = view_at(host.a, a->ptr), bv = view_at(host.b, b->ptr);
    const llmk_tensor biasv = bias ? view_at(host.bias, bias->ptr) : llmk_tensor{};
    const llmk_tensor cv = c ? view_at(host.c, c->ptr) : llmk_tensor{};
    const llmk_tensor dv = view_at(host.d, d.ptr);
    return llmk_matmul(cuda_context(), &config, &av, &bv, c ? &cv : nullptr,
                       bias ? &biasv : nullptr, &dv, stream);
  }
  llmk_status tune(const DeviceCopy& d, cudaStream_t stream, llmk_matmul_tuning* tuning) const {
    const llmk_tensor av = view_at(host.a, a->ptr), bv = view_at(host.b, b->ptr);
    const llmk_tensor biasv = bias ? view_at(host.bias, bias->ptr) : llmk_tensor{};
    const llmk_tensor cv = c ? view_at(host.c, c->ptr) : llmk_tensor{};
    const llmk_tensor dv = view_at(host.d, d.ptr);
    return llmk_matmul_tune(cuda_context(), &config, &av, &bv, c ? &cv : nullptr,
                            bias ? &biasv : nullptr, &dv, stream, tuning);
  }
  std::vector<uint8_t> run_and_read(cudaStream_t stream) const {
    DeviceCopy d(host.d);
    EXPECT_EQ(run(d, stream), LLMK_SUCCESS) << llmk_last_error_message();
    EXPECT_EQ(llmk_synchronize(cuda_context(), stream), LLMK_SUCCESS);
    return d.read(host.d.bytes.size());
  }
};

Spec prefill_spec(llmk_activation activation, int64_t m = 64) {
  Spec s;
  s.dtype = LLMK_DTYPE_BF16;
  s.m = m;
  s.n = 1024;
  s.k = 512;
  s.bias = true;
  s.activation = activation;
  return s;
}

TEST(MatmulCache, RepeatedCallAsksNothingAndCanBeCaptured) {
  // GELU_TANH is one cuBLASLt call with its epilogue; SILU a cuBLASLt call and the activation
  // pass. Either way: the second identical call on a stream asks no heuristic, sets aside no
  // workspace and gives the same bits, and it can be captured (global mode: any allocation or
  // synchronization in the call would invalidate the capture) and replayed to the same bits.
  for (llmk_activation activation : {LLMK_ACTIVATION_GELU_TANH, LLMK_ACTIVATION_SILU}) {
    SCOPED_TRACE(activation_name(activation));
    const Problem p(prefill_spec(activation));
    cudaStream_t stream;
    ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const Stats cold = stats();
    const std::vector<uint8_t> first = p.run_and_read(stream);
    const Stats warm = stats();
    // (Tunings earlier in the process re-queried plans they kept, hence differences.)
    EXPECT_EQ(warm.queries - warm.plans, cold.queries - cold.plans)
        << "one heuristic query per new plan";
    const std::vector<uint8_t> second = p.run_and_read(stream);
    EXPECT_EQ(stats(), warm) << "a repeated call changed the cache";
    EXPECT_EQ(second, first);

    DeviceCopy replayed(p.host.d);
    cudaGraph_t graph;
    ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const llmk_status captured = p.run(replayed, stream);
    ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
    ASSERT_EQ(captured, LLMK_SUCCESS) << llmk_last_error_message();
    cudaGraphExec_t exec;
    ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (int launch = 0; launch < 2; ++launch) {
      ASSERT_CUDA(cudaGraphLaunch(exec, stream));
      ASSERT_CUDA(cudaStreamSynchronize(stream));
      EXPECT_EQ(replayed.read(p.host.d.bytes.size()), first) << "launch " << launch;
    }
    EXPECT_EQ(stats(), warm) << "the capture changed the cache";
    ASSERT_CUDA(cudaGraphExecDestroy(exec));
    ASSERT_CUDA(cudaGraphDestroy(graph));
    ASSERT_CUDA(cudaStreamDestroy(stream));
  }
}

TEST(MatmulCache, NewShapeIsOneQuery) {
  const Problem p(prefill_spec(LLMK_ACTIVATION_RELU, 48));
  const Stats before = stats();
  p.run_and_read(nullptr);
  const Stats after = stats();
  EXPECT_EQ(after.plans, before.plans + 1);
  EXPECT_EQ(after.queries, before.queries + 1);
  p.run_and_read(nullptr);
  EXPECT_EQ(stats(), after);
}

TEST(MatmulCache, CaptureOnAStreamWithoutWorkspaceIsRefusedCleanly) {
  // A stream's cuBLASLt workspace is set aside on its first matmul, which a capture cannot do:
  // the call is refused with UNSUPPORTED before it touches the stream, so the capture is still
  // valid (it ends with success, holding nothing) and D is untouched. After one ordinary call on
  // that stream, the capture works.
  const Problem p(prefill_spec(LLMK_ACTIVATION_GELU_TANH, 40));
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  DeviceCopy d(p.host.d);
  const Stats before = stats();
  expect_refused_while_capturing("matmul", stream, [&] { return p.run(d, stream); });
  EXPECT_EQ(stats().workspaces, before.workspaces);
  const std::vector<uint8_t> untouched = d.read(p.host.d.bytes.size());
  EXPECT_EQ(untouched, p.host.d.bytes) << "d written by a refused call";

  const std::vector<uint8_t> direct = p.run_and_read(stream);
  EXPECT_EQ(stats().workspaces, before.workspaces + 1);
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const llmk_status second = p.run(d, stream);
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  ASSERT_EQ(second, LLMK_SUCCESS) << llmk_last_error_message();
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  EXPECT_EQ(d.read(p.host.d.bytes.size()), direct);
  ASSERT_CUDA(cudaGraphExecDestroy(exec));
  ASSERT_CUDA(cudaGraphDestroy(graph));

  // A shape the cache has not seen, captured on the warm stream: the heuristic query is host
  // work, so only the workspace needs the warm-up.
  const Problem fresh(prefill_spec(LLMK_ACTIVATION_RELU, 41));
  const Stats warm = stats();
  DeviceCopy fresh_d(fresh.host.d);
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const llmk_status planned = fresh.run(fresh_d, stream);
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  ASSERT_EQ(planned, LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(stats().plans, warm.plans + 1);
  EXPECT_EQ(stats().workspaces, warm.workspaces);
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  EXPECT_EQ(fresh_d.read(fresh.host.d.bytes.size()), fresh.run_and_read(nullptr));
  ASSERT_CUDA(cudaGraphExecDestroy(exec));
  ASSERT_CUDA(cudaGraphDestroy(graph));
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

TEST(MatmulCache, GemvNeedsNoWorkspaceToBeCaptured) {
  // The GEMV engine uses no cuBLASLt workspace: a fresh stream can capture it at once.
  Spec s;
  s.dtype = LLMK_DTYPE_F16;
  s.m = 4;
  s.n = 512;
  s.k = 1024;
  s.bias = true;
  s.activation = LLMK_ACTIVATION_SILU;
  const Problem p(s, LLMK_MATMUL_PATH_GEMV);
  const std::vector<uint8_t> direct = p.run_and_read(nullptr);
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const Stats before = stats();
  DeviceCopy d(p.host.d);
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const llmk_status status = p.run(d, stream);
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  ASSERT_EQ(status, LLMK_SUCCESS) << llmk_last_error_message();
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  EXPECT_EQ(d.read(p.host.d.bytes.size()), direct);
  EXPECT_EQ(stats(), before);
  ASSERT_CUDA(cudaGraphExecDestroy(exec));
  ASSERT_CUDA(cudaGraphDestroy(graph));
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

TEST(MatmulTune, PinsTheFastestForLaterCalls) {
  // A new shape: the tuning asks the heuristic once (for its candidates) and makes the plan;
  // later matmuls of the shape ask nothing and run the pinned algorithm, so they give the tuned
  // call's bits. Tuning again re-times the same plan: one more query, no new plan.
  const Problem p(prefill_spec(LLMK_ACTIVATION_GELU_TANH, 2048 - 7));
  const Stats before = stats();
  DeviceCopy tuned(p.host.d);
  llmk_matmul_tuning tuning{};
  tuning.struct_size = sizeof tuning;
  ASSERT_LLMK(p.tune(tuned, nullptr, &tuning));
  expect_tuning_report(tuning, LLMK_MATMUL_PATH_CUBLASLT);
  const Stats after = stats();
  EXPECT_EQ(after.plans, before.plans + 1);
  EXPECT_EQ(after.queries, before.queries + 1);
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
  const std::vector<uint8_t> tuned_bits = tuned.read(p.host.d.bytes.size());
  EXPECT_EQ(p.run_and_read(nullptr), tuned_bits);
  EXPECT_EQ(stats(), after) << "a matmul after the tuning changed the cache";

  DeviceCopy again(p.host.d);
  ASSERT_LLMK(p.tune(again, nullptr, nullptr));  // the report is optional
  EXPECT_EQ(stats().plans, after.plans);
  EXPECT_EQ(stats().queries, after.queries + 1);
  std::printf("tuned %s: %d candidates, chose rank %d: %.1f us against the first's %.1f\n",
              p.spec.describe().c_str(), tuning.candidates, tuning.chosen, tuning.chosen_us,
              tuning.first_us);
}

TEST(MatmulTune, ReportOfAnOlderHeaderAndBadStructSize) {
  // A caller whose header's llmk_matmul_tuning ended at `chosen` gets those fields and nothing
  // past them; a struct_size too small to hold `candidates` is refused before any work.
  const Problem p(prefill_spec(LLMK_ACTIVATION_RELU, 33));
  DeviceCopy d(p.host.d);
  llmk_matmul_tuning older;
  std::memset(&older, 0x7f, sizeof older);
  older.struct_size = offsetof(llmk_matmul_tuning, first_us);
  ASSERT_LLMK(p.tune(d, nullptr, &older));
  EXPECT_GE(older.candidates, 1);
  float untouched;
  std::memset(&untouched, 0x7f, sizeof untouched);
  EXPECT_EQ(std::memcmp(&older.first_us, &untouched, sizeof untouched), 0)
      << "first_us written past struct_size";

  llmk_matmul_tuning small{};
  small.struct_size = sizeof(size_t);
  EXPECT_EQ(p.tune(d, nullptr, &small), LLMK_ERROR_INVALID_VALUE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("tuning->struct_size"), std::string::npos)
      << llmk_last_error_message();
}

TEST(MatmulTune, RefusedWhileCapturing) {
  // Tuning synchronizes and times: it cannot be part of a graph. It is refused before touching
  // the stream, so the capture stays valid and empty, and D keeps its bits.
  const Problem p(prefill_spec(LLMK_ACTIVATION_IDENTITY, 36));
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  p.run_and_read(stream);  // the stream's workspace
  DeviceCopy d(p.host.d);
  expect_refused_while_capturing("matmul_tune", stream, [&] { return p.tune(d, stream, nullptr); });
  EXPECT_EQ(d.read(p.host.d.bytes.size()), p.host.d.bytes) << "d written by a refused call";
  ASSERT_CUDA(cudaStreamDestroy(stream));
}

TEST(MatmulConcurrency, ThreadsWithTheirOwnStreamsShareOneContext) {
  // Each thread runs a few problems, some shapes shared with other threads (plan cache hits
  // and misses racing), on its own stream, repeatedly; every result must have the bits of the
  // same problem run alone. Each new stream gets one workspace; each new plan one query.
  constexpr int kThreads = 6;
  std::vector<std::unique_ptr<Problem>> problems;
  for (int t = 0; t < kThreads; ++t) {
    Spec s = prefill_spec(kActivations[t % 5], 32 + 16 * (t % 3));
    s.dtype = kDtypes[t % 3];
    s.n = 768 + 64 * (t % 2);
    problems.push_back(std::make_unique<Problem>(s));
  }
  std::vector<std::vector<uint8_t>> alone(kThreads), together(kThreads);
  for (int t = 0; t < kThreads; ++t) alone[t] = problems[t]->run_and_read(nullptr);
  const Stats before = stats();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      cudaStream_t stream;
      if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
        ++failures;
        return;
      }
      for (int repeat = 0; repeat < 4; ++repeat) {
        // Every thread also runs its neighbour's problem: two streams on one plan at once.
        const Problem& mine = *problems[t];
        const Problem& neighbour = *problems[(t + 1) % kThreads];
        together[t] = mine.run_and_read(stream);
        if (neighbour.run_and_read(stream) != alone[(t + 1) % kThreads]) ++failures;
      }
      if (cudaStreamDestroy(stream) != cudaSuccess) ++failures;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(together[t], alone[t]) << "thread " << t;
  const Stats after = stats();
  EXPECT_EQ(after.workspaces, before.workspaces + kThreads);
  EXPECT_EQ(after.plans, before.plans) << "every shape was planned before the threads ran";
  EXPECT_EQ(after.queries, before.queries);
}

TEST(MatmulGpu, HostMemoryIsRefused) {
  std::vector<float> host(64 * 64, 1.0f);
  void* device = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 2 * 64 * 64 * 4, &device));
  const llmk_tensor a = make_view(device, LLMK_DTYPE_F32, {64, 64});
  const llmk_tensor b = make_view(host.data(), LLMK_DTYPE_F32, {64, 64});
  const llmk_tensor d = make_view(static_cast<float*>(device) + 64 * 64, LLMK_DTYPE_F32, {64, 64});
  llmk_matmul_config config;
  llmk_matmul_config_init(&config);
  EXPECT_EQ(llmk_matmul(cuda_context(), &config, &a, &b, nullptr, nullptr, &d, nullptr),
            LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("matmul: b.data"), std::string::npos)
      << llmk_last_error_message();
  ASSERT_LLMK(llmk_free(cuda_context(), device));
}

}  // namespace matmul_gpu_test
