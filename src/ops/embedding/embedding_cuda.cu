// The CUDA backend of llmk_embedding: the unit width and index type become template arguments
// here.
//
// Blocks of row_copy::kThreads (128) threads, 32 bytes per thread: the best of the shapes swept
// on the H200 (16384 ids of 32000 x 4096; f32: 128 x 2 packs 132.2 us, 256 x 2 134.5; bf16:
// 128 x 2 packs 68.1-68.4 us, 256 x 2 69.2-69.4, 128 x 1 72.3; a cudaMemcpy of y's bytes 67.5
// and 128.8). For bf16, 128 x 2 was also 1-1.7% faster from 4096 to 16384 ids and tied at 2048.
#include <cuda_runtime.h>

#include "core/cuda_util.hpp"
#include "core/launch.cuh"
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
    using U = Unit<decltype(bytes)::value>;
    with_index(p.ids_dtype, [&](auto index) {
      launch_rows("embedding", p.tokens, p.hidden * eb / static_cast<int64_t>(sizeof(U)),
                  kThreads * kPacks<U, 1>, [&](const FlatRows& rows, unsigned blocks) {
                    cuda_launch<embedding_kernels::embedding_kernel<decltype(index), U>>(
                        "embedding", blocks, kThreads, 0, stream, p, rows, nan_word);
                  });
    });
  });
}

}  // namespace llmk
