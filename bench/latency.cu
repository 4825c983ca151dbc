// Host-side cost of one small llmk call, against an empty kernel launch, timed from C++ with the
// host clock (what an inference engine's decode loop pays per call).
//
// Two loops per subject, each repeated and reported as the median:
//   back-to-back: N calls then one synchronize; time / N (throughput of issuing calls)
//   round trip:   call + synchronize, N times; time / N (latency of one call)
// The subjects: an empty kernel, and llmk_rms_norm / llmk_add_rms_norm / llmk_layer_norm over one
// row of 4096 bf16 (the acceptance bound is llmk <= empty launch + 2 us in both loops); and a
// small bf16 GEMM (64 x 64 x 64) through llmk_matmul on cuBLASLt against cublasLtMatmul called
// directly with its descriptors and algorithm prepared once: what llmk's checks, plan lookup and
// stack-built descriptors add per call.
//
// A round times every subject once, and the rounds repeat: a GPU that idles between tiny kernels
// changes clocks, and a round trip drifts by up to 1 us from one repeat to the next, so each
// subject's cost over its reference (the empty kernel; direct cuBLASLt for llmk_matmul) is the
// median of the differences within a round, where the drift falls on both alike.
//
// Output: one line per subject and loop, "latency <subject> <loop> <microseconds>", and for a
// subject with a reference, "latency <subject> <loop>_over_<reference> <microseconds>".
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "llmk.h"

namespace {

__global__ void empty_kernel() {}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "latency: %s failed: %s\n", what, llmk_last_error_message());
    std::exit(1);
  }
}

struct Subject {
  const char* name;
  std::function<void()> once;
  int reference;  // index of the subject it is measured against, or -1
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Microseconds per call of each subject in each round: samples[subject][round].
std::vector<std::vector<double>> time_rounds(const std::vector<Subject>& subjects, bool sync_each,
                                             cudaStream_t stream) {
  constexpr int kCalls = 2000, kRounds = 15, kWarmup = 2;
  std::vector<std::vector<double>> samples(subjects.size());
  for (int r = 0; r < kWarmup + kRounds; ++r) {
    for (size_t s = 0; s < subjects.size(); ++s) {
      cudaStreamSynchronize(stream);
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kCalls; ++i) {
        subjects[s].once();
        if (sync_each) cudaStreamSynchronize(stream);
      }
      cudaStreamSynchronize(stream);
      const auto stop = std::chrono::steady_clock::now();
      if (r >= kWarmup) {
        samples[s].push_back(std::chrono::duration<double, std::micro>(stop - start).count() /
                             kCalls);
      }
    }
  }
  return samples;
}

void report(const std::vector<Subject>& subjects, const char* loop, bool sync_each,
            cudaStream_t stream) {
  const auto samples = time_rounds(subjects, sync_each, stream);
  for (size_t s = 0; s < subjects.size(); ++s) {
    std::printf("latency %s %s %.3f\n", subjects[s].name, loop, median(samples[s]));
    const int ref = subjects[s].reference;
    if (ref < 0) continue;
    std::vector<double> over(samples[s].size());
    for (size_t r = 0; r < over.size(); ++r) over[r] = samples[s][r] - samples[ref][r];
    std::printf("latency %s %s_over_%s %.3f\n", subjects[s].name, loop, subjects[ref].name,
                median(over));
  }
}

}  // namespace

