// Division by a divisor fixed at launch, for the 32-bit index math of the flat streaming kernels
// (activation, embedding, KV writes): a pack's or unit's row is its index / units per row.
//
// n / d for n < 2^31 and 1 <= d < 2^31, as (umulhi(n, m) + n) >> s with 2^(s-1) < d <= 2^s and
// m = floor(2^32 (2^s - d) / d) + 1 < 2^32 (Granlund & Montgomery, as PyTorch's IntDivider):
// three instructions instead of the ~20 of a 32-bit division. umulhi(n, m) <= n, so the sum is
// below 2n < 2^32. The host computes the constants once per launch; the quotient also runs on
// the host, where the CPU tests check it.
#pragma once

#include <cstdint>

#include "core/rows.hpp"  // LLMK_HOST_DEVICE

namespace llmk {

struct FastDiv {
  uint32_t divisor, multiplier, shift;

  FastDiv() = default;
  explicit FastDiv(uint32_t d) : divisor(d), shift(0) {
    while ((uint64_t{1} << shift) < d) ++shift;
    multiplier =
        static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }

  LLMK_HOST_DEVICE uint32_t operator()(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t high = __umulhi(n, multiplier);
#else
    const uint32_t high = static_cast<uint32_t>((uint64_t{n} * multiplier) >> 32);
#endif
    return (high + n) >> shift;
  }
};

}  // namespace llmk
