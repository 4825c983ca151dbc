// Scratch: does the order in which warps cover a buffer change the pure-read time? 32 warps/SM
// (4 blocks x 256 threads), 4 16-byte loads per thread in flight, one wave.
//  sweep: the whole grid sweeps front to back (bench_read_floor's kernel);
//  warp_runs: each warp reads one contiguous run (total / warps bytes), batch after batch;
//  block_runs: each block one contiguous run, its warps taking its 2 KB batches in turn.
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

template <int MODE>
__global__ void __launch_bounds__(256, 4)
    read_kernel(const uint4* data, int64_t n, unsigned* sink) {
  constexpr int U = 4;
  const int lane = threadIdx.x % 32, warp_in_block = threadIdx.x / 32;
  const int64_t warps = int64_t{gridDim.x} * 8;
  const int64_t warp = int64_t{blockIdx.x} * 8 + warp_in_block;
  const int64_t batches = n / (32 * U);  // 2 KB batches
  unsigned acc = 0;
  int64_t first, step, last;
  if (MODE == 0) {  // sweep
    first = warp, step = warps, last = batches;
  } else if (MODE == 1) {  // warp runs
    first = batches * warp / warps, last = batches * (warp + 1) / warps, step = 1;
  } else {  // block runs
    const int64_t b0 = batches * blockIdx.x / gridDim.x,
                  b1 = batches * (blockIdx.x + 1) / gridDim.x;
    first = b0 + warp_in_block, last = b1, step = 8;
  }
  for (int64_t b = first; b < last; b += step) {
    uint4 v[U];
    const uint4* p = data + b * 32 * U + lane;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                   : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                   : "l"(p + 32 * u));
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

template <class Launch>
float median_us(Launch launch) {
  const int reps = 60;
  std::vector<cudaEvent_t> ev(reps + 1);
  for (auto& e : ev) cudaEventCreate(&e);
  for (int i = 0; i < 5; ++i) launch(i);
  spin_kernel<<<1, 1>>>(20'000'000);
  cudaEventRecord(ev[0]);
  for (int i = 0; i < reps; ++i) {
    launch(i);
    cudaEventRecord(ev[i + 1]);
  }
  cudaEventSynchronize(ev[reps]);
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2] * 1000.f;
}

int main(int argc, char** argv) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  unsigned* sink;
  cudaMalloc(&sink, 4);
  for (int a = 1; a < argc; ++a) {
    const int64_t bytes = std::atoll(argv[a]) / 2048 * 2048;
    const int buffers = std::max<int64_t>(2, 2 * 64'000'000 / bytes + 2);
    std::vector<uint4*> d(buffers);
    for (auto& p : d) {
      cudaMalloc(&p, bytes);
      cudaMemset(p, 1, bytes);
    }
    const int64_t n = bytes / 16;
    const char* names[] = {"sweep", "warp_runs", "block_runs"};
    for (int round = 0; round < 2; ++round) {
      for (int mode = 0; mode < 3; ++mode) {
        auto f = [&](int i) {
          if (mode == 0) read_kernel<0><<<sms * 4, 256>>>(d[i % buffers], n, sink);
          if (mode == 1) read_kernel<1><<<sms * 4, 256>>>(d[i % buffers], n, sink);
          if (mode == 2) read_kernel<2><<<sms * 4, 256>>>(d[i % buffers], n, sink);
        };
        std::printf("%lld bytes %-10s %.2f us\n", (long long)bytes, names[mode], median_us(f));
      }
    }
    for (auto p : d) cudaFree(p);
  }
  printf("%s\n", cudaGetErrorString(cudaGetLastError()));
}
