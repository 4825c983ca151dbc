//! Writes into KV caches: [`kv_cache_write`] (contiguous caches) and [`paged_kv_cache_write`]
//! (paged caches).
//!
//! The two layouts, for K and V alike:
//! - contiguous: `[batch, max_seq, kv_heads, head_dim]`; the token of sequence `b` at position
//!   `p` is row `[b, p]`;
//! - paged: `[num_pages, page_size, kv_heads, head_dim]`; slot `s = page * page_size + offset`
//!   is row `[s / page_size, s % page_size]`.
//!
//! Any strides except that `head_dim` is contiguous; the K and V caches have one shape, each its
//! own strides, and the dtype of the `k` and `v` written into them: F32, F16 or BF16. A
//! contiguous cache is the paged layout with `page_size = max_seq` and slot `b * max_seq + p`,
//! so [`paged_kv_cache_write`] also fills a contiguous cache from any per-token positions.

use super::check_memory;
use crate::context::{Context, Stream};
use crate::error::{Result, check};
use crate::sys;
use crate::tensor::{TensorMut, TensorRef};

/// Appends new tokens to contiguous caches, as `flash_attn_with_kvcache` does: token `i` of
/// sequence `b` goes to position `cache_seqlens[b] + i`.
///
/// `k`, `v`: `[batch, new_len, kv_heads, head_dim]`, one dtype with the caches, `head_dim`
/// contiguous, other strides free. `cache_seqlens`: `[batch]`, I32 or I64, any stride.
/// `k_cache`, `v_cache`: the contiguous layout, of the same `batch`, `kv_heads` and `head_dim`;
/// they overlap nothing. `cache_seqlens[b]` must lie in `[0, max_seq - new_len]`: the CPU backend
/// refuses any other with [`Status::InvalidValue`](crate::Status::InvalidValue) before writing;
/// on CUDA, whose kernels do not report, a token whose position falls outside `[0, max_seq)` is
/// not written.
pub fn kv_cache_write(
    ctx: &Context,
    k: &TensorRef<'_>,
    v: &TensorRef<'_>,
    cache_seqlens: &TensorRef<'_>,
    k_cache: &mut TensorMut<'_>,
    v_cache: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "kv_cache_write",
        &[
            ("k", k.memory()),
            ("v", v.memory()),
            ("cache_seqlens", cache_seqlens.memory()),
            ("k_cache", k_cache.memory()),
            ("v_cache", v_cache.memory()),
        ],
    )?;
    // SAFETY: the views are valid for what the op does with them (their constructors' contracts),
    // in the context's memory space (checked above), and the stream is valid by its contract.
    check(unsafe {
        sys::llmk_kv_cache_write(
            ctx.as_raw(),
            k.as_raw(),
            v.as_raw(),
            cache_seqlens.as_raw(),
            k_cache.as_raw(),
            v_cache.as_raw(),
            stream.as_raw(),
        )
    })
}

/// Stores tokens into paged caches through a slot mapping, as vLLM's `reshape_and_cache` does:
/// token `t` goes to slot `slot_mapping[t]`; a negative slot skips the token (padding).
///
/// `k`, `v`: `[tokens, kv_heads, head_dim]`, one dtype with the caches, `head_dim` contiguous,
/// other strides free. `slot_mapping`: `[tokens]`, I32 or I64, any stride. `k_cache`, `v_cache`:
/// the paged layout, of the same `kv_heads` and `head_dim`; they overlap nothing. Where two
/// tokens share a slot, each element there ends up holding one of the two tokens' values. A slot
/// `>= num_pages * page_size`: the CPU backend refuses it with
/// [`Status::InvalidValue`](crate::Status::InvalidValue) before writing; on CUDA, whose kernels
/// do not report, that token is not written.
pub fn paged_kv_cache_write(
    ctx: &Context,
    k: &TensorRef<'_>,
    v: &TensorRef<'_>,
    slot_mapping: &TensorRef<'_>,
    k_cache: &mut TensorMut<'_>,
    v_cache: &mut TensorMut<'_>,
    stream: Stream,
) -> Result<()> {
    check_memory(
        ctx,
        "paged_kv_cache_write",
        &[
            ("k", k.memory()),
            ("v", v.memory()),
            ("slot_mapping", slot_mapping.memory()),
            ("k_cache", k_cache.memory()),
            ("v_cache", v_cache.memory()),
        ],
    )?;
    // SAFETY: as in kv_cache_write.
    check(unsafe {
        sys::llmk_paged_kv_cache_write(
            ctx.as_raw(),
            k.as_raw(),
            v.as_raw(),
            slot_mapping.as_raw(),
            k_cache.as_raw(),
            v_cache.as_raw(),
            stream.as_raw(),
        )
    })
}
