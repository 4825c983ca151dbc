"""Writing new keys and values into KV caches.

The two cache layouts (llmk.h), for K and V alike, head_dim contiguous, other strides free:
- contiguous: [batch, max_seq, kv_heads, head_dim]; sequence b's token at position p is [b, p];
- paged: [num_pages, page_size, kv_heads, head_dim]; slot s is [s // page_size, s % page_size].
k_cache and v_cache have one shape (each its own strides) and the dtype of k and v: F32, F16 or
BF16. The caches overlap nothing. Both ops write in place and return None.
"""
from __future__ import annotations

from typing import Any, Optional

from ._args import tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import lib


def kv_cache_write(ctx: Context, k: Any, v: Any, cache_seqlens: Any, k_cache: Any, v_cache: Any,
                   stream: Optional[int] = None) -> None:
    """Appends new tokens to contiguous caches (flash_attn_with_kvcache): token i of sequence b
    goes to position cache_seqlens[b] + i.

    k, v: [batch, new_len, kv_heads, head_dim]. cache_seqlens: [batch], I32 or I64, any stride;
    each must lie in [0, max_seq - new_len]: the CPU refuses others (INVALID_VALUE) before
    writing; on CUDA a token that would fall outside the cache is not written.
    k_cache, v_cache: [batch, max_seq, kv_heads, head_dim]. stream: None or an int cudaStream_t.
    """
    check(lib.llmk_kv_cache_write(ctx.handle, tensor_arg(k), tensor_arg(v),
                                  tensor_arg(cache_seqlens), written_tensor_arg(k_cache, "k_cache"),
                                  written_tensor_arg(v_cache, "v_cache"), stream_handle(stream)))


def paged_kv_cache_write(ctx: Context, k: Any, v: Any, slot_mapping: Any, k_cache: Any,
                         v_cache: Any, stream: Optional[int] = None) -> None:
    """Stores tokens into paged caches through a slot mapping (vLLM's reshape_and_cache): token t
    goes to slot slot_mapping[t]; a negative slot skips the token (padding).

    k, v: [tokens, kv_heads, head_dim]. slot_mapping: [tokens], I32 or I64, any stride; a slot
    >= num_pages * page_size: the CPU refuses it (INVALID_VALUE) before writing; on CUDA that
    token is not written. Two tokens with one slot leave either's values there.
    k_cache, v_cache: [num_pages, page_size, kv_heads, head_dim] (a contiguous cache is the
    paged layout with page_size = max_seq and slot b * max_seq + p). stream: None or an int
    cudaStream_t.
    """
    check(lib.llmk_paged_kv_cache_write(ctx.handle, tensor_arg(k), tensor_arg(v),
                                        tensor_arg(slot_mapping),
                                        written_tensor_arg(k_cache, "k_cache"),
                                        written_tensor_arg(v_cache, "v_cache"),
                                        stream_handle(stream)))
