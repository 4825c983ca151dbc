// bench_read_floor: the fastest pure read of a buffer of a given size on this GPU, the ceiling of
// a kernel that must stream a weight once (the decode GEMV). A 1 GiB copy hides the DRAM
// pipeline's fill and drain; a read of tens of MB does not, so its floor is well under the
// copy's bandwidth (90 MB on the H200: ~24 us, 3.75 TB/s, against 4.25 TB/s for the copy).
//
// The kernel is the plainest stream: every warp reads 512 contiguous bytes per load, U loads in
// flight per thread, the grid sweeping the buffer front to back; the grid shape and U are swept
// (a sweep of 105 shapes on the H200 put all of the best within 2% of one another) and the
// fastest is reported. Timing as the Python benchmarks: median of CUDA-event timings after
// warm-up and behind a spin kernel, over buffers rotating through more than L2.
//
// What the floor is made of: every time here, as every CUDA-event time in bench/, includes a fixed
// cost that no kernel avoids (the launch and the events), so the tool also times an empty kernel
// the same way. Reads of two sizes then split the floor into that fixed part and the streaming
// rate: on the H200 the 90 MB read's ~24 us is ~4.4 us fixed (an empty kernel alone: ~3.5 us)
// plus ~19.7 us streaming at ~4.58 TB/s (bench/NOTES.md, issue 4, seventh pass). The fastest
// shape, and the empty kernel, are also timed back to back: kBackToBack launches between two
// events, as a CUDA graph or a decode loop runs kernels, with no event pair around each.
//
// Usage: bench_read_floor BYTES [BYTES...]   prints two lines per size, "BYTES bytes: US us, GB/s
// (shape)" and "BYTES bytes back-to-back: US us"; then "empty kernel: US us" and "empty kernel
// back-to-back: US us".
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "bench_read_floor: %s: %s\n", what, cudaGetErrorString(error));
    std::exit(1);
  }
}

__global__ void empty_kernel() {}

// Keeps the GPU busy while the host queues the timed launches, as bench/common.py's sleep does,
// so that the events time the kernels and not the host's launch rate.
__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// Reads n 16-byte words once; the xor keeps the loads alive and never matches.
template <int U>
__global__ void read_stream(const uint4* data, int64_t n, unsigned* sink) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * blockDim.x / 32;
  const int64_t warp = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  unsigned acc = 0;
  int64_t i = warp * 32 * U + lane;
  for (; i + 32 * (U - 1) < n; i += warps * 32 * U) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                   : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                   : "l"(data + i + 32 * u));
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n; i += 32) acc ^= data[i].x;
  if (acc == 0x9e3779b9u) *sink = acc;
}

// Launches per timing in the back-to-back mode; bench/common.py's back_to_back_us uses as many.
constexpr int kBackToBack = 16;

// The median time of one launch, in microseconds: each timing spans `batch` launches between two
// events (1: the launch alone, as bench/common.py's median_us times), divided by batch.
template <class Launch>
float median_us(Launch launch, int batch = 1) {
  constexpr int kWarmup = 5;
  // 80 timings alone, 20 back to back: few enough launches that the spin's backlog covers the
  // host queueing them all.
  const int reps = batch == 1 ? 80 : 20;
  std::vector<cudaEvent_t> events(reps + 1);
  for (auto& event : events) check(cudaEventCreate(&event), "cudaEventCreate");
  for (int i = 0; i < kWarmup; ++i) launch(i);
  spin_kernel<<<1, 1>>>(20'000'000);  // ~10 ms at the H200's clock
  check(cudaEventRecord(events[0]), "cudaEventRecord");
  for (int i = 0; i < reps; ++i) {
    for (int j = 0; j < batch; ++j) launch(i * batch + j);
    check(cudaEventRecord(events[i + 1]), "cudaEventRecord");
  }
  check(cudaEventSynchronize(events[reps]), "cudaEventSynchronize");
  check(cudaGetLastError(), "read_stream");
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) {
    check(cudaEventElapsedTime(&ms[i], events[i], events[i + 1]), "cudaEventElapsedTime");
  }
  for (auto event : events) cudaEventDestroy(event);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2] * 1000.0f / batch;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BYTES [BYTES...]\n", argv[0]);
    return 2;
  }
  int sms = 0, l2 = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "SM count");
  check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0), "L2 size");
  unsigned* sink = nullptr;
  check(cudaMalloc(&sink, sizeof *sink), "cudaMalloc");
  for (int arg = 1; arg < argc; ++arg) {
    const int64_t bytes = std::atoll(argv[arg]) / 16 * 16;
    if (bytes <= 0) {
      std::fprintf(stderr, "bench_read_floor: %s is not a size in bytes\n", argv[arg]);
      return 2;
    }
    // Enough buffers that each read finds its buffer out of L2.
    const int buffers = static_cast<int>(std::max<int64_t>(2, 2 * l2 / bytes + 2));
    std::vector<uint4*> data(buffers);
    for (auto& d : data) {
      check(cudaMalloc(&d, bytes), "cudaMalloc");
      check(cudaMemset(d, 1, bytes), "cudaMemset");
    }
    struct Shape {
      int blocks_per_sm, threads, loads;
    };
    const Shape shapes[] = {{4, 256, 4}, {1, 1024, 4}, {3, 256, 8}, {4, 256, 8}, {1, 1024, 8},
                            {8, 256, 4}, {2, 1024, 4}, {8, 256, 8}, {2, 1024, 8}, {2, 256, 8}};
    auto read = [&](const Shape& s) {
      return [&, s](int i) {
        const uint4* d = data[i % buffers];
        const int64_t n = bytes / 16;
        if (s.loads == 4) {
          read_stream<4><<<sms * s.blocks_per_sm, s.threads>>>(d, n, sink);
        } else {
          read_stream<8><<<sms * s.blocks_per_sm, s.threads>>>(d, n, sink);
        }
      };
    };
    float best = 1e30f;
    Shape best_shape{};
    for (const Shape& s : shapes) {
      const float us = median_us(read(s));
      std::printf("  %lld bytes, %d warps/SM x %d loads (%d KB/SM in flight): %.2f us\n",
                  static_cast<long long>(bytes), s.blocks_per_sm * s.threads / 32, s.loads,
                  s.blocks_per_sm * s.threads * s.loads * 16 / 1024, us);
      if (us < best) best = us, best_shape = s;
    }
    std::printf("%lld bytes: %.2f us, %.0f GB/s (%d blocks/SM x %d threads, %d loads each)\n",
                static_cast<long long>(bytes), best, bytes / best / 1e3, best_shape.blocks_per_sm,
                best_shape.threads, best_shape.loads);
    std::printf("%lld bytes back-to-back: %.2f us\n", static_cast<long long>(bytes),
                median_us(read(best_shape), kBackToBack));
    for (auto d : data) cudaFree(d);
  }
  const auto empty = [](int) { empty_kernel<<<1, 32>>>(); };
  std::printf("empty kernel: %.2f us\n", median_us(empty));
  std::printf("empty kernel back-to-back: %.2f us\n", median_us(empty, kBackToBack));
  return 0;
}
