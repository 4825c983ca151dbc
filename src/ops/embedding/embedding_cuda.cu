// The CUDA backend of llmk_embedding: the unit width and index type become template arguments
// here, and the block size is picked.
//
// Blocks of 256 threads for 16-bit tables, 128 for f32 ones, 32 bytes per thread either way: the
// best of the shapes swept on the H200 (16384 ids of 32000 x 4096; bf16: 256 x 2 packs 69.3 us,
// 128 x 1 pack 72.3; f32: 128 x 2 packs 132.2 us, 256 x 2 134.5; a cudaMemcpy of y's bytes
// 67.5 and 128.8).
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
  const int threads = eb == 2 ? 256 : 128;
  with_unit(unit, [&](auto bytes) {
    using U = Unit<decltype(bytes)::value>;
    with_index(p.ids_dtype, [&](auto index) {
      launch_rows("embedding", p.tokens, p.hidden * eb / static_cast<int64_t>(sizeof(U)),
                  threads * kPacks<U, 1>, [&](const FlatRows& rows, unsigned blocks) {
                    cuda_launch<embedding_kernels::embedding_kernel<decltype(index), U>>(
                        "embedding", blocks, threads, 0, stream, p, rows, nan_word);
                  });
    });
  });
}

}  // namespace llmk
