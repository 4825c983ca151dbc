"""Vectors of rope: NeoX and GPT-J styles in every dtype, partial rotary, Llama 3.1 frequency
scaling, vLLM cos/sin caches (f32 and q's dtype), i32 and i64 positions (strided, large and
negative ones), q and k as slices of one fused QKV buffer, and k absent."""
import numpy as np

from vectorlib import Case

# f32: the GPU reduces each angle to r in [-1, 1] half-turns in f64 and rounds r to f32 before
# sincospif, so cos and sin carry an absolute error up to ~1.5e-7 (pi * 2^-25 from the rounding,
# plus an ulp of sincospif). A rotated value then errs by ~1.5e-7 * |(x, y)|, up to ~1e-6 for
# the normal(0, 1) inputs here, whatever the size of the result: outputs that cancel to near zero
# need an absolute allowance above the default 1e-6.
F32_ATOL = 3e-6


def inv_freq(rotary_dim, theta, llama3=None):
    """Pair i's angle per position; llama3 = (factor, low_freq_factor, high_freq_factor,
    original_max_position), applied as llmk.h (and Hugging Face's Llama 3.1) describe."""
    i = np.arange(rotary_dim // 2, dtype=np.float64)
    f = theta ** (-2.0 * i / rotary_dim)
    if llama3 is not None:
        factor, lo, hi, context = llama3
        wavelength = 2.0 * np.pi / f
        s = (context / wavelength - lo) / (hi - lo)
        blended = (1.0 - s) * f / factor + s * f
        f = np.where(wavelength > context / lo, f / factor,
                     np.where(wavelength < context / hi, f, blended))
    return f


def rope_ref(x, cos, sin, style, rotary_dim):
    """x: [tokens, heads, head_dim]; cos, sin: [tokens, rotary_dim / 2]."""
    out = x.copy()
    half = rotary_dim // 2
    c, s = cos[:, None, :], sin[:, None, :]
    if style == "neox":
        a, b = x[..., :half], x[..., half:rotary_dim]
        out[..., :half] = a * c - b * s
        out[..., half:rotary_dim] = b * c + a * s
    else:
        a, b = x[..., 0:rotary_dim:2], x[..., 1:rotary_dim:2]
        out[..., 0:rotary_dim:2] = a * c - b * s
        out[..., 1:rotary_dim:2] = b * c + a * s
    return out


def tolerance(dtype):
    return {"atol": F32_ATOL} if dtype == "f32" else {}


class Spec:
    """One case's geometry and options."""

    def __init__(self, label, tokens, q_heads, kv_heads, head_dim, style="neox", rotary_dim=0,
                 theta=10000.0, llama3=None, positions=None, positions_dtype="i32",
                 positions_stride=1, fused=False, cache=None, cache_rows=0, cache_row_pad=0,
                 head_pad=0):
        self.label = label
        self.tokens, self.q_heads, self.kv_heads, self.head_dim = tokens, q_heads, kv_heads, head_dim
        self.style, self.rotary_dim, self.theta, self.llama3 = style, rotary_dim, theta, llama3
        self.positions = positions
        self.positions_dtype, self.positions_stride = positions_dtype, positions_stride
        self.fused = fused  # q, k (and an untouched v) as slices of one [tokens, ...] buffer
        self.cache = cache  # None, "f32" or "same" (q's dtype)
        self.cache_rows, self.cache_row_pad = cache_rows, cache_row_pad
        self.head_pad = head_pad  # elements between heads (separate q and k only)


def build(spec, dtype):
    case = Case("rope", dtype, spec.label)
    t, hq, hk, d = spec.tokens, spec.q_heads, spec.kv_heads, spec.head_dim
    rotary_dim = spec.rotary_dim or d
    pairs = rotary_dim // 2

    if spec.positions is not None:
        positions = np.asarray(spec.positions, dtype=np.int64)
    else:
        high = spec.cache_rows if spec.cache else 4096
        positions = case.rng.integers(0, high, size=t)
    case.ints("positions", positions, strides=(spec.positions_stride,),
              dtype=spec.positions_dtype)

    if spec.fused:
        width = (hq + 2 * hk) * d  # [q | k | v] per token; v is never touched
        q_strides = (width, d, 1)
        q = case.input("q", (t, hq, d), q_strides, length=t * width)
        k = case.view_of("k", "q", hq * d, (t, hk, d), q_strides) if hk else None
    else:
        q_strides = (hq * (d + spec.head_pad) + 8, d + spec.head_pad, 1)
        q = case.input("q", (t, hq, d), q_strides)
        k = None
        if hk:
            k = case.input("k", (t, hk, d), (hk * (d + spec.head_pad), d + spec.head_pad, 1))

    case.scalar("style", spec.style)
    if spec.rotary_dim:
        case.scalar("rotary_dim", spec.rotary_dim)
    if spec.cache:
        angles = np.arange(spec.cache_rows, dtype=np.float64)[:, None] * inv_freq(
            rotary_dim, spec.theta)[None, :]
        rows = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
        cache_dtype = "f32" if spec.cache == "f32" else dtype
        row_stride = rotary_dim + spec.cache_row_pad
        table = case.values("cos_sin_cache", rows, strides=(row_stride, 1), dtype=cache_dtype)
        cos, sin = table[positions, :pairs], table[positions, pairs:]
    else:
        if spec.theta != 10000.0:
            case.scalar("theta", spec.theta)
        if spec.llama3 is not None:
            factor, lo, hi, context = spec.llama3
            case.scalar("llama3_factor", factor)
            case.scalar("llama3_low_freq_factor", lo)
            case.scalar("llama3_high_freq_factor", hi)
            case.scalar("llama3_original_max_position", context)
        angles = positions.astype(np.float64)[:, None] * inv_freq(
            rotary_dim, spec.theta, spec.llama3)[None, :]
        cos, sin = np.cos(angles), np.sin(angles)

    case.expect("q", rope_ref(q, cos, sin, spec.style, rotary_dim), **tolerance(dtype))
    if k is not None:
        case.expect("k", rope_ref(k, cos, sin, spec.style, rotary_dim), **tolerance(dtype))
    return case


LLAMA3 = (8.0, 1.0, 4.0, 8192.0)
LARGE_POSITIONS = [0, 1, 100000, 1000000, -7, 65535, 10000000]


def specs():
    every_dtype = [
        Spec("neox_t3_h4_kv2_d64", 3, 4, 2, 64),
        Spec("gptj_t17_h3_kv1_d16_i64", 17, 3, 1, 16, style="gptj", positions_dtype="i64"),
        Spec("neox_fused_qkv_t17_h2_kv1_d32", 17, 2, 1, 32, fused=True),
        Spec("gptj_fused_qkv_t3_h3_kv3_d32", 3, 3, 3, 32, style="gptj", fused=True),
        Spec("neox_partial_t5_h3_kv1_d80_r32", 5, 3, 1, 80, rotary_dim=32),
        Spec("gptj_partial_t3_h2_kv2_d64_r16_padded_heads", 3, 2, 2, 64, style="gptj",
             rotary_dim=16, head_pad=8),
        Spec("neox_no_k_t1_h3_d16", 1, 3, 0, 16),
        Spec("neox_large_positions_i64_strided", len(LARGE_POSITIONS), 2, 1, 64,
             positions=LARGE_POSITIONS, positions_dtype="i64", positions_stride=3),
        Spec("gptj_large_positions_i32", len(LARGE_POSITIONS), 1, 1, 64, style="gptj",
             positions=LARGE_POSITIONS),
        Spec("neox_llama3_t9_h1_kv1_d64", 9, 1, 1, 64, theta=500000.0, llama3=LLAMA3,
             positions=[0, 5, 1000, 2047, 8191, 8192, 20000, 100000, 131071]),
        Spec("neox_cache_f32_t17_h1_kv1_d48_r32", 17, 1, 1, 48, rotary_dim=32, cache="f32",
             cache_rows=40, cache_row_pad=4),
        Spec("gptj_cache_same_dtype_t3_h3_kv1_d32", 3, 3, 1, 32, style="gptj", cache="same",
             cache_rows=20, positions_dtype="i64", positions_stride=2),
        # Rows of 20 elements (40 bytes in 16-bit types): no 16-byte packs, the scalar path.
        Spec("neox_d20_fused_scalar_t3_h3_kv1", 3, 3, 1, 20, fused=True),
        Spec("gptj_d20_scalar_t17_h1_kv1", 17, 1, 1, 20, style="gptj", theta=500000.0),
    ]
    return every_dtype


def cases():
    return [build(spec, dtype) for spec in specs() for dtype in ["f32", "f16", "bf16"]]
