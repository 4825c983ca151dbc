// Scratch (not committed): one row, forced GEMV, forced cuBLASLt and AUTO, per weight shape.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "llmk.h"

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)
#define LCHECK(x)                                                                                \
  do {                                                                                           \
    if ((x) != LLMK_SUCCESS) {                                                                   \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, llmk_last_error_message()); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

template <class T>
__global__ void fill(T* p, int64_t n, uint32_t seed, float scale) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = T(scale * ((h & 0xffff) / 32768.0f - 1.0f));
  }
}

template <class Launch>
float median_us(Launch launch, int batch) {
  const int reps = batch == 1 ? 40 : 12;
  std::vector<cudaEvent_t> ev(reps + 1);
  for (auto& e : ev) CHECK(cudaEventCreate(&e));
  for (int i = 0; i < 3; ++i) launch(i);
  spin_kernel<<<1, 1>>>(20'000'000);
  CHECK(cudaEventRecord(ev[0]));
  for (int i = 0; i < reps; ++i) {
    for (int j = 0; j < batch; ++j) launch(i * batch + j);
    CHECK(cudaEventRecord(ev[i + 1]));
  }
  CHECK(cudaEventSynchronize(ev[reps]));
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) CHECK(cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]));
  for (auto e : ev) cudaEventDestroy(e);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2] * 1000.f / batch;
}


llmk_tensor matrix(llmk_dtype dtype, void* data, int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  llmk_tensor t{};
  t.dtype = dtype;
  t.ndim = 2;
  t.data = data;
  t.shape[0] = rows, t.shape[1] = cols, t.strides[0] = s0, t.strides[1] = s1;
  return t;
}

