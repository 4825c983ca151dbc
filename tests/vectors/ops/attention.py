"""Vectors of attention and attention_varlen: f16 and bf16, head_dim 64, 96, 128 and 256, no mask,
causal (bottom-right aligned, q_len below and above kv_len), sliding windows, soft-cap, GQA and
MQA, BSHD, strided BHSD and fused-QKV views, a non-default scale, packed sequences (empty ones
too), dropout, and lse present (contiguous, padded, transposed) or NULL.

The reference follows llmk.h's "Attention (prefill)" section in float64, without llmk: every dot
product q . k is a math.fsum of exact products, exp, log and tanh come from the math module, and
the dropout mask from a Philox 4x32-10 written here from the paper (checked against Random123's
known answers below). The tolerances are README.md's ("attention and attention_varlen").
"""
import math

import numpy as np

from vectorlib import Case, contiguous, round_up

# Unit roundoff (half an ulp, relative) of each dtype: the error of rounding a probability to it.
UNIT = {"f16": 2.0**-11, "bf16": 2.0**-8}
# One f32 rounding.
F32_UNIT = 2.0**-24
# CUDA's tanhf errs by at most 2 ulp (CUDA Math API), and its f32 argument by one rounding, so
# 2^-21 of |tanh| <= 1 bounds both; a soft-capped score c * tanh(x / c) errs by c times that.
TANH_F32 = 2.0**-21
# lse is f32: its sum of exponentials and the fast exp and log of a GPU.
LSE_RTOL, LSE_ATOL = 1e-5, 1e-4

# --- Philox 4x32-10 ------------------------------------------------------------------------------

MASK32 = 0xFFFFFFFF
PHILOX_MUL = (0xD2511F53, 0xCD9E8D57)
PHILOX_WEYL = (0x9E3779B9, 0xBB67AE85)


def philox4x32_10(counter, key):
    """Philox 4x32-10 (Salmon et al., SC 2011) of each counter: `counter` is an integer array
    [..., 4] of 32-bit words, key a pair of 32-bit words; returns the [..., 4] output words."""
    c0, c1, c2, c3 = (counter[..., w].astype(np.uint64) for w in range(4))
    k0, k1 = key
    for _ in range(10):
        p0 = np.uint64(PHILOX_MUL[0]) * c0  # < 2^64: no overflow
        p1 = np.uint64(PHILOX_MUL[1]) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & np.uint64(MASK32),
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & np.uint64(MASK32))
        k0, k1 = (k0 + PHILOX_WEYL[0]) & MASK32, (k1 + PHILOX_WEYL[1]) & MASK32
    return np.stack([c0, c1, c2, c3], axis=-1)


# Random123's kat_vectors: counter, key, output.
PHILOX_KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def check_philox():
    for counter, key, expected in PHILOX_KNOWN_ANSWERS:
        got = philox4x32_10(np.array(counter, dtype=np.uint64), key)
        assert tuple(int(w) for w in got) == expected, f"philox4x32_10{counter, key} = {got}"


