// Launchers for the normalization kernels in norm_kernels.cuh: the runtime choices (op, dtype,
// 16-byte packs or single elements, packs per thread, streaming or direct) become template
// arguments here, in launch().
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "core/cuda_util.hpp"
#include "norm_kernels.cuh"

namespace llmk {
namespace {

using norm_kernels::kMaxBlockThreads;

// Packs per thread: four 16-byte packs per thread keep several loads in flight within ~64
// registers; eight no longer fit in registers. Rows longer than kMaxBlockThreads * kMaxChunks packs
// (16384 bf16/f16, 8192 f32) take the two-pass kernel.
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

// Enough row groups to give every multiprocessor this many blocks: from here on the rows stream.
constexpr int kBlocksToFill = 2;

// How a row is spread over threads: the fewest threads (whole warps) that hold it in at most
// kMaxChunks packs each, so every thread has several loads in flight.
struct RowLaunch {
  int threads_per_row, chunks, rows_per_block;
  int64_t row_groups;
  dim3 block() const { return dim3(threads_per_row * rows_per_block); }
};

RowLaunch row_launch(int64_t packs, int64_t rows) {
  RowLaunch l;
  l.threads_per_row = static_cast<int>(
      std::clamp<int64_t>(ceil_div(ceil_div(packs, kMaxChunks), 32) * 32, 32, kMaxBlockThreads));
  l.chunks = static_cast<int>(ceil_div(packs, l.threads_per_row));
  l.rows_per_block = std::max(1, 256 / l.threads_per_row);
  l.row_groups = ceil_div(rows, l.rows_per_block);
  return l;
}

template <NormKind K, class T, int VEC, int CHUNKS>
void launch_rows(const NormParams& p, const RowLaunch& l, cudaStream_t stream) {
  norm_kernels::norm_rows_kernel<K, T, VEC, CHUNKS>
      <<<grid_size(l.row_groups), l.block(), 0, stream>>>(p, l.threads_per_row);
}

template <NormKind K, class T, int CHUNKS>
void launch_stream(const NormParams& p, const RowLaunch& l, int sm_count, cudaStream_t stream) {
  const auto kernel = norm_kernels::norm_stream_kernel<K, T, CHUNKS>;
  const int inputs = K == NormKind::add_rms ? 2 : 1;
  const size_t stage_bytes =
      size_t{2} * inputs * l.rows_per_block * CHUNKS * l.threads_per_row * sizeof(uint4);
  if (stage_bytes > 48 * 1024) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(stage_bytes)),
               "norm: raising the shared-memory limit");
  }
  int blocks_per_sm = 0;
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel, l.block().x,
                                                           stage_bytes),
             "norm: occupancy");
  const int64_t resident = int64_t{std::max(blocks_per_sm, 1)} * sm_count;
  kernel<<<grid_size(std::min(l.row_groups, resident)), l.block(), stage_bytes, stream>>>(
      p, l.threads_per_row);
}

// The one place where runtime choices become template arguments.
template <NormKind K, class T>
void launch(const NormParams& p, int sm_count, cudaStream_t stream) {
  constexpr int kPack = 16 / sizeof(T);
  const int width = pack_width(p, sizeof(T));
  const int64_t packs = p.hidden / width;
  if (packs > int64_t{kMaxBlockThreads} * kMaxChunks) {
    norm_kernels::norm_long_rows_kernel<K, T>
        <<<grid_size(p.rows.count), kMaxBlockThreads, 0, stream>>>(p);
    return;
  }
  const RowLaunch l = row_launch(packs, p.rows.count);
  const bool streams = width == kPack && l.row_groups >= int64_t{kBlocksToFill} * sm_count;
  auto with_chunks = [&](auto chunks) {
    constexpr int kChunks = decltype(chunks)::value;
    if (streams) {
      launch_stream<K, T, kChunks>(p, l, sm_count, stream);
    } else if (width == kPack) {
      launch_rows<K, T, kPack, kChunks>(p, l, stream);
    } else {
      launch_rows<K, T, 1, kChunks>(p, l, stream);
    }
  };
  if (l.chunks <= 1) {
    with_chunks(std::integral_constant<int, 1>{});
  } else if (l.chunks <= 2) {
    with_chunks(std::integral_constant<int, 2>{});
  } else {
    with_chunks(std::integral_constant<int, 4>{});
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