template <class T>
void sweep(llmk_context* ctx, llmk_dtype dtype, const char* name) {
  const int64_t shapes[][2] = {{4096, 11008}, {11008, 4096}, {5120, 5120}, {5120, 13824},
                               {13824, 5120}, {8192, 28672}, {28672, 8192}, {3072, 8192},
                               {2560, 10240}, {1024, 4096}, {768, 3072},   {1536, 6144},
                               {3584, 18944}, {18944, 3584}, {2304, 9216}, {9216, 2304},
                               {2048, 8192}, {8192, 2048}, {2176, 8192}, {512, 2048},
                               {64, 4096}};
  for (auto& shape : shapes) {
    const int64_t k = shape[0], n = shape[1];
    const int64_t bytes = k * n * int64_t{sizeof(T)};
    const int sets = static_cast<int>(std::max<int64_t>(2, 2 * 64'000'000 / bytes + 2));
    std::vector<T*> w(sets);
    for (auto& p : w) {
      CHECK(cudaMalloc(&p, bytes));
      fill<<<1024, 256>>>(p, k * n, 7, 0.05f);
    }
    T *x, *y;
    CHECK(cudaMalloc(&x, k * sizeof(T)));
    CHECK(cudaMalloc(&y, n * sizeof(T)));
    fill<<<256, 256>>>(x, k, 9, 1.0f);
    const llmk_tensor xa = matrix(dtype, x, 1, k, k, 1), yd = matrix(dtype, y, 1, n, n, 1);
    float t[3];
    int32_t chosen = -1;
    for (int path : {LLMK_MATMUL_PATH_GEMV, LLMK_MATMUL_PATH_CUBLASLT, LLMK_MATMUL_PATH_AUTO}) {
      llmk_matmul_config cfg;
      llmk_matmul_config_init(&cfg);
      cfg.path = path;
      auto f = [&](int i) {
        const llmk_tensor wv = matrix(dtype, w[i % sets], k, n, 1, k);
        LCHECK(llmk_matmul(ctx, &cfg, &xa, &wv, nullptr, nullptr, &yd, nullptr));
      };
      t[path == LLMK_MATMUL_PATH_GEMV ? 0 : path == LLMK_MATMUL_PATH_CUBLASLT ? 1 : 2] =
          median_us(f, 1);
      if (path == LLMK_MATMUL_PATH_AUTO) {
        const llmk_tensor wv = matrix(dtype, w[0], k, n, 1, k);
        LCHECK(llmk_matmul_path_for(ctx, &cfg, &xa, &wv, nullptr, nullptr, &yd, &chosen));
      }
    }
    std::printf("| %s | 1 x %lld x %lld | %.2f | %.2f | %.3f | %s | %.2f |\n", name, (long long)k,
                (long long)n, t[0], t[1], t[1] / t[0],
                chosen == LLMK_MATMUL_PATH_GEMV ? "gemv" : "cublaslt", t[2]);
    std::fflush(stdout);
    for (auto p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
  }
}

// RunWarp's forced splits (SCRATCH_RUN_SPLIT) and the rule, against cuBLASLt, at the shapes it
// takes.
template <class T>
void splits(llmk_context* ctx, llmk_dtype dtype, const char* name) {
  const int64_t shapes[][2] = {{5120, 5120}, {5120, 13824}, {13824, 5120}, {3072, 8192},
                               {2560, 10240}, {1024, 4096}, {768, 3072},  {1536, 6144},
                               {3584, 18944}, {2304, 9216},  {9216, 2304}, {4096, 1024}};
  for (auto& shape : shapes) {
    const int64_t k = shape[0], n = shape[1];
    const int64_t bytes = k * n * int64_t{sizeof(T)};
    const int sets = static_cast<int>(std::max<int64_t>(2, 2 * 64'000'000 / bytes + 2));
    std::vector<T*> w(sets);
    for (auto& p : w) {
      CHECK(cudaMalloc(&p, bytes));
      fill<<<1024, 256>>>(p, k * n, 7, 0.05f);
    }
    T *x, *y;
    CHECK(cudaMalloc(&x, k * sizeof(T)));
    CHECK(cudaMalloc(&y, n * sizeof(T)));
    fill<<<256, 256>>>(x, k, 9, 1.0f);
    const llmk_tensor xa = matrix(dtype, x, 1, k, k, 1), yd = matrix(dtype, y, 1, n, n, 1);
    auto time_path = [&](int path) {
      llmk_matmul_config cfg;
      llmk_matmul_config_init(&cfg);
      cfg.path = path;
      auto f = [&](int i) {
        const llmk_tensor wv = matrix(dtype, w[i % sets], k, n, 1, k);
        LCHECK(llmk_matmul(ctx, &cfg, &xa, &wv, nullptr, nullptr, &yd, nullptr));
      };
      return median_us(f, 1);
    };
    std::printf("| %s | 1 x %lld x %lld | rule %.2f |", name, (long long)k, (long long)n,
                time_path(LLMK_MATMUL_PATH_GEMV));
    for (const char* split : {"1", "2", "4", "8"}) {
      setenv("SCRATCH_RUN_SPLIT", split, 1);
      std::printf(" %s: %.2f |", split, time_path(LLMK_MATMUL_PATH_GEMV));
      unsetenv("SCRATCH_RUN_SPLIT");
    }
    std::printf(" cublaslt %.2f |\n", time_path(LLMK_MATMUL_PATH_CUBLASLT));
    std::fflush(stdout);
    for (auto p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
  }
}

// gated_mlp at one token: AUTO (the fused gate/up GEMV where it takes it) against every GEMM on
// cuBLASLt.
template <class T>
void gated(llmk_context* ctx, llmk_dtype dtype, const char* name) {
  const int64_t layers[][2] = {{4096, 11008}, {5120, 13824}, {8192, 28672}};
  for (auto& layer : layers) {
    const int64_t dm = layer[0], ff = layer[1];
    const int64_t bytes = 3 * dm * ff * int64_t{sizeof(T)};
    const int sets = static_cast<int>(std::max<int64_t>(2, 2 * 64'000'000 / bytes + 2));
    std::vector<T*> w(sets);
    for (auto& p : w) {
      CHECK(cudaMalloc(&p, bytes));
      fill<<<1024, 256>>>(p, 3 * dm * ff, 7, 0.05f);
    }
    T *x, *y;
    void* ws;
    CHECK(cudaMalloc(&x, dm * sizeof(T)));
    CHECK(cudaMalloc(&y, dm * sizeof(T)));
    CHECK(cudaMalloc(&ws, 64 << 20));
    fill<<<256, 256>>>(x, dm, 9, 1.0f);
    const llmk_tensor xa = matrix(dtype, x, 1, dm, dm, 1), yd = matrix(dtype, y, 1, dm, dm, 1);
    float t[2];
    for (int path : {LLMK_MATMUL_PATH_AUTO, LLMK_MATMUL_PATH_CUBLASLT}) {
      auto f = [&](int i) {
        llmk_mlp_config cfg;
        llmk_mlp_config_init(&cfg);
        cfg.path = path;
        T* base = w[i % sets];
        const llmk_tensor wg = matrix(dtype, base, ff, dm, dm, 1);
        const llmk_tensor wu = matrix(dtype, base + ff * dm, ff, dm, dm, 1);
        const llmk_tensor wd = matrix(dtype, base + 2 * ff * dm, dm, ff, ff, 1);
        LCHECK(llmk_gated_mlp(ctx, &cfg, &xa, &wg, &wu, &wd, LLMK_ACTIVATION_SILU, ws, 64 << 20,
                              &yd, nullptr));
      };
      t[path == LLMK_MATMUL_PATH_AUTO ? 0 : 1] = median_us(f, 1);
    }
    std::printf("| %s | gated_mlp 1 token, %lld / %lld | auto %.2f | cublaslt %.2f | %.3f |\n",
                name, (long long)dm, (long long)ff, t[0], t[1], t[1] / t[0]);
    std::fflush(stdout);
    for (auto p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
    cudaFree(ws);
  }
}

int main(int argc, char** argv) {
  const bool splits_only = argc > 1 && std::string(argv[1]) == "splits";
  const bool f16_only = argc > 1 && std::string(argv[1]) == "f16";
  llmk_context* ctx = nullptr;
  LCHECK(llmk_context_create(LLMK_BACKEND_CUDA, 0, &ctx));
  if (splits_only) {
    splits<__half>(ctx, LLMK_DTYPE_F16, "f16 ");
    llmk_context_destroy(ctx);
    return 0;
  }
  sweep<__half>(ctx, LLMK_DTYPE_F16, "f16 ");
  if (f16_only) {
    llmk_context_destroy(ctx);
    return 0;
  }
  sweep<__nv_bfloat16>(ctx, LLMK_DTYPE_BF16, "bf16");
  gated<__half>(ctx, LLMK_DTYPE_F16, "f16 ");
  gated<__nv_bfloat16>(ctx, LLMK_DTYPE_BF16, "bf16");
  llmk_context_destroy(ctx);
  return 0;
}
