// The CUDA backend of llmk_embedding: the unit width and index type become template arguments
// here, and a failed launch is reported.
#include <cuda_runtime.h>

#include "core/cuda_util.hpp"
#include "core/pack.cuh"
#include "embedding_kernels.cuh"

namespace llmk {

void embedding_cuda(const EmbeddingParams& p, void* stream_handle) {
  using namespace row_copy;
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  const int eb = p.element_bytes;
  const int unit = pack_elements(
      1, {address(p.table), address(p.y), stride_bytes(p.vocab, p.table_stride, eb),
          stride_bytes(p.tokens, p.y_stride, eb), static_cast<uint64_t>(p.hidden) * eb});
  const uint32_t nan_word = p.dtype == LLMK_DTYPE_F32   ? 0x7FC00000u
                            : p.dtype == LLMK_DTYPE_F16 ? 0x7E007E00u
                                                        : 0x7FC07FC0u;
  with_unit(unit, [&](auto bytes) {
    constexpr int kBytes = decltype(bytes)::value;
    const RowLaunch l = row_launch("embedding", p.tokens, p.hidden * eb / kBytes, kChunks<kBytes>);
    with_index(p.ids_dtype, [&](auto index) {
      embedding_kernels::embedding_kernel<decltype(index), Unit<kBytes>>
          <<<l.grid, kBlockThreads, 0, stream>>>(p, l.log2_threads, nan_word);
    });
  });
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) fail_cuda("embedding", error);
}

}  // namespace llmk
