// The CUDA entry of attention: the kernel's arguments from AttentionParams, the grid, and the
// dispatch on (dtype, head_dim) and the GPU: the Hopper kernel (wgmma, generated/
// attention_hopper_<dtype>_d<D>.cu) on an sm_90 GPU for head_dim 64 and 128 without soft-cap or
// dropout, the portable one (mma.sync, generated/attention_<dtype>_d<D>.cu) for everything else.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "attention.hpp"
#include "attention_hopper_kernels.cuh"
#include "attention_kernels.cuh"
#include "core/cuda_util.hpp"

namespace llmk {
namespace attention_launch {
template <class T, int D>
void launch_attention(const attention_kernels::KernelArgs& args, dim3 grid, bool extras,
                      cudaStream_t stream);
template <class T, int D>
void launch_attention_hopper(const attention_kernels::KernelArgs& args, dim3 grid,
                             cudaStream_t stream);
}  // namespace attention_launch

namespace {

using attention_kernels::KernelArgs;
using attention_kernels::KernelTensor;
using attention_kernels::TileShape;

constexpr const char* kOp = "attention";

KernelTensor kernel_tensor(const AttentionTensor& t) {
  return {t.data, t.batch_stride, t.row_stride, t.head_stride};
}

KernelArgs kernel_args(const AttentionParams& p) {
  // The kernel counts rows and keys in 32-bit integers (cu_seqlens are I32 anyway).
  for (const int64_t extent : {p.q_len, p.kv_len, p.total_q, p.total_k}) {
    if (extent > INT32_MAX) {
      fail(LLMK_ERROR_UNSUPPORTED, "%s: %lld rows; the CUDA kernel takes at most %d per sequence",
           kOp, static_cast<long long>(extent), INT32_MAX);
    }
  }
  KernelArgs a{};
  a.q = kernel_tensor(p.q);
  a.k = kernel_tensor(p.k);
  a.v = kernel_tensor(p.v);
  a.o = kernel_tensor(p.o);
  a.lse = p.lse;
  a.lse_batch_stride = p.lse_batch_stride;
  a.lse_head_stride = p.lse_head_stride;
  a.lse_row_stride = p.lse_row_stride;
  a.cu_seqlens_q = p.cu_seqlens_q;
  a.cu_seqlens_k = p.cu_seqlens_k;
  // Packed: no valid sequence is longer than total_q, so the grid need not cover more.
  a.q_len = static_cast<int>(p.cu_seqlens_q != nullptr ? std::min(p.q_len, p.total_q) : p.q_len);
  a.kv_len = static_cast<int>(p.kv_len);
  a.total_q = static_cast<int>(p.total_q);
  a.total_k = static_cast<int>(p.total_k);
  a.q_heads = static_cast<int>(p.q_heads);
  a.heads_per_kv_head = static_cast<int>(p.q_heads / p.kv_heads);
  a.window_left = p.window_left;
  a.window_right = p.window_right;
  const double log2e = 1.4426950408889634;
  if (p.softcap > 0.f) {
    // s = softcap tanh(scale q.k / softcap), then the softmax of s.
    a.softcap = p.softcap;
    a.softcap_input_scale = static_cast<float>(double{p.scale} / p.softcap);
    a.score_to_log2 = static_cast<float>(log2e);
  } else {
    a.score_to_log2 = static_cast<float>(p.scale * log2e);
  }
  a.dropout_threshold = p.dropout_threshold;
  a.dropout_keep_scale = static_cast<float>(1.0 / (1.0 - double{p.dropout_p}));
  a.seed_lo = static_cast<uint32_t>(p.dropout_seed);
  a.seed_hi = static_cast<uint32_t>(p.dropout_seed >> 32);
  a.dropout_offset = p.dropout_offset;
  return a;
}

// Whether the call runs the Hopper kernel: as config->kernel asks, or where it can (AUTO). It
// exists when the build has sm_90a (CMakeLists.txt) and takes head_dim 64 and 128 without
// soft-cap or dropout, on an sm_90 GPU.
template <int D>
bool runs_hopper_kernel(const AttentionParams& p, const llmk_context& ctx, bool extras) {
  if (p.kernel == LLMK_ATTENTION_KERNEL_PORTABLE) return false;
#ifdef LLMK_ATTENTION_HOPPER
  constexpr bool kBuilt = true;
#else
  constexpr bool kBuilt = false;
#endif
  const bool sm90 = ctx.cc_major == 9 && ctx.cc_minor == 0;
  const bool can = kBuilt && sm90 && (D == 64 || D == 128) && !extras;
  if (p.kernel == LLMK_ATTENTION_KERNEL_HOPPER && !can) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: config->kernel is LLMK_ATTENTION_KERNEL_HOPPER, which runs on an sm_90 GPU (this is "
         "sm_%d%d) from a library built for sm_90a (%s), for head_dim 64 or 128 (this is %d) "
         "without soft-cap or dropout (%s)",
         kOp, ctx.cc_major, ctx.cc_minor, kBuilt ? "it is" : "it is not", D,
         extras ? "this call has one" : "none here");
  }
  return can;
}

template <class T, int D>
void launch(const AttentionParams& p, const llmk_context& ctx, cudaStream_t stream) {
  const bool extras = p.softcap > 0.f || p.dropout_threshold != 0;
  const bool hopper = runs_hopper_kernel<D>(p, ctx, extras);
  const int block_m = hopper ? attention_hopper::kBlockM : TileShape<D>::kBlockM;
  const int64_t rows = p.cu_seqlens_q != nullptr ? std::min(p.q_len, p.total_q) : p.q_len;
  const int64_t m_blocks = (rows + block_m - 1) / block_m;
  // The kernels' grid orders (attention_kernels.cuh): padded (query block, head, sequence),
  // packed (head, sequence, query block).
  const bool packed = p.cu_seqlens_q != nullptr;
  if (p.batch > 65535 || (packed ? m_blocks > 65535 : p.q_heads > 65535 || m_blocks > INT32_MAX)) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: batch %lld, q_heads %lld, %lld query blocks of %d; the CUDA grid holds at most 65535 "
         "sequences and 65535 %s",
         kOp, static_cast<long long>(p.batch), static_cast<long long>(p.q_heads),
         static_cast<long long>(m_blocks), block_m,
         packed ? "query blocks (max_seqlen_q)" : "heads");
  }
  const auto heads = static_cast<unsigned>(p.q_heads), batch = static_cast<unsigned>(p.batch),
             blocks = static_cast<unsigned>(m_blocks);
  const dim3 grid = packed ? dim3(heads, batch, blocks) : dim3(blocks, heads, batch);
  if constexpr (D == 64 || D == 128) {
    if (hopper) {
      attention_launch::launch_attention_hopper<T, D>(kernel_args(p), grid, stream);
      return;
    }
  }
  attention_launch::launch_attention<T, D>(kernel_args(p), grid, extras, stream);
}

template <class T>
void dispatch_head_dim(const AttentionParams& p, const llmk_context& ctx, cudaStream_t stream) {
  switch (p.head_dim) {
    case 64: launch<T, 64>(p, ctx, stream); break;
    case 96: launch<T, 96>(p, ctx, stream); break;
    case 128: launch<T, 128>(p, ctx, stream); break;
    case 256: launch<T, 256>(p, ctx, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "%s: head_dim %d reached the CUDA kernel", kOp, p.head_dim);
  }
}

}  // namespace

void attention_cuda(const AttentionParams& p, const llmk_context& ctx, void* stream_handle) {
  if (p.batch == 0 || p.q_len == 0) return;
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case LLMK_DTYPE_F16: dispatch_head_dim<__half>(p, ctx, stream); break;
    case LLMK_DTYPE_BF16: dispatch_head_dim<__nv_bfloat16>(p, ctx, stream); break;
    default: fail(LLMK_ERROR_INTERNAL, "%s: dtype %d reached the CUDA kernel", kOp, p.dtype);
  }
}

}  // namespace llmk
