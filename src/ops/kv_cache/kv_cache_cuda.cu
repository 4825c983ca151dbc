// The CUDA backend of the KV-cache writes: the layout, index type and unit width become template
// arguments here, and a failed launch is reported.
#include <cuda_runtime.h>

#include "core/cuda_util.hpp"
#include "core/pack.cuh"
#include "kv_cache_kernels.cuh"

namespace llmk {

void kv_cache_cuda(const KvCacheParams& p, void* stream_handle) {
  using namespace row_copy;
  const char* op = p.layout == KvLayout::contiguous ? "kv_cache_write" : "paged_kv_cache_write";
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const int eb = p.element_bytes;
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
    constexpr int kBytes = decltype(bytes)::value;
    const RowLaunch l = row_launch(op, rows, p.row_elements * eb / kBytes, kChunks<kBytes>);
    with_index(p.index_dtype, [&](auto index) {
      using Index = decltype(index);
      if (p.layout == KvLayout::contiguous) {
        kv_cache_kernels::kv_cache_write_kernel<KvLayout::contiguous, Index, Unit<kBytes>>
            <<<l.grid, kBlockThreads, 0, stream>>>(p, l.log2_threads);
      } else {
        kv_cache_kernels::kv_cache_write_kernel<KvLayout::paged, Index, Unit<kBytes>>
            <<<l.grid, kBlockThreads, 0, stream>>>(p, l.log2_threads);
      }
    });
  });
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) fail_cuda(op, error);
}

}  // namespace llmk