int main() {
  int32_t devices = 0;
  if (llmk_cuda_device_count(&devices) != LLMK_SUCCESS || devices == 0) {
    std::printf("latency: no CUDA device\n");
    return 77;
  }
  llmk_context* ctx = nullptr;
  check(llmk_context_create(LLMK_BACKEND_CUDA, 0, &ctx) == LLMK_SUCCESS, "context");
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);

  constexpr int64_t kHidden = 4096;
  void *x = nullptr, *residual = nullptr, *y = nullptr, *w = nullptr;
  for (void** p : {&x, &residual, &y, &w}) {
    check(llmk_malloc(ctx, kHidden * 2, p) == LLMK_SUCCESS, "malloc");
    cudaMemset(*p, 0x3c, kHidden * 2);  // 0x3c3c: bf16 ~0.0115, finite and non-zero
  }
  auto row = [](void* data, int64_t n) {
    llmk_tensor t{};
    t.data = data;
    t.dtype = LLMK_DTYPE_BF16;
    t.ndim = 2;
    t.shape[0] = 1;
    t.shape[1] = n;
    t.strides[0] = n;
    t.strides[1] = 1;
    return t;
  };
  const llmk_tensor tx = row(x, kHidden), tr = row(residual, kHidden), ty = row(y, kHidden);
  llmk_tensor tw = row(w, kHidden);
  tw.ndim = 1;
  tw.shape[0] = kHidden;
  tw.strides[0] = 1;

  // The GEMM: D [64, 64] = A [64, 64] W^T, W [64, 64] row-major; cuBLASLt computes D^T = W A^T.
  constexpr int64_t kGemm = 64;
  void *ga = nullptr, *gw = nullptr, *gd = nullptr;
  for (void** p : {&ga, &gw, &gd}) {
    check(llmk_malloc(ctx, kGemm * kGemm * 2, p) == LLMK_SUCCESS, "malloc");
    cudaMemset(*p, 0x3c, kGemm * kGemm * 2);
  }
  const llmk_tensor gemm_a = row(ga, kGemm * kGemm), gemm_d = row(gd, kGemm * kGemm);
  llmk_tensor gemm_a2 = gemm_a, gemm_b = gemm_a, gemm_d2 = gemm_d;
  gemm_a2.shape[0] = gemm_d2.shape[0] = kGemm;
  gemm_a2.shape[1] = gemm_d2.shape[1] = kGemm;
  gemm_a2.strides[0] = gemm_d2.strides[0] = kGemm;
  gemm_b.data = gw;
  gemm_b.shape[0] = gemm_b.shape[1] = kGemm;
  gemm_b.strides[0] = 1;
  gemm_b.strides[1] = kGemm;
  llmk_matmul_config gemm_config;
  llmk_matmul_config_init(&gemm_config);
  gemm_config.path = LLMK_MATMUL_PATH_CUBLASLT;

  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layout = nullptr;  // every operand is 64 x 64 column-major, ld 64
  cublasLtMatmulPreference_t preference = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  void* lt_workspace = nullptr;
  const size_t lt_workspace_bytes = size_t{32} << 20;
  const cublasOperation_t transpose = CUBLAS_OP_T;
  check(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                           sizeof transpose) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&layout, CUDA_R_16BF, kGemm, kGemm, kGemm) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceCreate(&preference) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulPreferenceSetAttribute(
                preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt_workspace_bytes,
                sizeof lt_workspace_bytes) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoGetHeuristic(lt, desc, layout, layout, layout, layout, preference, 1,
                                           &heuristic, &found) == CUBLAS_STATUS_SUCCESS &&
            found == 1 && cudaMalloc(&lt_workspace, lt_workspace_bytes) == cudaSuccess,
        "cuBLASLt setup");
  const float one = 1.0f, zero = 0.0f;

  const std::vector<Subject> subjects = {
      {"empty_kernel", [&] { empty_kernel<<<1, 1, 0, stream>>>(); }, -1},
      {"rms_norm_1x4096_bf16",
       [&] { check(llmk_rms_norm(ctx, &tx, &tw, 1e-6f, &ty, stream) == LLMK_SUCCESS, "rms_norm"); },
       0},
      {"add_rms_norm_1x4096_bf16",
       [&] {
         check(llmk_add_rms_norm(ctx, &tx, &tr, &tw, 1e-6f, &ty, stream) == LLMK_SUCCESS,
               "add_rms_norm");
       },
       0},
      {"layer_norm_1x4096_bf16",
       [&] {
         check(llmk_layer_norm(ctx, &tx, &tw, nullptr, 1e-5f, &ty, stream) == LLMK_SUCCESS,
               "layer_norm");
       },
       0},
      {"cublaslt_direct_gemm_64_bf16",
       [&] {
         check(cublasLtMatmul(lt, desc, &one, gw, layout, ga, layout, &zero, gd, layout, gd, layout,
                              &heuristic.algo, lt_workspace, lt_workspace_bytes,
                              stream) == CUBLAS_STATUS_SUCCESS,
               "cublasLtMatmul");
       },
       -1},
      {"llmk_matmul_gemm_64_bf16",
       [&] {
         check(llmk_matmul(ctx, &gemm_config, &gemm_a2, &gemm_b, nullptr, nullptr, &gemm_d2,
                           stream) == LLMK_SUCCESS,
               "matmul");
       },
       4},
  };
  report(subjects, "back_to_back", false, stream);
  report(subjects, "round_trip", true, stream);
  check(llmk_synchronize(ctx, stream) == LLMK_SUCCESS, "synchronize");
  for (void* p : {x, residual, y, w, ga, gw, gd}) {
    check(llmk_free(ctx, p) == LLMK_SUCCESS, "free");
  }
  cudaFree(lt_workspace);
  cublasLtMatmulPreferenceDestroy(preference);
  cublasLtMatrixLayoutDestroy(layout);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(lt);
  cudaStreamDestroy(stream);
  llmk_context_destroy(ctx);
  return 0;
}
