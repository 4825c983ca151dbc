// Element conversions and 16-byte packs, shared by the memory-bound kernels.
//
// A memory-bound kernel moves data in 16-byte packs (one LDG.128/STG.128 per thread per pack) and
// computes in f32. At 4 TB/s an H100/H200 SM must retire about 4 bf16 elements per clock, more
// than the f32 <-> 16-bit conversion unit does one at a time, so unpack() widens bf16 by an
// integer shift and pack() narrows two elements per instruction (cvt.rn.bf16x2 / f16x2).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <initializer_list>
#include <type_traits>

namespace llmk {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// N elements moved by one access: 16 bytes when N * sizeof(T) == 16.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

// The N elements of a pack as f32.
template <class T, int N>
__device__ __forceinline__ void unpack(const Pack<T, N>& p, float (&out)[N]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      uint32_t bits;
      memcpy(&bits, &p.v[i], 4);
      out[i] = __uint_as_float(bits << 16);
      out[i + 1] = __uint_as_float(bits & 0xffff0000u);
    }
  } else if constexpr (std::is_same_v<T, __half> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      __half2 pair;
      memcpy(&pair, &p.v[i], 4);
      const float2 f = __half22float2(pair);
      out[i] = f.x;
      out[i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_float(p.v[i]);
  }
}

// N f32 values rounded (to nearest even) into a pack.
template <class T, int N>
__device__ __forceinline__ Pack<T, N> pack(const float (&in)[N]) {
  Pack<T, N> p;
  if constexpr (std::is_same_v<T, __nv_bfloat16> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(in[i], in[i + 1]);
      memcpy(&p.v[i], &pair, 4);
    }
  } else if constexpr (std::is_same_v<T, __half> && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const __half2 pair = __floats2half2_rn(in[i], in[i + 1]);
      memcpy(&p.v[i], &pair, 4);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) p.v[i] = from_float<T>(in[i]);
  }
  return p;
}

// The widest pack width (elements, at most 16 bytes) that divides every given byte address and
// byte stride: VEC elements of T can then be moved as one access everywhere.
inline int pack_elements(size_t element_bytes, std::initializer_list<uint64_t> byte_offsets) {
  uint64_t bits = 16;
  for (uint64_t b : byte_offsets) bits |= b;
  const uint64_t alignment = bits & (~bits + 1);  // the lowest set bit
  const uint64_t width = alignment / element_bytes;
  return width == 0 ? 1 : static_cast<int>(width);
}

// The U at `offset` bytes past base: the flat kernels keep row strides in bytes.
template <class U>
__device__ __forceinline__ const U* at_byte(const void* base, int64_t offset) {
  return reinterpret_cast<const U*>(static_cast<const char*>(base) + offset);
}

template <class U>
__device__ __forceinline__ U* at_byte(void* base, int64_t offset) {
  return reinterpret_cast<U*>(static_cast<char*>(base) + offset);
}

}  // namespace llmk