class Dropout:
    """dropout_p, dropout_seed (uint64) and dropout_offset (uint32); the reference uses p as the
    f32 that the config holds."""

    def __init__(self, p, seed, offset):
        self.value = p
        self.p = float(np.float32(p))
        self.seed, self.offset = seed, offset
        self.threshold = math.floor(self.p * 2.0**32)

    def keep(self, sequence, head, q_heads, q_len, kv_len):
        """The kept elements [q_len, kv_len] of one sequence and query head: counter
        (j / 4, i, sequence * q_heads + head, offset), key (low, high word of the seed); word
        j % 4 below the threshold drops the element."""
        i = np.arange(q_len)[:, None]
        j4 = np.arange((kv_len + 3) // 4)[None, :]
        counter = np.stack(np.broadcast_arrays(j4, i, sequence * q_heads + head, self.offset), -1)
        words = philox4x32_10(counter, (self.seed & MASK32, self.seed >> 32))
        return words.reshape(q_len, 4 * j4.size)[:, :kv_len] >= np.uint64(self.threshold)


# --- the reference -------------------------------------------------------------------------------

_exp = np.vectorize(math.exp, otypes=[float])
_tanh = np.vectorize(math.tanh, otypes=[float])


class Options:
    """A case's config: scale None is the default, 1 / sqrt(head_dim); -1 windows: no limit."""

    def __init__(self, scale=None, causal=False, window_left=-1, window_right=-1, softcap=0.0,
                 dropout=None):
        self.scale, self.causal = scale, causal
        self.window_left, self.window_right = window_left, window_right
        self.softcap, self.dropout = softcap, dropout

    def scalars(self, case):
        if self.scale is not None:
            case.scalar("scale", self.scale)
        if self.causal:
            case.scalar("causal", 1)
        if self.window_left >= 0:
            case.scalar("window_left", self.window_left)
        if self.window_right >= 0:
            case.scalar("window_right", self.window_right)
        if self.softcap:
            case.scalar("softcap", self.softcap)
        if self.dropout is not None:
            case.scalar("dropout_p", self.dropout.value)
            case.scalar("dropout_seed", self.dropout.seed)
            case.scalar("dropout_offset", self.dropout.offset)

    def f32_scale(self, head_dim):
        """The scale as the kernels use it: an f32."""
        return float(np.float32(1.0 / math.sqrt(head_dim) if self.scale is None else self.scale))

    def visible(self, q_len, kv_len):
        """[q_len, kv_len]: key j visible to query i (bottom-right aligned)."""
        position = np.arange(q_len)[:, None] + kv_len - q_len
        j = np.arange(kv_len)[None, :]
        right = 0 if self.causal else self.window_right
        mask = np.ones((q_len, kv_len), dtype=bool)
        if right >= 0:
            mask &= j <= position + right
        if self.window_left >= 0:
            mask &= j >= position - self.window_left
        return mask


class Stats:
    """What the tolerances need, over every (sequence, head) of a case."""

    def __init__(self):
        self.abs_dot = 0.0  # max scale * sum_d |q_d k_d|
        self.abs_score = 0.0  # max |s| (after the soft-cap)
        self.keys = 0  # the most keys of one sequence


def attend(q, k, v, options, stats, keep=None):
    """One sequence and query head: q [q_len, d], k and v [kv_len, d]; keep [q_len, kv_len] the
    dropout mask or None. Returns o [q_len, d] and lse [q_len]."""
    q_len, d = q.shape
    kv_len = k.shape[0]
    scale = options.f32_scale(d)
    products = q[:, None, :] * k[None, :, :]  # exact: f16 and bf16 products fit in float64
    dots = np.array([math.fsum(p) for p in products.reshape(-1, d)]).reshape(q_len, kv_len)
    s = scale * dots
    if options.softcap:
        s = options.softcap * _tanh(s / options.softcap)
    if q_len * kv_len:
        stats.abs_dot = max(stats.abs_dot, scale * float(np.max(np.abs(products).sum(-1))))
        stats.abs_score = max(stats.abs_score, float(np.max(np.abs(s))))
    stats.keys = max(stats.keys, kv_len)

    visible = options.visible(q_len, kv_len)
    o = np.zeros((q_len, d))
    lse = np.full(q_len, -np.inf)
    for i in range(q_len):
        if not visible[i].any():
            continue  # O = 0, lse = -infinity
        m = float(np.max(s[i, visible[i]]))
        e = np.where(visible[i], _exp(np.where(visible[i], s[i] - m, 0.0)), 0.0)
        total = math.fsum(e)
        lse[i] = m + math.log(total)
        p = e / total
        if keep is not None:
            p = np.where(keep[i], p / (1.0 - options.dropout.p), 0.0)
        o[i] = [math.fsum(column) for column in (p[:, None] * v).T]
    return o, lse


def tolerances(case, options, stats, v, head_dim):
    """(atol of o, atol of lse): README.md's rule with this case's score bound."""
    score_error = ((head_dim + 2) * F32_UNIT * stats.abs_dot + 2.0**-20 * (1.0 + stats.abs_score)
                   + (options.softcap * TANH_F32 if options.softcap else 0.0))
    dropout_scale = 1.0 / (1.0 - options.dropout.p) if options.dropout else 1.0
    relative = (UNIT[case.dtype] + (2 * stats.keys + 16) * F32_UNIT
                + math.expm1(2.0 * score_error))
    return (round_up(float(np.max(np.abs(v))) * dropout_scale * relative),
            round_up(LSE_ATOL + score_error))


# --- views ---------------------------------------------------------------------------------------


def check_strides(strides):
    """head_dim contiguous, every other stride a multiple of 8 elements (llmk.h)."""
    assert strides[-1] == 1 and all(s % 8 == 0 for s in strides[:-1]), strides


def bshd(seq, heads, head_dim, row_pad):
    row = heads * head_dim + row_pad
    return (seq * row, row, head_dim, 1)


def bhsd(seq, heads, head_dim, capacity):
    """[batch, seq, heads, head_dim] view of a [batch, heads, capacity, head_dim] buffer."""
    return (heads * capacity * head_dim, head_dim, capacity * head_dim, 1)


def qkv_inputs(case, lead, q_len, kv_len, q_heads, kv_heads, head_dim, layout, q_scale):
    """q, k and v with leading dimensions `lead` ((batch,) padded, () packed); returns their
    values and o's strides. layout: ("bshd", row_pad), ("bhsd", capacity) or ("fused",), one
    [..., (q_heads + 2 kv_heads) * head_dim] buffer with q, k and v side by side."""
    q_shape = lead + (q_len, q_heads, head_dim)
    kv_shape = lead + (kv_len, kv_heads, head_dim)
    batch = lead[0] if lead else 1
    kind = layout[0]
    if kind == "fused":
        assert q_len == kv_len
        width = (q_heads + 2 * kv_heads) * head_dim
        strides = contiguous(lead + (q_len, width))[:-1] + (head_dim, 1)
        check_strides(strides)
        q = case.input("q", q_shape, strides, scale=q_scale, length=batch * q_len * width)
        k = case.view_of("k", "q", q_heads * head_dim, kv_shape, strides)
        v = case.view_of("v", "q", (q_heads + kv_heads) * head_dim, kv_shape, strides)
        return q, k, v, contiguous(q_shape)

    def strides(seq, heads):
        if kind == "bshd":
            full = bshd(seq, heads, head_dim, layout[1])
        else:
            full = bhsd(seq, heads, head_dim, layout[1])
        full = full[-len(lead) - 3:]
        check_strides(full)
        return full

    q = case.input("q", q_shape, strides(q_len, q_heads), scale=q_scale)
    k = case.input("k", kv_shape, strides(kv_len, kv_heads))
    v = case.input("v", kv_shape, strides(kv_len, kv_heads))
    return q, k, v, strides(q_len, q_heads)


def lse_strides(shape, layout):
    """lse's strides: "contiguous", "padded" (3 gap elements after each head's row of queries)
    or "transposed" (heads innermost: [batch, q_len, q_heads] or [total_q, q_heads] storage)."""
    if layout == "contiguous":
        return contiguous(shape)
    if layout == "padded":
        return contiguous(shape[:-1] + (shape[-1] + 3,))
    assert layout == "transposed"
    heads, queries = shape[-2:]
    return (queries * heads,) * (len(shape) - 2) + (1, heads)


def outputs(case, o_shape, o_strides, o, lse_shape, lse_layout, lse, atols):
    o_atol, lse_atol = atols
    case.output("o", o_shape, o_strides, o, rtol=2 * UNIT[case.dtype], atol=o_atol)
    if lse_layout is not None:
        case.output("lse", lse_shape, lse_strides(lse_shape, lse_layout), lse, dtype="f32",
                    rtol=LSE_RTOL, atol=lse_atol)


# --- llmk_attention ------------------------------------------------------------------------------


class Padded:
    """A padded batch: every sequence has q_len queries and kv_len keys. layout and lse as
    qkv_inputs and lse_strides take them (lse None: NULL); q_scale is q's standard deviation
    (k's and v's is 1): wider scores, a peakier softmax. The other options are Options'."""

    def __init__(self, label, dtypes, batch, q_len, kv_len, q_heads, kv_heads, head_dim,
                 layout=("bshd", 0), lse="contiguous", q_scale=1.5, **options):
        self.label, self.dtypes = label, dtypes
        self.batch, self.q_len, self.kv_len = batch, q_len, kv_len
        self.q_heads, self.kv_heads, self.head_dim = q_heads, kv_heads, head_dim
        self.layout, self.lse, self.q_scale = layout, lse, q_scale
        self.options = Options(**options)


def padded_case(dtype, g):
    case = Case("attention", dtype, g.label)
    b, sq, sk, hq, hk, d = g.batch, g.q_len, g.kv_len, g.q_heads, g.kv_heads, g.head_dim
    q, k, v, o_strides = qkv_inputs(case, (b,), sq, sk, hq, hk, d, g.layout, g.q_scale)
    g.options.scalars(case)
    stats = Stats()
    o = np.zeros((b, sq, hq, d))
    lse = np.zeros((b, hq, sq))
    for s in range(b):
        for h in range(hq):
            kv = h // (hq // hk)
            keep = None
            if g.options.dropout is not None:
                keep = g.options.dropout.keep(s, h, hq, sq, sk)
            o[s, :, h], lse[s, h] = attend(q[s, :, h], k[s, :, kv], v[s, :, kv], g.options, stats,
                                           keep)
    outputs(case, o.shape, o_strides, o, lse.shape, g.lse, lse,
            tolerances(case, g.options, stats, v, d))
    return case


F16, BF16, BOTH = ["f16"], ["bf16"], ["f16", "bf16"]

PADDED = [
    Padded("b2_q17_k17_h2_d64", BOTH, 2, 17, 17, 2, 2, 64),
    Padded("b1_q17_k130_h2_kv1_d64_causal", BOTH, 1, 17, 130, 2, 1, 64, causal=True),
    # q_len > kv_len: queries 0 ... 16 see no key (O = 0, lse = -infinity).
    Padded("b1_q130_k113_h1_d64_causal", BF16, 1, 130, 113, 1, 1, 64, causal=True),
    Padded("b3_q1_k1_h2_d64_no_lse", F16, 3, 1, 1, 2, 2, 64, lse=None),
    Padded("b1_q17_k64_h2_kv1_d128_window_left16", BF16, 1, 17, 64, 2, 1, 128, window_left=16),
    Padded("b1_q17_k113_h1_d96_window_l5_r3_lse_padded", BF16, 1, 17, 113, 1, 1, 96,
           lse="padded", window_left=5, window_right=3),
    # causal wins over window_right; q_len > kv_len.
    Padded("b1_q64_k17_h1_d64_causal_window_l8_r5", F16, 1, 64, 17, 1, 1, 64, causal=True,
           window_left=8, window_right=5),
    Padded("b1_q3_k17_h4_kv1_d256_mqa_softcap", BOTH, 1, 3, 17, 4, 1, 256, q_scale=3.0,
           softcap=5.0),
    Padded("b1_q17_k17_h4_kv2_d64_gqa_lse_transposed", BF16, 1, 17, 17, 4, 2, 64,
           lse="transposed"),
    Padded("b2_q3_k64_h2_kv1_d64_bhsd_causal", F16, 2, 3, 64, 2, 1, 64, layout=("bhsd", 72),
           causal=True),
    Padded("b2_s17_h2_kv1_d64_fused_qkv_causal_no_lse", BF16, 2, 17, 17, 2, 1, 64,
           layout=("fused",), lse=None, causal=True),
    Padded("b1_q1_k130_h4_kv1_d96_scale03_rows_padded", F16, 1, 1, 130, 4, 1, 96,
           layout=("bshd", 16), scale=0.3),
    Padded("b2_q17_k64_h2_kv1_d64_causal_dropout01", BF16, 2, 17, 64, 2, 1, 64, causal=True,
           dropout=Dropout(0.1, 0x0123456789ABCDEF, 7)),
    Padded("b1_q17_k17_h2_kv1_d128_window_left4_dropout05_no_lse", F16, 1, 17, 17, 2, 1, 128,
           lse=None, window_left=4, dropout=Dropout(0.5, 0xFEDCBA9876543210, 0x80000005)),
]


# --- llmk_attention_varlen -----------------------------------------------------------------------


class Varlen:
    """Packed sequences: q_lens[s] queries and k_lens[s] keys; extra_k_rows rows of k and v after
    the last sequence's (cu_seqlens_k ends before total_k); max_seqlen_q None: max(q_lens)."""

    def __init__(self, label, dtypes, q_lens, k_lens, q_heads, kv_heads, head_dim,
                 layout=("bshd", 0), lse="contiguous", q_scale=1.5, extra_k_rows=0,
                 max_seqlen_q=None, **options):
        self.label, self.dtypes = label, dtypes
        self.q_lens, self.k_lens = q_lens, k_lens
        self.q_heads, self.kv_heads, self.head_dim = q_heads, kv_heads, head_dim
        self.layout, self.lse, self.q_scale = layout, lse, q_scale
        self.extra_k_rows = extra_k_rows
        self.max_seqlen_q = max_seqlen_q or max(q_lens)
        self.options = Options(**options)


def varlen_case(dtype, g):
    case = Case("attention_varlen", dtype, g.label)
    hq, hk, d = g.q_heads, g.kv_heads, g.head_dim
    cu_q = np.concatenate([[0], np.cumsum(g.q_lens)]).astype(np.int64)
    cu_k = np.concatenate([[0], np.cumsum(g.k_lens)]).astype(np.int64)
    total_q, total_k = int(cu_q[-1]), int(cu_k[-1]) + g.extra_k_rows
    q, k, v, o_strides = qkv_inputs(case, (), total_q, total_k, hq, hk, d, g.layout, g.q_scale)
    case.ints("cu_seqlens_q", cu_q)
    case.ints("cu_seqlens_k", cu_k)
    case.scalar("max_seqlen_q", g.max_seqlen_q)
    g.options.scalars(case)
    stats = Stats()
    o = np.zeros((total_q, hq, d))
    lse = np.zeros((hq, total_q))
    for s in range(len(g.q_lens)):
        rows_q, rows_k = slice(cu_q[s], cu_q[s + 1]), slice(cu_k[s], cu_k[s + 1])
        for h in range(hq):
            kv = h // (hq // hk)
            keep = None
            if g.options.dropout is not None:
                keep = g.options.dropout.keep(s, h, hq, g.q_lens[s], g.k_lens[s])
            o[rows_q, h], lse[h, rows_q] = attend(q[rows_q, h], k[rows_k, kv], v[rows_k, kv],
                                                  g.options, stats, keep)
    outputs(case, o.shape, o_strides, o, lse.shape, g.lse, lse,
            tolerances(case, g.options, stats, v, d))
    return case


VARLEN = [
    # Every kind of sequence: q_len < kv_len, equal, an empty k (O = 0, lse = -infinity), no
    # queries, q_len > kv_len.
    Varlen("q1_17_3_0_17_k64_17_0_3_1_h2_kv1_d64_causal", BOTH, [1, 17, 3, 0, 17],
           [64, 17, 0, 3, 1], 2, 1, 64, causal=True),
    Varlen("q3_17_1_k17_0_64_h2_kv1_d96_dropout01_lse_padded", BF16, [3, 17, 1], [17, 0, 64], 2,
           1, 96, lse="padded", extra_k_rows=3, dropout=Dropout(0.1, 1234567, 3)),
    Varlen("s17_3_1_24_h2_kv1_d64_fused_qkv_causal_window_left8_no_lse", F16, [17, 3, 1, 24],
           [17, 3, 1, 24], 2, 1, 64, layout=("fused",), lse=None, causal=True, window_left=8),
    Varlen("q3_1_k17_3_h4_kv1_d256_mqa_softcap_max_seqlen5", BF16, [3, 1], [17, 3], 4, 1, 256,
           q_scale=4.0, max_seqlen_q=5, softcap=8.0),
]


def cases():
    check_philox()
    return ([padded_case(dtype, g) for g in PADDED for dtype in g.dtypes]
            + [varlen_case(dtype, g) for g in VARLEN for dtype in g.dtypes])
