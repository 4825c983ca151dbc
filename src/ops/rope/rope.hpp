// Rotary position embedding (llmk_rope) as its backends see it: one params struct of checked
// pointers and strides, and one entry per backend.
#pragma once

#include <cstdint>

#include "core/context.hpp"

namespace llmk {

// The most rotary pairs (rotary_dim / 2) a call may have: the frequencies travel to the CUDA
// kernel inside its parameters (8 bytes each, within the 4 KB a launch passes by value).
constexpr int kRopeMaxPairs = 256;

// q or k: [tokens, heads, head_dim], head_dim contiguous. Only the first rotary_dim elements of
// each head are read and written.
struct RopeHeads {
  void* data;  // null, with heads == 0, for an absent k
  int64_t heads;
  int64_t token_stride;  // elements
  int64_t head_stride;   // elements
};

struct RopeParams {
  llmk_dtype dtype;  // of q and k: F32, F16 or BF16
  llmk_rope_style style;
  int64_t tokens;  // > 0
  int pairs;       // rotary_dim / 2, 1 ... kRopeMaxPairs
  RopeHeads q, k;
  const void* positions;  // [tokens], I32 or I64
  llmk_dtype positions_dtype;
  int64_t positions_stride;
  // [cache_rows, 2 * pairs]: row p holds position p's cosines, then its sines. Null: the angles
  // are position * inv_freq[i].
  const void* cache;
  llmk_dtype cache_dtype;  // F32 or dtype
  int64_t cache_rows;
  int64_t cache_stride;
  // Pair i's angle per unit of position, in radians: theta^(-2i / rotary_dim) with Llama 3's
  // scaling applied, computed in f64 on the host. Unused with a cache.
  double inv_freq[kRopeMaxPairs];
};

// The reference: f64 math, each output rounded once. With a cache, it refuses a position outside
// [0, cache_rows) with LLMK_ERROR_INVALID_VALUE before writing anything.
void rope_cpu(const RopeParams& p);

// Launches on `stream` of the current device (the caller has set it); fails with
// LLMK_ERROR_CUDA or LLMK_ERROR_CUDA_CONTEXT_LOST if the launch does.
void rope_cuda(const RopeParams& p, const llmk_context& ctx, void* stream);

}  // namespace llmk
