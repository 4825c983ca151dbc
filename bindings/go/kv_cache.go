package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_kv_cache_write(void* ctx, void* k_data, llmkgo_view k_view,
                                           void* v_data, llmkgo_view v_view, void* seqlens_data,
                                           llmkgo_view seqlens_view, void* k_cache_data,
                                           llmkgo_view k_cache_view, void* v_cache_data,
                                           llmkgo_view v_cache_view, void* stream) {
  const llmk_tensor k = llmkgo_tensor(k_data, k_view);
  const llmk_tensor v = llmkgo_tensor(v_data, v_view);
  const llmk_tensor seqlens = llmkgo_tensor(seqlens_data, seqlens_view);
  const llmk_tensor k_cache = llmkgo_tensor(k_cache_data, k_cache_view);
  const llmk_tensor v_cache = llmkgo_tensor(v_cache_data, v_cache_view);
  return llmkgo_result_of(llmk_kv_cache_write(ctx, &k, &v, &seqlens, &k_cache, &v_cache, stream));
}

static llmkgo_result llmkgo_paged_kv_cache_write(void* ctx, void* k_data, llmkgo_view k_view,
                                                 void* v_data, llmkgo_view v_view,
                                                 void* slots_data, llmkgo_view slots_view,
                                                 void* k_cache_data, llmkgo_view k_cache_view,
                                                 void* v_cache_data, llmkgo_view v_cache_view,
                                                 void* stream) {
  const llmk_tensor k = llmkgo_tensor(k_data, k_view);
  const llmk_tensor v = llmkgo_tensor(v_data, v_view);
  const llmk_tensor slots = llmkgo_tensor(slots_data, slots_view);
  const llmk_tensor k_cache = llmkgo_tensor(k_cache_data, k_cache_view);
  const llmk_tensor v_cache = llmkgo_tensor(v_cache_data, v_cache_view);
  return llmkgo_result_of(
      llmk_paged_kv_cache_write(ctx, &k, &v, &slots, &k_cache, &v_cache, stream));
}
*/
import "C"

import "unsafe"

// The KV-cache writes fill the two cache layouts that llmk's attention reads, for K and V alike:
//   - contiguous: [batch, max_seq, kv_heads, head_dim], the token of sequence b at position p
//     being row [b, p];
//   - paged: [num_pages, page_size, kv_heads, head_dim], slot s = page * page_size + offset being
//     row [s / page_size, s % page_size].
// Any strides, except that head_dim is contiguous; the K and V caches have one shape, each its own
// strides, and the dtype of the k and v written into them: F32, F16 or BF16. The caches overlap
// nothing.

// KVCacheWrite appends new tokens to contiguous caches, as flash_attn_with_kvcache does: token i
// of sequence b goes to position cacheSeqlens[b] + i.
//
// k and v are [batch, new_len, kv_heads, head_dim], head_dim contiguous, other strides free.
// cacheSeqlens is [batch], I32 or I64, any stride. kCache and vCache are contiguous caches of the
// same batch, kv_heads and head_dim. cacheSeqlens[b] must lie in [0, max_seq - new_len]: a CPU
// context refuses others with StatusInvalidValue before writing; a CUDA context does not read it
// on the host and skips the tokens whose position falls outside [0, max_seq) instead.
func KVCacheWrite(ctx *Context, k, v, cacheSeqlens, kCache, vCache Tensor, stream Stream) error {
	r := C.llmkgo_kv_cache_write(ctx.ptr(), k.data, k.view(), v.data, v.view(), cacheSeqlens.data,
		cacheSeqlens.view(), kCache.data, kCache.view(), vCache.data, vCache.view(),
		unsafe.Pointer(stream))
	return resultError(&r)
}

// PagedKVCacheWrite stores tokens into paged caches through a slot mapping, as vLLM's
// reshape_and_cache does: token t goes to slot slotMapping[t], and a negative slot skips the
// token (padding). A contiguous cache is the paged layout with page_size = max_seq and slot
// b * max_seq + p, so this also fills one from any per-token positions.
//
// k and v are [tokens, kv_heads, head_dim], head_dim contiguous, other strides free. slotMapping
// is [tokens], I32 or I64, any stride. kCache and vCache are paged caches of the same kv_heads and
// head_dim. Two tokens with one slot leave either's values there. A slot >= num_pages * page_size:
// a CPU context refuses it with StatusInvalidValue before writing; a CUDA context does not read
// slotMapping on the host and skips that token instead.
func PagedKVCacheWrite(ctx *Context, k, v, slotMapping, kCache, vCache Tensor, stream Stream) error {
	r := C.llmkgo_paged_kv_cache_write(ctx.ptr(), k.data, k.view(), v.data, v.view(),
		slotMapping.data, slotMapping.view(), kCache.data, kCache.view(), vCache.data,
		vCache.view(), unsafe.Pointer(stream))
	return resultError(&r)
}
