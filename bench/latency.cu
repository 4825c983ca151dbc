// Host-side cost of one small llmk call, against an empty kernel launch, timed from C++ with the
// host clock (what an inference engine's decode loop pays per call).
//
// Two loops per subject, each repeated and reported as the median:
//   back-to-back: N calls then one synchronize; time / N (throughput of issuing calls)
//   round trip:   call + synchronize, N times; time / N (latency of one call)
// The subjects: an empty kernel, and llmk_rms_norm / llmk_add_rms_norm / llmk_layer_norm over one
// row of 4096 bf16. The acceptance bound is llmk <= empty launch + 2 us in both loops.
//
// Output: one line per subject and loop, "latency <subject> <loop> <microseconds>".
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

double median_us(const std::function<void()>& once, bool sync_each, cudaStream_t stream) {
  constexpr int kCalls = 2000, kRepeats = 15;
  std::vector<double> samples;
  for (int r = 0; r < kRepeats + 2; ++r) {  // the first two are warm-up
    cudaStreamSynchronize(stream);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kCalls; ++i) {
      once();
      if (sync_each) cudaStreamSynchronize(stream);
    }
    cudaStreamSynchronize(stream);
    const auto stop = std::chrono::steady_clock::now();
    if (r >= 2)
      samples.push_back(std::chrono::duration<double, std::micro>(stop - start).count() / kCalls);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
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

  struct Subject {
    const char* name;
    std::function<void()> once;
  };
  const std::vector<Subject> subjects = {
      {"empty_kernel", [&] { empty_kernel<<<1, 1, 0, stream>>>(); }},
      {"rms_norm_1x4096_bf16",
       [&] {
         check(llmk_rms_norm(ctx, &tx, &tw, 1e-6f, &ty, stream) == LLMK_SUCCESS, "rms_norm");
       }},
      {"add_rms_norm_1x4096_bf16",
       [&] {
         check(llmk_add_rms_norm(ctx, &tx, &tr, &tw, 1e-6f, &ty, stream) == LLMK_SUCCESS,
               "add_rms_norm");
       }},
      {"layer_norm_1x4096_bf16",
       [&] {
         check(llmk_layer_norm(ctx, &tx, &tw, nullptr, 1e-5f, &ty, stream) == LLMK_SUCCESS,
               "layer_norm");
       }},
  };
  for (const Subject& s : subjects) {
    std::printf("latency %s back_to_back %.3f\n", s.name, median_us(s.once, false, stream));
    std::printf("latency %s round_trip %.3f\n", s.name, median_us(s.once, true, stream));
  }
  check(llmk_synchronize(ctx, stream) == LLMK_SUCCESS, "synchronize");
  for (void* p : {x, residual, y, w}) check(llmk_free(ctx, p) == LLMK_SUCCESS, "free");
  cudaStreamDestroy(stream);
  llmk_context_destroy(ctx);
  return 0;
}
