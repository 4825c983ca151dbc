// The C entries of the KV-cache writes: every argument check, then the backend.
#include "kv_cache.hpp"

#include <optional>

#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

void check_extent(const char* op, Arg a, int dim, const char* what, int64_t expected,
                  Arg reference) {
  const int64_t extent = a.tensor->shape[dim];
  if (extent != expected) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: %s has %s %lld (dimension %d), %s has %lld", op, a.name,
         what, static_cast<long long>(extent), dim, reference.name,
         static_cast<long long>(expected));
  }
}

// Heads merge into one row per token when every tensor holds them densely.
bool heads_are_dense(const KvCacheParams& p) {
  if (p.kv_heads == 1) return true;
  for (const KvStrides& s : {p.k_strides, p.v_strides, p.k_cache_strides, p.v_cache_strides}) {
    if (s.head != p.head_dim) return false;
  }
  return true;
}

// k and v: [batch, new_len, kv_heads, head_dim] (contiguous) or [tokens, kv_heads, head_dim]
// (paged); index: cache_seqlens or slot_mapping.
void run_kv_cache_write(const char* op, KvLayout layout, llmk_context* ctx_handle,
                        const llmk_tensor* k_view, const llmk_tensor* v_view,
                        const llmk_tensor* index_view, const char* index_name,
                        const llmk_tensor* k_cache_view, const llmk_tensor* v_cache_view,
                        void* stream) {
  const llmk_context& ctx = require_context(op, ctx_handle);
  const Arg k{"k", k_view}, v{"v", v_view}, index{index_name, index_view},
      k_cache{"k_cache", k_cache_view}, v_cache{"v_cache", v_cache_view};
  for (const Arg& a : {k, v, index, k_cache, v_cache}) check_view(op, a);

  check_dtype(op, k, {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  check_same_dtype(op, k, v);
  check_dtype(op, index, {LLMK_DTYPE_I32, LLMK_DTYPE_I64});
  check_same_dtype(op, k, k_cache);
  check_same_dtype(op, k, v_cache);

  const bool contiguous = layout == KvLayout::contiguous;
  const int k_ndim = contiguous ? 4 : 3;
  check_ndim(op, k, k_ndim, k_ndim);
  check_same_shape(op, k, v);
  check_ndim(op, index, 1, 1);
  check_ndim(op, k_cache, 4, 4);
  check_same_shape(op, k_cache, v_cache);
  const int64_t batch = contiguous ? k_view->shape[0] : 1;
  const int64_t new_len = k_view->shape[k_ndim - 3];
  const int64_t kv_heads = k_view->shape[k_ndim - 2], head_dim = k_view->shape[k_ndim - 1];
  check_extent(op, index, 0, contiguous ? "batch" : "tokens", contiguous ? batch : new_len, k);
  if (contiguous) check_extent(op, k_cache, 0, "batch", batch, k);
  check_extent(op, k_cache, 2, "kv_heads", kv_heads, k);
  check_extent(op, k_cache, 3, "head_dim", head_dim, k);
  check_unit_stride(op, k, k_ndim - 1);
  check_unit_stride(op, v, k_ndim - 1);
  check_unit_stride(op, k_cache, 3);
  check_unit_stride(op, v_cache, 3);

  check_not_self_overlapping(op, k_cache);
  check_not_self_overlapping(op, v_cache);
  check_no_overlap(op, k_cache, v_cache, false);
  for (const Arg& cache : {k_cache, v_cache}) {
    for (const Arg& input : {k, v, index}) check_no_overlap(op, cache, input, false);
  }

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {k, v, index, k_cache, v_cache}) check_memory(ctx, op, a);
    check_stream(ctx, op, stream);
  }

  if (numel(*k_view) == 0) return;

  KvCacheParams p{};
  p.layout = layout;
  p.dtype = static_cast<llmk_dtype>(k_view->dtype);
  p.element_bytes = dtype_bits(p.dtype) / 8;
  p.batch = batch;
  p.new_len = new_len;
  p.kv_heads = kv_heads;
  p.head_dim = head_dim;
  const int lead = k_ndim - 3;  // k's dimension before the tokens' (contiguous: batch)
  p.k = k_view->data;
  p.k_strides = {contiguous ? k_view->strides[0] : 0, k_view->strides[lead],
                 k_view->strides[lead + 1]};
  p.v = v_view->data;
  p.v_strides = {contiguous ? v_view->strides[0] : 0, v_view->strides[lead],
                 v_view->strides[lead + 1]};
  p.index = index_view->data;
  p.index_dtype = static_cast<llmk_dtype>(index_view->dtype);
  p.index_stride = index_view->strides[0];
  p.k_cache = k_cache_view->data;
  p.k_cache_strides = {k_cache_view->strides[0], k_cache_view->strides[1],
                       k_cache_view->strides[2]};
  p.v_cache = v_cache_view->data;
  p.v_cache_strides = {v_cache_view->strides[0], v_cache_view->strides[1],
                       v_cache_view->strides[2]};
  p.num_pages = k_cache_view->shape[0];
  p.page_size = k_cache_view->shape[1];
  const bool merged = heads_are_dense(p);
  p.row_heads = merged ? 1 : kv_heads;
  p.row_elements = merged ? kv_heads * head_dim : head_dim;

  if (is_cuda(ctx)) {
    kv_cache_cuda(p, stream);
  } else {
    kv_cache_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

using llmk::KvLayout;

extern "C" {

LLMK_API llmk_status llmk_kv_cache_write(llmk_context* ctx, const llmk_tensor* k,
                                         const llmk_tensor* v, const llmk_tensor* cache_seqlens,
                                         const llmk_tensor* k_cache, const llmk_tensor* v_cache,
                                         void* stream) {
  return llmk::api_call([&] {
    llmk::run_kv_cache_write("kv_cache_write", KvLayout::contiguous, ctx, k, v, cache_seqlens,
                             "cache_seqlens", k_cache, v_cache, stream);
  });
}

LLMK_API llmk_status llmk_paged_kv_cache_write(llmk_context* ctx, const llmk_tensor* k,
                                               const llmk_tensor* v,
                                               const llmk_tensor* slot_mapping,
                                               const llmk_tensor* k_cache,
                                               const llmk_tensor* v_cache, void* stream) {
  return llmk::api_call([&] {
    llmk::run_kv_cache_write("paged_kv_cache_write", KvLayout::paged, ctx, k, v, slot_mapping,
                             "slot_mapping", k_cache, v_cache, stream);
  });
}

}  // extern "C"
