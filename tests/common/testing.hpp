// Small helpers shared by the C++ tests: views over host buffers, dtype conversions, NaN poison.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/numeric.hpp"
#include "llmk.h"

namespace llmk_test {

inline int64_t numel(const llmk_tensor& t) {
  int64_t n = 1;
  for (int d = 0; d < t.ndim; ++d) n *= t.shape[d];
  return n;
}

// Elements of the backing buffer a view needs: 1 + the furthest offset (0 when empty).
inline size_t buffer_elements(const llmk_tensor& t) {
  if (numel(t) == 0) return 0;
  int64_t furthest = 0;
  for (int d = 0; d < t.ndim; ++d) furthest += (t.shape[d] - 1) * t.strides[d];
  return static_cast<size_t>(furthest + 1);
}

inline size_t element_bytes(int32_t dtype) {
  return static_cast<size_t>(llmk_dtype_bits(static_cast<llmk_dtype>(dtype)) / 8);
}

inline int32_t dtype_from_name(const std::string& name) {
  if (name == "f32") return LLMK_DTYPE_F32;
  if (name == "f16") return LLMK_DTYPE_F16;
  if (name == "bf16") return LLMK_DTYPE_BF16;
  if (name == "i32") return LLMK_DTYPE_I32;
  if (name == "i64") return LLMK_DTYPE_I64;
  throw std::runtime_error("unknown dtype " + name);
}

inline double element_to_double(int32_t dtype, const void* p) {
  switch (dtype) {
    case LLMK_DTYPE_F32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case LLMK_DTYPE_F16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return llmk::f16_to_double(h);
    }
    case LLMK_DTYPE_BF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return llmk::bf16_to_double(h);
    }
    case LLMK_DTYPE_I32: {
      int32_t i;
      std::memcpy(&i, p, 4);
      return i;
    }
    case LLMK_DTYPE_I64: {
      int64_t i;
      std::memcpy(&i, p, 8);
      return static_cast<double>(i);
    }
  }
  throw std::runtime_error("element_to_double: unsupported dtype");
}

inline void double_to_element(int32_t dtype, double v, void* p) {
  switch (dtype) {
    case LLMK_DTYPE_F32: {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
      return;
    }
    case LLMK_DTYPE_F16: {
      const uint16_t h = llmk::f16_from_double(v);
      std::memcpy(p, &h, 2);
      return;
    }
    case LLMK_DTYPE_BF16: {
      const uint16_t h = llmk::bf16_from_double(v);
      std::memcpy(p, &h, 2);
      return;
    }
    case LLMK_DTYPE_I32: {  // integers: v rounded toward zero, as the caller means it
      const int32_t i = static_cast<int32_t>(v);
      std::memcpy(p, &i, 4);
      return;
    }
    case LLMK_DTYPE_I64: {
      const int64_t i = static_cast<int64_t>(v);
      std::memcpy(p, &i, 8);
      return;
    }
  }
  throw std::runtime_error("double_to_element: unsupported dtype");
}

inline std::vector<uint8_t> nan_buffer(int32_t dtype, size_t elements) {
  std::vector<uint8_t> bytes(elements * element_bytes(dtype));
  for (size_t i = 0; i < elements; ++i) {
    double_to_element(dtype, NAN, bytes.data() + i * element_bytes(dtype));
  }
  return bytes;
}

// A view with the given shape and strides (contiguous when strides is empty) over `data`.
inline llmk_tensor make_view(void* data, int32_t dtype, std::vector<int64_t> shape,
                             std::vector<int64_t> strides = {}) {
  llmk_tensor t{};
  t.data = data;
  t.dtype = dtype;
  t.ndim = static_cast<int32_t>(shape.size());
  if (strides.empty()) {
    strides.assign(shape.size(), 1);
    for (int d = t.ndim - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
  }
  for (int d = 0; d < t.ndim; ++d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
  return t;
}

// A host buffer for a view, its gaps and elements filled with normal(mean, scale) values.
inline std::vector<uint8_t> random_buffer(int32_t dtype, size_t elements, std::mt19937_64& rng,
                                          double mean = 0.0, double scale = 1.0) {
  std::normal_distribution<double> normal(mean, scale);
  std::vector<uint8_t> bytes(elements * element_bytes(dtype));
  for (size_t i = 0; i < elements; ++i) {
    double_to_element(dtype, normal(rng), bytes.data() + i * element_bytes(dtype));
  }
  return bytes;
}

}  // namespace llmk_test
