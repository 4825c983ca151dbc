// The launch logic of the RoPE kernel (rope_kernels.cuh): the runtime choices (style, dtype,
// 16-byte packs or single elements) become template arguments here, in launch(), and the
// geometry that spreads a token's units over threads is chosen in geometry_of().
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/cuda_util.hpp"
#include "core/launch.cuh"
#include "rope.hpp"
#include "rope_kernels.cuh"

namespace llmk {
namespace {

using rope_kernels::Geometry;
using rope_kernels::kBlockThreads;
using rope_kernels::kChunks;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// 16 / element_bytes when every pack of q and k starts 16-byte aligned: the base pointers, the
// token and head strides (where the extent is over 1) and the distance between packs of a unit
// (rotary_dim / 2 in NeoX style, rotary_dim in GPT-J style) are multiples of 16 bytes. Otherwise
// 1: element-wise access, still correct, slower.
int pack_width(const RopeParams& p, size_t element) {
  uint64_t offsets = (p.style == LLMK_ROPE_NEOX ? p.pairs : 2 * p.pairs) * element;
  for (const RopeHeads& h : {p.q, p.k}) {
    if (h.heads == 0) continue;
    offsets |= reinterpret_cast<uintptr_t>(h.data);
    if (p.tokens > 1) offsets |= h.token_stride * element;
    if (h.heads > 1) offsets |= h.head_stride * element;
  }
  const int width = pack_elements(element, {offsets});
  return width == static_cast<int>(16 / element) ? width : 1;
}

// A block holds the fewest tokens that make it this many threads (two warps).
constexpr int64_t kMinBlockThreads = 64;

// Threads per token: enough that each owns at most kChunks units, and one unit each while a
// token has fewer than a warp's worth (small heads), so the angles spread over many threads too.
// Any count, not only powers of two, so that uneven head counts (GQA's 32 + 8) still give every
// thread kChunks units. Heads split evenly into groups (blockIdx.y) when a token has more units
// than a block holds. Tokens per block: as few as make kMinBlockThreads. Small blocks let more
// of them reside per SM (8 blocks of one token at 32 + 32 heads of 128, where 4 blocks held two
// tokens each), so a block waiting at its barrier holds back fewer loads: with a cos/sin cache
// the barrier waits for a position and then for the cache row it points to. Measured on an H200
// (bench/NOTES.md): 1% faster with the cache and with GQA's fused QKV, the same elsewhere.
Geometry geometry_of(const RopeParams& p, int pairs_per_unit) {
  Geometry g;
  g.units_per_head = static_cast<unsigned>(p.pairs / pairs_per_unit);
  const int64_t heads = p.q.heads + p.k.heads;
  const int64_t groups = ceil_div(heads, int64_t{kBlockThreads} * kChunks / g.units_per_head);
  g.heads_per_group = static_cast<unsigned>(ceil_div(heads, groups));
  const int64_t units = int64_t{g.heads_per_group} * g.units_per_head;
  g.threads_per_token =
      static_cast<unsigned>(std::max(ceil_div(units, kChunks), std::min<int64_t>(units, 32)));
  g.tokens_per_block =
      static_cast<unsigned>(std::min<int64_t>({ceil_div(kMinBlockThreads, g.threads_per_token),
                                               kBlockThreads / g.threads_per_token, p.tokens}));
  return g;
}

template <llmk_rope_style S, class T, int VEC>
void run(const RopeParams& p, cudaStream_t stream) {
  const Geometry g = geometry_of(p, rope_kernels::Unit<S, VEC>::kPairs);
  const int64_t token_blocks = ceil_div(p.tokens, g.tokens_per_block);
  const int64_t head_groups = ceil_div(p.q.heads + p.k.heads, g.heads_per_group);
  if (token_blocks > INT32_MAX || head_groups > 65535) {
    fail(LLMK_ERROR_UNSUPPORTED, "rope: %lld tokens of %lld heads are more than a CUDA grid holds",
         static_cast<long long>(p.tokens), static_cast<long long>(p.q.heads + p.k.heads));
  }
  const dim3 grid(static_cast<unsigned>(token_blocks), static_cast<unsigned>(head_groups));
  const unsigned threads = g.tokens_per_block * g.threads_per_token;
  const size_t shared_bytes = size_t{2} * p.pairs * g.tokens_per_block * sizeof(float);
  cuda_launch<rope_kernels::rope_kernel<S, T, VEC>>("rope", grid, threads, shared_bytes, stream, p,
                                                    g);
}

// The one place where runtime choices become template arguments.
template <class T>
void launch(const RopeParams& p, cudaStream_t stream) {
  constexpr int kPack = 16 / sizeof(T);
  const bool packed = pack_width(p, sizeof(T)) == kPack;
  auto with_width = [&](auto style) {
    constexpr llmk_rope_style S = decltype(style)::value;
    if (packed) {
      run<S, T, kPack>(p, stream);
    } else {
      run<S, T, 1>(p, stream);
    }
  };
  if (p.style == LLMK_ROPE_NEOX) {
    with_width(std::integral_constant<llmk_rope_style, LLMK_ROPE_NEOX>{});
  } else {
    with_width(std::integral_constant<llmk_rope_style, LLMK_ROPE_GPTJ>{});
  }
}

}  // namespace

void rope_cuda(const RopeParams& p, const llmk_context&, void* stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F32: launch<float>(p, stream); break;
    case LLMK_DTYPE_F16: launch<__half>(p, stream); break;
    case LLMK_DTYPE_BF16: launch<__nv_bfloat16>(p, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "rope_cuda: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
