// Launchers for the normalization kernels in norm_kernels.cuh: the one place where the runtime
// choices (op, dtype, 16-byte packs or single elements, registers per thread) become template
// arguments.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/cuda_util.hpp"
#include "norm_kernels.cuh"

namespace llmk {
namespace {

using norm_kernels::kMaxBlockThreads;

// Packs per thread: four 16-byte loads of x in flight per thread (with the weights', about 120
// registers) cover memory latency; eight no longer fit in registers. Rows longer than
// kMaxBlockThreads * kMaxChunks packs (16384 bf16/f16, 8192 f32) take the two-pass kernel.
constexpr int kMaxChunks = 4;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

bool rows_aligned16(const void* base, const RowStrides& strides, int ndim, size_t element) {
  if (!aligned16(base)) return false;
  for (int d = 0; d < ndim; ++d) {
    if (strides.stride[d] * element % 16 != 0) return false;
  }
  return true;
}

// Elements per 16-byte pack if every row of every tensor starts 16-byte aligned and rows are
// whole packs; otherwise 1 (element-wise access, still correct, slower).
int pack_width(const NormParams& p, size_t element) {
  const int width = static_cast<int>(16 / element);
  const bool fits = p.hidden % width == 0 && aligned16(p.weight) &&
                    (p.bias == nullptr || aligned16(p.bias)) &&
                    rows_aligned16(p.x, p.x_strides, p.rows.ndim, element) &&
                    rows_aligned16(p.y, p.y_strides, p.rows.ndim, element) &&
                    (p.kind != NormKind::add_rms ||
                     rows_aligned16(p.residual, p.residual_strides, p.rows.ndim, element));
  return fits ? width : 1;
}

void check_launch(const char* op) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) fail_cuda(op, error);
}

unsigned grid_size(int64_t blocks) {
  return static_cast<unsigned>(std::min<int64_t>(blocks, int64_t{1} << 30));
}

// Row groups fill the GPU once there are at least this many blocks per multiprocessor.
constexpr int kBlocksToFill = 2;

template <NormKind K, class T, int VEC>
void launch_rows(const NormParams& p, int64_t packs, int sm_count, cudaStream_t stream) {
  // Streaming many rows: the fewest threads per row (whole warps) that hold a row in kMaxChunks
  // packs each, so every thread keeps several loads in flight. Too few rows to fill the GPU: two
  // packs per thread, spreading each row over more threads with its parameters loaded early
  // (norm_rows_kernel's kEarlyParams), so its latency is one load, one reduction and one store.
  auto threads_for = [&](int chunks) {
    return static_cast<int>(
        std::clamp<int64_t>(ceil_div(ceil_div(packs, chunks), 32) * 32, 32, kMaxBlockThreads));
  };
  auto rows_per_block_for = [](int threads) { return std::max(1, 256 / threads); };
  int threads_per_row = threads_for(kMaxChunks);
  if (ceil_div(p.rows.count, rows_per_block_for(threads_per_row)) < kBlocksToFill * sm_count) {
    threads_per_row = threads_for(2);
  }
  const int chunks = static_cast<int>(ceil_div(packs, threads_per_row));
  const int rows_per_block = rows_per_block_for(threads_per_row);
  const dim3 block(threads_per_row * rows_per_block);
  const dim3 grid(grid_size(ceil_div(p.rows.count, rows_per_block)));
  if (chunks <= 1) {
    norm_kernels::norm_rows_kernel<K, T, VEC, 1><<<grid, block, 0, stream>>>(p, threads_per_row);
  } else if (chunks <= 2) {
    norm_kernels::norm_rows_kernel<K, T, VEC, 2><<<grid, block, 0, stream>>>(p, threads_per_row);
  } else {
    norm_kernels::norm_rows_kernel<K, T, VEC, 4><<<grid, block, 0, stream>>>(p, threads_per_row);
  }
}

template <NormKind K, class T>
void launch(const NormParams& p, int sm_count, cudaStream_t stream) {
  constexpr int kPack = 16 / sizeof(T);
  const int width = pack_width(p, sizeof(T));
  const int64_t packs = p.hidden / width;
  if (packs > int64_t{kMaxBlockThreads} * kMaxChunks) {
    norm_kernels::norm_long_rows_kernel<K, T>
        <<<grid_size(p.rows.count), kMaxBlockThreads, 0, stream>>>(p);
  } else if (width == kPack) {
    launch_rows<K, T, kPack>(p, packs, sm_count, stream);
  } else {
    launch_rows<K, T, 1>(p, packs, sm_count, stream);
  }
}

template <class T>
void launch_kind(const NormParams& p, int sm_count, cudaStream_t stream) {
  switch (p.kind) {
    case NormKind::rms: return launch<NormKind::rms, T>(p, sm_count, stream);
    case NormKind::add_rms: return launch<NormKind::add_rms, T>(p, sm_count, stream);
    case NormKind::layer: return launch<NormKind::layer, T>(p, sm_count, stream);
  }
}

const char* op_name(NormKind kind) {
  switch (kind) {
    case NormKind::rms: return "rms_norm";
    case NormKind::add_rms: return "add_rms_norm";
    case NormKind::layer: return "layer_norm";
  }
  return "norm";
}

}  // namespace

void norm_cuda(const NormParams& p, const llmk_context& ctx, void* stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F32: launch_kind<float>(p, ctx.sm_count, stream); break;
    case LLMK_DTYPE_F16: launch_kind<__half>(p, ctx.sm_count, stream); break;
    case LLMK_DTYPE_BF16: launch_kind<__nv_bfloat16>(p, ctx.sm_count, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "norm_cuda: dtype %d reached the backend", p.dtype);
  }
  check_launch(op_name(p.kind));
}

}  // namespace llmk
