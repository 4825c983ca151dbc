// The CUDA backend of the KV-cache writes: the layout, index type and unit width become template
// arguments here.
//
// Blocks of 128 threads, each thread one 16-byte pack of k and one of v: the best of the shapes
// swept on the H200 (contiguous 16 x 1024 tokens of 32 x 128 bf16 into 4096: 131.9 us, against
// 135.5 for 256 threads x 2 + 2 packs and 132.0 for two cudaMemcpy of the same bytes).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_util.hpp"
#include "core/launch.cuh"
#include "core/pack.cuh"
#include "kv_cache_kernels.cuh"

namespace llmk {

void kv_cache_cuda(const KvCacheParams& p, void* stream_handle) {
  using namespace row_copy;
  const bool contiguous = p.layout == KvLayout::contiguous;
  const char* op = contiguous ? "kv_cache_write" : "paged_kv_cache_write";
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const int eb = p.element_bytes;
  const int64_t slots = p.num_pages * p.page_size;
  if (slots == 0) return;  // every destination lies outside an empty cache
  if (!contiguous && slots > INT32_MAX) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: a cache of %lld slots; the CUDA kernel takes at most %d", op,
         static_cast<long long>(slots), INT32_MAX);
  }
  // Every address and stride a row start is computed from, and the row length.
  const auto strides = [&](const KvStrides& s, int64_t outer, int64_t inner) {
    return stride_bytes(outer, s.outer, eb) | stride_bytes(inner, s.inner, eb) |
           stride_bytes(p.row_heads, s.head, eb);
  };
  const int unit = pack_elements(
      1, {address(p.k), address(p.v), address(p.k_cache), address(p.v_cache),
          strides(p.k_strides, p.batch, p.new_len), strides(p.v_strides, p.batch, p.new_len),
          strides(p.k_cache_strides, p.num_pages, p.page_size),
          strides(p.v_cache_strides, p.num_pages, p.page_size),
          static_cast<uint64_t>(p.row_elements) * eb});
  const int64_t rows = p.batch * p.new_len * p.row_heads;
  with_unit(unit, [&](auto bytes) {
    using U = Unit<decltype(bytes)::value>;
    with_index(p.index_dtype, [&](auto index) {
      using Index = decltype(index);
      launch_rows(
          op, rows, p.row_elements * eb / static_cast<int64_t>(sizeof(U)), kThreads * kPacks<U, 2>,
          [&](const FlatRows& part, unsigned blocks) {
            // Below 2^31, as launch_rows has accepted the rows (paged: as the slots).
            const kv_cache_kernels::KvDividers d{
                FastDiv(static_cast<uint32_t>(p.row_heads)),
                FastDiv(static_cast<uint32_t>(contiguous ? p.new_len : p.page_size))};
            if (contiguous) {
              cuda_launch<kv_cache_kernels::kv_cache_write_kernel<KvLayout::contiguous, Index, U>>(
                  op, blocks, kThreads, 0, stream, p, part, d);
            } else {
              cuda_launch<kv_cache_kernels::kv_cache_write_kernel<KvLayout::paged, Index, U>>(
                  op, blocks, kThreads, 0, stream, p, part, d);
            }
          });
    });
  });
}

}  // namespace llmk
