// Helpers for the GPU tests (tests/test_gpu.cu and tests/ops/*_gpu_test.cu): one CUDA and one CPU
// context per process, host tensors with their backing buffers, device copies of them, and the
// comparison of a GPU result with the CPU backend's.
//
// The pattern every op's GPU test follows: build HostTensors (random inputs, NaN-poisoned
// outputs, gaps and offsets in the buffers), run the op on the CPU context over copies of the
// host buffers and on the CUDA context over DeviceCopy's, then expect_close() each output.
#pragma once

#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/testing.hpp"

namespace llmk_test {

#define ASSERT_LLMK(call) ASSERT_EQ((call), LLMK_SUCCESS) << llmk_last_error_message()
#define ASSERT_CUDA(call) ASSERT_EQ((call), cudaSuccess)

// Makes `call` on `stream` while the stream is captured (global mode), for calls that must refuse a
// capture: the call fails with LLMK_ERROR_UNSUPPORTED and a message that starts with "op: " and
// says "captured", before it touches the stream, so the capture ends valid and empty.
inline void expect_refused_while_capturing(const char* op, cudaStream_t stream,
                                           const std::function<llmk_status()>& call) {
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const llmk_status status = call();
  const std::string message = llmk_last_error_message();
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  EXPECT_EQ(status, LLMK_ERROR_UNSUPPORTED) << message;
  EXPECT_EQ(message.rfind(std::string(op) + ": ", 0), 0u) << message;
  EXPECT_NE(message.find("captured"), std::string::npos) << message;
  size_t nodes = 99;
  ASSERT_CUDA(cudaGraphGetNodes(graph, nullptr, &nodes));
  EXPECT_EQ(nodes, 0u) << "the refused call left work in the capture";
  ASSERT_CUDA(cudaGraphDestroy(graph));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

inline llmk_context* cuda_context() {
  static llmk_context* ctx = [] {
    llmk_context* c = nullptr;
    if (llmk_context_create(LLMK_BACKEND_CUDA, 0, &c) != LLMK_SUCCESS) {
      ADD_FAILURE() << "CUDA context: " << llmk_last_error_message();
    }
    return c;
  }();
  return ctx;
}

inline llmk_context* cpu_context() {
  static llmk_context* ctx = [] {
    llmk_context* c = nullptr;
    if (llmk_context_create(LLMK_BACKEND_CPU, 0, &c) != LLMK_SUCCESS)
      ADD_FAILURE() << "CPU context";
    return c;
  }();
  return ctx;
}

// Tolerance by dtype: tests/vectors/README.md explains the rule.
inline double rtol_of(int32_t dtype) {
  return dtype == LLMK_DTYPE_F32 ? 1e-5 : dtype == LLMK_DTYPE_F16 ? 0x1p-10 : 0x1p-7;
}
inline double atol_of(int32_t dtype) { return dtype == LLMK_DTYPE_F32 ? 1e-6 : 1e-5; }

// A tensor's backing buffer on the host, and the view into it (data filled in per context).
struct HostTensor {
  std::vector<uint8_t> bytes;
  llmk_tensor view;
  int64_t offset = 0;  // elements from the buffer start to the view's first element
};

// A device copy of a HostTensor's buffer, freed on scope exit.
struct DeviceCopy {
  void* ptr = nullptr;
  explicit DeviceCopy(const HostTensor& h) {
    EXPECT_EQ(llmk_malloc(cuda_context(), h.bytes.size(), &ptr), LLMK_SUCCESS);
    EXPECT_EQ(llmk_memcpy(cuda_context(), ptr, h.bytes.data(), h.bytes.size(), nullptr),
              LLMK_SUCCESS);
    EXPECT_EQ(llmk_synchronize(cuda_context(), nullptr), LLMK_SUCCESS);
  }
  ~DeviceCopy() { EXPECT_EQ(llmk_free(cuda_context(), ptr), LLMK_SUCCESS); }
  DeviceCopy(const DeviceCopy&) = delete;
  std::vector<uint8_t> read(size_t size) const {
    std::vector<uint8_t> out(size);
    EXPECT_EQ(llmk_memcpy(cuda_context(), out.data(), ptr, size, nullptr), LLMK_SUCCESS);
    EXPECT_EQ(llmk_synchronize(cuda_context(), nullptr), LLMK_SUCCESS);
    return out;
  }
};

inline HostTensor make_tensor(int32_t dtype, const std::vector<int64_t>& shape,
                              const std::vector<int64_t>& strides, int64_t offset,
                              std::mt19937_64& rng, double mean, double scale, bool poison) {
  HostTensor h;
  h.view = make_view(nullptr, dtype, shape, strides);
  h.offset = offset;
  const size_t elements = buffer_elements(h.view) + static_cast<size_t>(offset);
  h.bytes = poison ? nan_buffer(dtype, elements) : random_buffer(dtype, elements, rng, mean, scale);
  return h;
}

inline llmk_tensor view_at(const HostTensor& h, void* base) {
  llmk_tensor v = h.view;
  v.data = static_cast<uint8_t*>(base) + h.offset * element_bytes(h.view.dtype);
  return v;
}

// Compares the buffers a GPU run produced with the CPU run's: view elements within tolerance,
// gap elements bit-identical (both started from the same bytes). The tolerance defaults to the
// vectors' rule for the dtype.
inline void expect_close(const std::string& what, const HostTensor& h,
                         const std::vector<uint8_t>& gpu, const std::vector<uint8_t>& cpu,
                         double rtol, double atol) {
  const size_t element = element_bytes(h.view.dtype);
  std::vector<bool> in_view(gpu.size() / element, false);
  const int64_t count = numel(h.view);
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < count; ++i) {
    int64_t offset = h.offset, rest = i;
    for (int d = h.view.ndim - 1; d >= 0; --d) {
      offset += rest % h.view.shape[d] * h.view.strides[d];
      rest /= h.view.shape[d];
    }
    in_view[offset] = true;
    const double g = element_to_double(h.view.dtype, gpu.data() + offset * element);
    const double c = element_to_double(h.view.dtype, cpu.data() + offset * element);
    if (!(std::isfinite(g) && std::fabs(g - c) <= atol + rtol * std::fabs(c))) {
      if (bad++ == 0)
        first =
            "[" + std::to_string(i) + "] gpu " + std::to_string(g) + " cpu " + std::to_string(c);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << count << " elements off, first " << first;
  for (size_t e = 0; e < in_view.size(); ++e) {
    if (!in_view[e]) {
      ASSERT_EQ(std::memcmp(gpu.data() + e * element, cpu.data() + e * element, element), 0)
          << what << ": gap element " << e << " written";
    }
  }
}

inline void expect_close(const std::string& what, const HostTensor& h,
                         const std::vector<uint8_t>& gpu, const std::vector<uint8_t>& cpu) {
  expect_close(what, h, gpu, cpu, rtol_of(h.view.dtype), atol_of(h.view.dtype));
}

// --- matmul and the MLP blocks: the tolerance rule of tests/vectors/README.md ------------------

// Half an ulp of the dtype, relative: the error of one rounding to it.
inline double unit_roundoff(int32_t dtype) {
  return dtype == LLMK_DTYPE_F32 ? 0x1p-24 : dtype == LLMK_DTYPE_F16 ? 0x1p-11 : 0x1p-8;
}

// max |a'(x)|: how much an activation can grow an error of its input.
inline double activation_slope(llmk_activation a) {
  return a == LLMK_ACTIVATION_GELU || a == LLMK_ACTIVATION_GELU_TANH ? 1.13
         : a == LLMK_ACTIVATION_SILU                                 ? 1.1
                                                                     : 1.0;
}

// Whether a CUDA engine may apply `a` to a pre-activation already rounded to the dtype
// (cuBLASLt has no GELU or SiLU epilogue: GEMM + bias is written, one more pass applies a).
inline bool rounds_pre_activation(llmk_activation a) {
  return a == LLMK_ACTIVATION_GELU || a == LLMK_ACTIVATION_GELU_TANH || a == LLMK_ACTIVATION_SILU;
}

// a(x) in double, for error bounds.
inline double host_activate(llmk_activation a, double x) {
  switch (a) {
    case LLMK_ACTIVATION_IDENTITY: return x;
    case LLMK_ACTIVATION_GELU: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case LLMK_ACTIVATION_GELU_TANH:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case LLMK_ACTIVATION_SILU: return x / (1.0 + std::exp(-x));
    case LLMK_ACTIVATION_RELU: return x > 0 ? x : 0.0;
  }
  return x;
}

// What f32 accumulation of k products (plus alpha, beta C and bias) may add to a sum whose terms'
// magnitudes add up to `magnitude`, `products` of it being sum |a b|; TF32 rounds (or truncates)
// each input to 10 mantissa bits, up to 2^-9 of each product.
inline double accumulation_bound(int64_t k, double magnitude, double products, bool tf32) {
  return static_cast<double>(k + 2) * 0x1p-24 * magnitude + (tf32 ? 0x1p-9 * products : 0.0);
}

// A rank-2 view's elements as doubles, row-major [rows][cols].
inline std::vector<double> read_matrix(const HostTensor& h) {
  const llmk_tensor& v = h.view;
  const size_t element = element_bytes(v.dtype);
  std::vector<double> out(static_cast<size_t>(v.shape[0] * v.shape[1]));
  for (int64_t i = 0; i < v.shape[0]; ++i) {
    for (int64_t j = 0; j < v.shape[1]; ++j) {
      const int64_t e = h.offset + i * v.strides[0] + j * v.strides[1];
      out[i * v.shape[1] + j] = element_to_double(v.dtype, h.bytes.data() + e * element);
    }
  }
  return out;
}

}  // namespace llmk_test
