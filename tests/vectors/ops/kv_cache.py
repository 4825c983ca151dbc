"""Vectors of kv_cache_write and paged_kv_cache_write: rows of k and v copied exactly into caches
that start out holding random data, so each case checks the written rows and the untouched ones.
"""
import numpy as np

from vectorlib import FLOAT_DTYPES, Case, contiguous


def k_and_v(case, shape, fused_q_heads):
    """k and v of `shape` ([..., kv_heads, head_dim]): two tensors of their own, or (fused_q_heads
    set) slices of one fused QKV buffer with rows of (q_heads + 2 kv_heads) * head_dim elements,
    k first and v right after it, as the QKV projection leaves them."""
    if fused_q_heads is None:
        return (case.input("k", shape, contiguous(shape)),
                case.input("v", shape, contiguous(shape), scale=2.0))
    kv_heads, head_dim = shape[-2:]
    width = (fused_q_heads + 2 * kv_heads) * head_dim
    strides = contiguous(shape[:-2] + (width,))[:-1] + (head_dim, 1)
    tokens = int(np.prod(shape[:-2]))
    k = case.input("k", shape, strides, length=tokens * width)
    v = case.view_of("v", "k", kv_heads * head_dim, shape, strides)
    return k, v


def caches(case, shape, k_cache_strides, v_cache_strides):
    """Both caches, holding random data before the write; returns their float64 values."""
    return (case.input("k_cache", shape, k_cache_strides or contiguous(shape)),
            case.input("v_cache", shape, v_cache_strides or contiguous(shape)))


def hnd(shape):
    """Strides of a [pages, page_size, heads, head_dim] view of a [pages, heads, page_size,
    head_dim] buffer: heads are not dense, so every head is its own row."""
    pages, page_size, heads, head_dim = shape
    return (heads * page_size * head_dim, head_dim, page_size * head_dim, 1)


def expect_caches(case, k_cache, v_cache):
    case.expect("k_cache", k_cache, rtol=0.0, atol=0.0)
    case.expect("v_cache", v_cache, rtol=0.0, atol=0.0)


# kv_cache_write: (label, batch, new_len, kv_heads, head_dim, max_seq, index dtype, index stride,
# fused q heads or None, k_cache strides, v_cache strides); None strides: contiguous.
CONTIGUOUS = [
    ("b2_n3_h2_d8", 2, 3, 2, 8, 8, "i32", 1, None, None, None),
    ("b3_n1_h1_d3_decode_padded_cache", 3, 1, 1, 3, 6, "i64", 2, None, (25, 4, 3, 1), None),
    ("b2_n4_h2_d17_fused_qkv_hnd", 2, 4, 2, 17, 7, "i32", 1, 4, hnd((2, 7, 2, 17)), None),
    ("b1_n5_h4_d16_hnd", 1, 5, 4, 16, 9, "i64", 1, None, hnd((1, 9, 4, 16)), hnd((1, 9, 4, 16))),
]

# paged_kv_cache_write: (label, tokens, num_pages, page_size, kv_heads, head_dim, index dtype,
# index stride, fused q heads or None, k_cache strides, v_cache strides, skipped tokens).
PAGED = [
    ("t6_p4_ps4_h2_d8", 6, 4, 4, 2, 8, "i32", 1, None, None, None, [2]),
    ("t5_p3_ps2_h1_d1_strided_slots", 5, 3, 2, 1, 1, "i64", 3, None, None, None, []),
    ("t7_p4_ps4_h2_d24_fused_qkv_padded_cache", 7, 4, 4, 2, 24, "i32", 1, 2,
     (4 * 56 + 16, 56, 24, 1), None, [0, 6]),
    ("t9_p5_ps3_h3_d5_hnd", 9, 5, 3, 3, 5, "i64", 1, None, hnd((5, 3, 3, 5)), None, [4]),
]


def contiguous_cases(dtype):
    cases = []
    for (label, batch, new_len, heads, head_dim, max_seq, index_dtype, index_stride, fused,
         k_cache_strides, v_cache_strides) in CONTIGUOUS:
        case = Case("kv_cache_write", dtype, f"{label}_{index_dtype}")
        k, v = k_and_v(case, (batch, new_len, heads, head_dim), fused)
        seqlens = case.rng.integers(0, max_seq - new_len + 1, batch)
        seqlens[0] = max_seq - new_len  # the last start that fits: the cache's last row written
        case.ints("cache_seqlens", seqlens, strides=(index_stride,), dtype=index_dtype)
        cache_shape = (batch, max_seq, heads, head_dim)
        k_cache, v_cache = caches(case, cache_shape, k_cache_strides, v_cache_strides)
        for b in range(batch):
            k_cache[b, seqlens[b]:seqlens[b] + new_len] = k[b]
            v_cache[b, seqlens[b]:seqlens[b] + new_len] = v[b]
        expect_caches(case, k_cache, v_cache)
        cases.append(case)
    return cases


def paged_cases(dtype):
    cases = []
    for (label, tokens, pages, page_size, heads, head_dim, index_dtype, index_stride, fused,
         k_cache_strides, v_cache_strides, skipped) in PAGED:
        case = Case("paged_kv_cache_write", dtype, f"{label}_{index_dtype}")
        k, v = k_and_v(case, (tokens, heads, head_dim), fused)
        # Distinct slots in shuffled pages; the last slot of the cache is always among them.
        slots = case.rng.permutation(pages * page_size - 1)[:tokens - 1]
        slots = case.rng.permutation(np.append(slots, pages * page_size - 1))
        slots[skipped] = -1  # padding tokens
        case.ints("slot_mapping", slots, strides=(index_stride,), dtype=index_dtype)
        k_cache, v_cache = caches(case, (pages, page_size, heads, head_dim), k_cache_strides,
                                  v_cache_strides)
        for t, slot in enumerate(slots):
            if slot >= 0:
                k_cache[slot // page_size, slot % page_size] = k[t]
                v_cache[slot // page_size, slot % page_size] = v[t]
        expect_caches(case, k_cache, v_cache)
        cases.append(case)
    return cases


def cases():
    return [case for dtype in FLOAT_DTYPES for case in contiguous_cases(dtype) + paged_cases(dtype)]
