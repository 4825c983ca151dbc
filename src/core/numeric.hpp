// Host-side dtype helpers: element sizes, and exact conversions between the 16-bit float formats
// and double. The CPU backend and the tests use these; CUDA code uses cuda_fp16/cuda_bf16.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "llmk.h"

namespace llmk {

inline bool is_known_dtype(int32_t dtype) {
  return dtype >= LLMK_DTYPE_F32 && dtype <= LLMK_DTYPE_I64;
}

inline int dtype_bits(int32_t dtype) {
  switch (dtype) {
    case LLMK_DTYPE_F32: return 32;
    case LLMK_DTYPE_F16: return 16;
    case LLMK_DTYPE_BF16: return 16;
    case LLMK_DTYPE_I8: return 8;
    case LLMK_DTYPE_U8: return 8;
    case LLMK_DTYPE_I32: return 32;
    case LLMK_DTYPE_I4: return 4;
    case LLMK_DTYPE_I64: return 64;
  }
  return 0;
}

inline const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case LLMK_DTYPE_F32: return "f32";
    case LLMK_DTYPE_F16: return "f16";
    case LLMK_DTYPE_BF16: return "bf16";
    case LLMK_DTYPE_I8: return "i8";
    case LLMK_DTYPE_U8: return "u8";
    case LLMK_DTYPE_I32: return "i32";
    case LLMK_DTYPE_I4: return "i4";
    case LLMK_DTYPE_I64: return "i64";
  }
  return "unknown";
}

// Rounds d to the nearest double that has at most `precision` significant bits and no bits below
// those of the format's subnormals (min_exponent: exponent of its smallest normal), ties to even.
// Overflow is left to the caller's final conversion.
inline double round_significand(double d, int precision, int min_exponent) {
  if (d == 0.0 || !std::isfinite(d)) return d;
  int exponent;
  std::frexp(d, &exponent);  // |d| in [2^(exponent-1), 2^exponent)
  int quantum = exponent - precision;
  if (quantum < min_exponent - precision + 1) quantum = min_exponent - precision + 1;
  return std::ldexp(std::nearbyint(std::ldexp(d, -quantum)), quantum);
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline double bf16_to_double(uint16_t h) { return bits_float(uint32_t{h} << 16); }

inline uint16_t bf16_from_double(double d) {
  if (std::isnan(d)) return 0x7FC0;
  // The rounded value is exact in float32 (or overflows it to infinity, as it must in bf16).
  return static_cast<uint16_t>(float_bits(static_cast<float>(round_significand(d, 8, -126))) >> 16);
}

inline double f16_to_double(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double magnitude;
  if (exponent == 0x1F)
    magnitude = mantissa ? NAN : INFINITY;
  else if (exponent == 0)
    magnitude = std::ldexp(mantissa, -24);
  else
    magnitude = std::ldexp(mantissa + 1024, exponent - 25);
  return sign ? -magnitude : magnitude;
}

inline uint16_t f16_from_double(double d) {
  if (std::isnan(d)) return 0x7E00;
  const uint16_t sign = std::signbit(d) ? 0x8000 : 0;
  const double r = std::fabs(round_significand(d, 11, -14));
  if (r > 65504.0) return sign | 0x7C00;
  if (r < std::ldexp(1.0, -14))
    return sign | static_cast<uint16_t>(std::ldexp(r, 24));  // subnormal
  int exponent;
  const double m = std::frexp(r, &exponent);  // r = m * 2^exponent, m in [0.5, 1)
  const uint16_t mantissa = static_cast<uint16_t>(std::ldexp(m, 11)) - 1024;
  return sign | static_cast<uint16_t>((exponent + 14) << 10) | mantissa;
}

// A float dtype's storage type and its exact conversions to and from double, for the CPU
// references: Element<D>::load widens a stored value, Element<D>::store rounds once.
template <llmk_dtype D>
struct Element;

template <>
struct Element<LLMK_DTYPE_F32> {
  using Storage = float;
  static double load(float v) { return v; }
  static float store(double v) { return static_cast<float>(v); }
};

template <>
struct Element<LLMK_DTYPE_F16> {
  using Storage = uint16_t;
  static double load(uint16_t v) { return f16_to_double(v); }
  static uint16_t store(double v) { return f16_from_double(v); }
};

template <>
struct Element<LLMK_DTYPE_BF16> {
  using Storage = uint16_t;
  static double load(uint16_t v) { return bf16_to_double(v); }
  static uint16_t store(double v) { return bf16_from_double(v); }
};

}  // namespace llmk
