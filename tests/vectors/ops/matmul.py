"""Vectors of matmul, ffn and gated_mlp.

Expected values are exact: every product of two inputs (f32, f16 or bf16) is exact in float64,
and each dot product is summed with math.fsum, so the reference is the correctly rounded float64
value of the exact result (and reproducible bit for bit, whatever BLAS numpy has). Each output's
atol is computed per case from the error bounds in README.md ("Tolerances", matmul and the MLP
blocks): the largest bound over the output's elements.
"""
import math

import numpy as np

from ops.activation import ACTIVATIONS, activate
from vectorlib import ATOL, RTOL, Case, buffer_length, round_to, round_up

DTYPES = ["f32", "f16", "bf16"]

# Unit roundoff (half an ulp, relative) of each dtype: the error of one rounding to it.
UNIT = {"f32": 2.0**-24, "f16": 2.0**-11, "bf16": 2.0**-8}
# f32 accumulation: each of the K additions (and alpha, beta C, bias) costs at most 2^-24 of the
# running sum's magnitude, which is at most sum |terms|.
ACC_UNIT = 2.0**-24
# TF32 keeps 10 explicit mantissa bits: rounding (or truncating) each f32 input costs up to 2^-10
# of it, so each product up to about 2^-9.
TF32_REL = 2.0**-9
# max |a'(x)| over all x: the most an error of the pre-activation can grow through a.
SLOPE = {"identity": 1.0, "relu": 1.0, "gelu": 1.13, "gelu_tanh": 1.13, "silu": 1.1}
# Activations that a CUDA engine may apply to a pre-activation already rounded to the dtype
# (cuBLASLt's epilogue writes GEMM + bias, one more pass applies a). For identity and ReLU that
# rounding is the output's own rounding, which rtol covers.
ROUNDED_PRE = {"gelu", "gelu_tanh", "silu"}
# cuBLASLt rounds alpha A B to the output dtype before it adds beta C, and that sum before its
# bias and activation epilogues (seen on an H200: a bf16 D with a bias or a residual C that
# cancels most of the product is off by up to half a bf16 ulp of the product). So wherever C, a
# bias or an activation follows the product, that rounding, carried through a, is one more term
# of the bound.


def epilogue_bound(dtype, activation, has_bias, product, c_term=0.0):
    """What rounding alpha A B (`product`) to the dtype before adding beta C, and the sum before
    the bias and activation, may add to the output."""
    if not has_bias and activation == "identity" and np.all(c_term == 0.0):
        return 0.0
    return SLOPE[activation] * UNIT[dtype] * (np.abs(product) + np.abs(c_term))


# --- exact products ------------------------------------------------------------------------------


def exact_matmul(a, b):
    """a [..., M, K] @ b [..., K, N] (batch dimensions broadcast), each element the correctly
    rounded float64 of the exact sum: the products are exact in float64, math.fsum sums them."""
    k = a.shape[-1]
    prod = a[..., :, :, None] * b[..., None, :, :]  # [..., M, K, N]
    out_shape = prod.shape[:-3] + (prod.shape[-3], prod.shape[-1])
    if k == 0 or 0 in out_shape:
        return np.zeros(out_shape)
    rows = np.moveaxis(prod, -2, -1).reshape(-1, k)
    return np.array([math.fsum(row) for row in rows]).reshape(out_shape)


def accumulation_bound(k, magnitude, abs_products, tf32):
    """What f32 accumulation (K products plus up to two more terms) may add to a sum whose terms'
    magnitudes sum to `magnitude`, of which `abs_products` is sum |a b|; TF32 adds its input
    rounding."""
    bound = (k + 2) * ACC_UNIT * magnitude
    if tf32:
        bound = bound + TF32_REL * abs_products
    return bound


def tolerance(dtype, bound):
    """atol for an output whose elements may be off by `bound` (an array) beyond their own
    rounding, which rtol covers: the dtype's usual atol plus the largest bound, rounded up to 3
    significant digits."""
    return round_up(ATOL[dtype] + float(np.max(bound, initial=0.0)))


# --- matmul --------------------------------------------------------------------------------------


def matrix_strides(rows, cols, layout, pad):
    """Row-major (`row`): strides (ld, 1), ld = cols + pad; column-major (`col`): (1, ld),
    ld = rows + pad."""
    return (cols + pad, 1) if layout == "row" else (1, rows + pad)


def operand_view(batch, rows, cols, layout, pad, batch_mode, batch_gap=3):
    """Shape and strides of one operand. batch None: a rank-2 D's operand. batch_mode: `own`
    (rank 3, its own batch stride, with a gap of batch_gap elements between matrices), `zero`
    (rank 3, batch stride 0: one matrix for every product), `rank2` (rank 2, broadcast)."""
    strides = matrix_strides(rows, cols, layout, pad)
    if batch is None or batch_mode == "rank2":
        return (rows, cols), strides
    if batch_mode == "zero":
        return (batch, rows, cols), (0,) + strides
    return (batch, rows, cols), (buffer_length((rows, cols), strides) + batch_gap,) + strides


def random_operand(case, role, batch, rows, cols, layout, pad, batch_mode, scale):
    shape, strides = operand_view(batch, rows, cols, layout, pad, batch_mode)
    if batch_mode == "zero" and batch is not None:
        values = np.broadcast_to(scale * case.rng.standard_normal((rows, cols)), shape)
    else:
        values = scale * case.rng.standard_normal(shape)
    return case.values(role, values, strides), shape, strides


class Matmul:
    """One matmul case's geometry and options; the defaults are nn.Linear's: A row-major, B the
    transposed view of a row-major weight, D row-major."""

    def __init__(self, label, m, n, k, **options):
        self.label, self.m, self.n, self.k = label, m, n, k
        self.a_layout = options.pop("a", "row")
        self.b_layout = options.pop("b", "col")
        self.d_layout = options.pop("d", "row")
        self.a_pad = options.pop("a_pad", 0)
        self.b_pad = options.pop("b_pad", 0)
        self.c_pad = options.pop("c_pad", 0)
        self.d_pad = options.pop("d_pad", 0)
        self.batch = options.pop("batch", None)
        self.a_batch = options.pop("a_batch", "own")
        self.b_batch = options.pop("b_batch", "own")
        self.c_batch = options.pop("c_batch", "own")
        self.with_c = options.pop("c", False)  # True, "nan" (beta 0: never read) or "inplace"
        self.bias = options.pop("bias", False)
        self.activation = options.pop("activation", "identity")
        self.alpha = options.pop("alpha", None)
        self.beta = options.pop("beta", None)
        self.path = options.pop("path", None)
        self.tf32 = options.pop("tf32", False)
        assert not options, options


def matmul_case(dtype, g):
    case = Case("matmul", dtype, g.label)
    m, n, k, batch = g.m, g.n, g.k, g.batch
    # B's scale keeps A B near unit variance, so every activation sees its curved part and tails.
    a, _, _ = random_operand(case, "a", batch, m, k, g.a_layout, g.a_pad, g.a_batch, 1.0)
    b, _, _ = random_operand(case, "b", batch, k, n, g.b_layout, g.b_pad, g.b_batch,
                             1.5 / math.sqrt(max(k, 1)))
    alpha = 1.0 if g.alpha is None else g.alpha
    beta = 0.0 if g.beta is None else g.beta
    d_shape, d_strides = operand_view(batch, m, n, g.d_layout, g.d_pad, "own")
    c = np.zeros(d_shape)
    if g.with_c == "inplace":  # C is D's very view: d=@c
        c, _, _ = random_operand(case, "c", batch, m, n, g.d_layout, g.d_pad, "own", 1.0)
    elif g.with_c == "nan":  # beta == 0: C is not read, so its NaN must not reach D
        assert beta == 0.0
        c_shape, c_strides = operand_view(batch, m, n, g.d_layout, g.c_pad, g.c_batch)
        case.values("c", np.full(c_shape, np.nan), c_strides)
    elif g.with_c:
        c, _, _ = random_operand(case, "c", batch, m, n, g.d_layout, g.c_pad, g.c_batch, 1.0)
    bias = np.zeros(n)
    if g.bias:
        bias = case.input("bias", (n,), (1,), scale=0.5)
    if g.alpha is not None:
        case.scalar("alpha", g.alpha)
    if g.beta is not None:
        case.scalar("beta", g.beta)
    if g.activation != "identity":
        case.scalar("activation", g.activation)
    if g.tf32:
        case.scalar("allow_tf32", 1)
    if g.path is not None:
        case.scalar("path", g.path)

    ab = exact_matmul(a, b)
    abs_ab = exact_matmul(np.abs(a), np.abs(b))
    c_term = beta * c if g.with_c != "nan" else 0.0
    pre = alpha * ab + c_term + bias
    d = np.broadcast_to(activate(g.activation, pre), d_shape)
    magnitude = abs(alpha) * abs_ab + np.abs(c_term) + np.abs(bias)
    bound = SLOPE[g.activation] * accumulation_bound(k, magnitude, abs(alpha) * abs_ab, g.tf32)
    if g.activation in ROUNDED_PRE:
        bound = bound + SLOPE[g.activation] * UNIT[dtype] * np.abs(pre)
    bound = bound + epilogue_bound(dtype, g.activation, g.bias, alpha * ab, c_term)
    atol = tolerance(dtype, bound)
    if g.with_c == "inplace":
        case.alias("d", "c", d_shape, d_strides, d, rtol=RTOL[dtype], atol=atol)
    else:
        case.output("d", d_shape, d_strides, d, rtol=RTOL[dtype], atol=atol)
    return case


# Geometries of every dtype: layouts, sizes, batches, alpha/beta, in place. (K == 0 is refused
# with LLMK_ERROR_UNSUPPORTED, which a vector cannot express: tests/ops/matmul_test.cpp checks it.)
LAYOUTS = [
    Matmul("m1_n1_k1_rowmajor", 1, 1, 1, b="row"),
    Matmul("m3_n11_k17_rowmajor_bias_gelu", 3, 11, 17, b="row", bias=True, activation="gelu"),
    Matmul("m17_n33_k45_acol_padded", 17, 33, 45, a="col", a_pad=3, b="row", b_pad=5, d_pad=2,
           bias=True, activation="silu"),
    Matmul("m5_n24_k40_linear_relu", 5, 24, 40, bias=True, activation="relu"),
    Matmul("m17_n24_k300_linear_padded", 17, 24, 300, a_pad=4, b_pad=8, bias=True,
           activation="gelu_tanh"),
    Matmul("m3_n257_k24_linear_silu", 3, 257, 24, activation="silu"),
    Matmul("m7_n19_k23_dcol_c_beta", 7, 19, 23, b="row", d="col", d_pad=1, c=True, c_pad=4,
           beta=0.5, activation="gelu_tanh"),
    Matmul("m9_n13_k31_allcol_padded", 9, 13, 31, a="col", a_pad=2, b="col", b_pad=1, d="col",
           d_pad=3),
    Matmul("m6_n10_k12_alpha_beta_bias_silu", 6, 10, 12, c=True, c_pad=2, alpha=-0.75, beta=1.25,
           bias=True, activation="silu"),
    Matmul("m3_n4_k5_alpha0", 3, 4, 5, c=True, alpha=0.0, beta=1.0, bias=True),
    Matmul("m5_n9_k7_beta0_c_nan", 5, 9, 7, c="nan", c_pad=1, beta=0.0, bias=True,
           activation="gelu"),
    Matmul("m4_n16_k32_inplace_residual", 4, 16, 32, c="inplace", beta=1.0),
    Matmul("m6_n5_k9_inplace_dcol", 6, 5, 9, a="col", b="row", d="col", d_pad=2, c="inplace",
           alpha=2.0, beta=-0.5, activation="silu"),
    # Batches: [batch, ...] operands with their own batch strides (and gaps), stride 0, rank 2.
    Matmul("b3_m5_n7_k9_batch_strides", 5, 7, 9, batch=3, a="col", b="row", d_pad=1, c=True,
           c_pad=2, beta=1.0, bias=True, activation="gelu"),
    Matmul("b2_m4_n6_k8_b_stride0", 4, 6, 8, batch=2, b_batch="zero", bias=True,
           activation="relu"),
    Matmul("b3_m3_n5_k7_a_rank2_c_rank2", 3, 5, 7, batch=3, a_batch="rank2", c=True,
           c_batch="rank2", beta=-1.0),
    Matmul("b2_m5_n4_k6_dcol_c_stride0", 5, 4, 6, batch=2, a="col", b="row", d="col", d_pad=1,
           c=True, c_batch="zero", beta=0.5, activation="gelu_tanh"),
    Matmul("b4_m1_n8_k16_b_rank2", 1, 8, 16, batch=4, b_batch="rank2", bias=True),
]


def gemv_geometries():
    """Calls the GEMV engine takes on CUDA (batch 1, M <= 16, B column-major, A, C and D
    row-major, leading dimensions of A and B multiples of 16 bytes for every dtype): path=gemv
    forces it, and the same shapes also run with path=cublaslt."""
    g = [Matmul("m1_n40_k192_gemv_bias_silu", 1, 40, 192, bias=True, activation="silu",
                path="gemv")]
    for path in ["gemv", "cublaslt"]:
        g += [
            Matmul(f"m16_n24_k96_{path}_padded_gelu", 16, 24, 96, a_pad=8, d_pad=5,
                   activation="gelu", path=path),
            Matmul(f"m5_n33_k37_{path}_padded_c_alpha_beta", 5, 33, 37, a_pad=3, b_pad=3,
                   c=True, c_pad=1, alpha=0.5, beta=0.5, bias=True, activation="gelu_tanh",
                   path=path),
        ]
    g += [
        Matmul("m3_n40_k72_gemv_relu", 3, 40, 72, activation="relu", path="gemv"),
        Matmul("m2_n16_k64_gemv_inplace_residual", 2, 16, 64, c="inplace", beta=1.0,
               path="gemv"),
        Matmul("m7_n19_k23_dcol_cublaslt", 7, 19, 23, a="col", d="col", path="cublaslt"),
        Matmul("b2_m3_n8_k16_batch_cublaslt", 3, 8, 16, batch=2, bias=True, activation="silu",
               path="cublaslt"),
        Matmul("m4_n12_k32_auto", 4, 12, 32, bias=True, activation="gelu", path="auto"),
    ]
    return g


TF32 = [
    Matmul("m9_n24_k160_tf32_bias_gelu", 9, 24, 160, bias=True, activation="gelu", tf32=True),
    Matmul("b2_m4_n16_k64_tf32_cublaslt", 4, 16, 64, batch=2, c=True, beta=0.5, tf32=True,
           path="cublaslt"),
    Matmul("m2_n24_k96_tf32_gemv", 2, 24, 96, bias=True, activation="silu", tf32=True,
           path="gemv"),
]


def matmul_cases():
    cases = []
    for dtype in DTYPES:
        for g in LAYOUTS + gemv_geometries():
            cases.append(matmul_case(dtype, g))
        # Every activation with and without bias, on the nn.Linear layout.
        for activation in ACTIVATIONS:
            for bias in [False, True]:
                label = f"m6_n20_k48_{activation}" + ("_bias" if bias else "")
                cases.append(matmul_case(dtype, Matmul(label, 6, 20, 48, bias=bias,
                                                       activation=activation)))
    cases += [matmul_case("f32", g) for g in TF32]
    return cases


# --- ffn and gated_mlp ---------------------------------------------------------------------------


class Mlp:
    """One ffn or gated_mlp case. Pads are added to row strides (x, y, the weights); `fused`
    (gated_mlp): w_up is the next d_ff rows of w_gate's buffer."""

    def __init__(self, label, tokens, d_model, d_ff, **options):
        self.label, self.tokens, self.d_model, self.d_ff = label, tokens, d_model, d_ff
        self.x_pad = options.pop("x_pad", 0)
        self.y_pad = options.pop("y_pad", 0)
        self.w1_pad = options.pop("w1_pad", 0)  # w1 / w_gate (and a fused w_up)
        self.w2_pad = options.pop("w2_pad", 0)  # w2 / w_down
        self.up_pad = options.pop("up_pad", 0)  # a separate w_up
        self.b1 = options.pop("b1", False)
        self.b2 = options.pop("b2", False)
        self.fused = options.pop("fused", True)
        self.path = options.pop("path", None)
        self.tf32 = options.pop("tf32", False)
        assert not options, options


def mlp_options(case, g, activation):
    case.scalar("activation", activation)
    if g.tf32:
        case.scalar("allow_tf32", 1)
    if g.path is not None:
        case.scalar("path", g.path)


def ffn_case(dtype, g, activation):
    case = Case("ffn", dtype, f"{activation}/{g.label}")
    t, dm, dff = g.tokens, g.d_model, g.d_ff
    x = case.input("x", (t, dm), (dm + g.x_pad, 1))
    w1 = case.input("w1", (dff, dm), (dm + g.w1_pad, 1), scale=1.5 / math.sqrt(dm))
    b1 = case.input("b1", (dff,), (1,), scale=0.5) if g.b1 else np.zeros(dff)
    w2 = case.input("w2", (dm, dff), (dff + g.w2_pad, 1), scale=1.0 / math.sqrt(dff))
    b2 = case.input("b2", (dm,), (1,), scale=0.5) if g.b2 else np.zeros(dm)
    mlp_options(case, g, activation)

    pre = exact_matmul(x, w1.T) + b1
    h = round_to(dtype, activate(activation, pre))  # stored in the dtype
    y = exact_matmul(h, w2.T) + b2

    slope, unit = SLOPE[activation], UNIT[dtype]
    abs_xw = exact_matmul(np.abs(x), np.abs(w1.T))
    h_error = slope * accumulation_bound(dm, abs_xw + np.abs(b1), abs_xw, g.tf32)
    if activation in ROUNDED_PRE:
        h_error = h_error + slope * unit * np.abs(pre)
    h_error = h_error + epilogue_bound(dtype, activation, g.b1, pre - b1)
    h_error = h_error + 2 * unit * np.abs(h)  # the engine's h and ours: each rounded once
    abs_hw = exact_matmul(np.abs(h), np.abs(w2.T))
    bound = exact_matmul(h_error, np.abs(w2.T)) + accumulation_bound(
        dff, abs_hw + np.abs(b2), abs_hw, g.tf32)
    bound = bound + epilogue_bound(dtype, "identity", g.b2, y - b2)
    case.output("y", (t, dm), (dm + g.y_pad, 1), y, rtol=RTOL[dtype], atol=tolerance(dtype, bound))
    return case


def gated_mlp_case(dtype, g, activation):
    case = Case("gated_mlp", dtype, f"{activation}/{g.label}")
    t, dm, dff = g.tokens, g.d_model, g.d_ff
    x = case.input("x", (t, dm), (dm + g.x_pad, 1))
    w_scale = 1.5 / math.sqrt(dm)
    w_strides = (dm + g.w1_pad, 1)
    if g.fused:  # vLLM's gate_up weight [2 d_ff, d_model]: w_up is rows d_ff ... 2 d_ff - 1
        length = buffer_length((2 * dff, dm), w_strides)
        w_gate = case.input("w_gate", (dff, dm), w_strides, scale=w_scale, length=length)
        w_up = case.view_of("w_up", "w_gate", dff * w_strides[0], (dff, dm), w_strides,
                            scale=w_scale)
    else:
        w_gate = case.input("w_gate", (dff, dm), w_strides, scale=w_scale)
        w_up = case.input("w_up", (dff, dm), (dm + g.up_pad, 1), scale=w_scale)
    w_down = case.input("w_down", (dm, dff), (dff + g.w2_pad, 1), scale=1.0 / math.sqrt(dff))
    mlp_options(case, g, activation)

    gate = exact_matmul(x, w_gate.T)
    up = exact_matmul(x, w_up.T)
    act = activate(activation, gate)
    h = round_to(dtype, act * up)  # stored in the dtype
    y = exact_matmul(h, w_down.T)

    slope, unit = SLOPE[activation], UNIT[dtype]
    abs_xg = exact_matmul(np.abs(x), np.abs(w_gate.T))
    abs_xu = exact_matmul(np.abs(x), np.abs(w_up.T))
    # gate and up as an engine may hold them: f32 sums, maybe rounded to the dtype.
    gate_error = accumulation_bound(dm, abs_xg, abs_xg, g.tf32) + unit * np.abs(gate)
    up_error = accumulation_bound(dm, abs_xu, abs_xu, g.tf32) + unit * np.abs(up)
    h_error = (slope * gate_error * (np.abs(up) + up_error) + np.abs(act) * up_error
               + 2 * unit * np.abs(h))
    abs_hw = exact_matmul(np.abs(h), np.abs(w_down.T))
    bound = exact_matmul(h_error, np.abs(w_down.T)) + accumulation_bound(
        dff, abs_hw, abs_hw, g.tf32)
    case.output("y", (t, dm), (dm + g.y_pad, 1), y, rtol=RTOL[dtype], atol=tolerance(dtype, bound))
    return case


# d_model 24, d_ff 64: about Llama's ratio, small. Every row stride is a multiple of 16 bytes in every
# dtype (the GEMV engine's condition) unless the label says odd.
FFN = [
    Mlp("t1_dm24_dff64_gemv", 1, 24, 64, b1=True, b2=True, path="gemv"),
    Mlp("t3_dm24_dff64_padded_gemv", 3, 24, 64, x_pad=8, y_pad=3, w1_pad=8, w2_pad=8, b1=True,
        path="gemv"),
    Mlp("t3_dm24_dff64_cublaslt", 3, 24, 64, b2=True, path="cublaslt"),
    Mlp("t16_dm24_dff64_nobias", 16, 24, 64),
    Mlp("t17_dm24_dff64", 17, 24, 64, b1=True, b2=True),
    Mlp("t5_dm20_dff53_odd", 5, 20, 53, x_pad=1, y_pad=2, w1_pad=3, w2_pad=1, b1=True, b2=True),
    Mlp("t33_dm24_dff64", 33, 24, 64, b1=True, b2=True),
]
FFN_TF32 = [
    Mlp("t3_dm24_dff64_tf32_cublaslt", 3, 24, 64, b1=True, b2=True, path="cublaslt", tf32=True),
    Mlp("t17_dm24_dff64_tf32", 17, 24, 64, b1=True, tf32=True),
]

GATED = [
    Mlp("t1_dm24_dff64_fused_gemv", 1, 24, 64, path="gemv"),
    Mlp("t3_dm24_dff64_fused_padded_gemv", 3, 24, 64, x_pad=8, y_pad=5, w1_pad=8, w2_pad=8,
        path="gemv"),
    Mlp("t3_dm24_dff64_separate_gemv", 3, 24, 64, fused=False, up_pad=16, path="gemv"),
    Mlp("t3_dm24_dff64_fused_cublaslt", 3, 24, 64, path="cublaslt"),
    Mlp("t16_dm24_dff64_fused", 16, 24, 64),
    Mlp("t17_dm24_dff64_separate", 17, 24, 64, fused=False, w1_pad=4, up_pad=8),
    Mlp("t5_dm20_dff53_fused_odd", 5, 20, 53, x_pad=1, y_pad=2, w1_pad=3, w2_pad=1),
    Mlp("t33_dm24_dff64_fused", 33, 24, 64),
]
GATED_TF32 = [
    Mlp("t3_dm24_dff64_fused_tf32_cublaslt", 3, 24, 64, path="cublaslt", tf32=True),
    Mlp("t17_dm24_dff64_separate_tf32", 17, 24, 64, fused=False, tf32=True),
]


def mlp_cases():
    cases = []
    for dtype_index, dtype in enumerate(DTYPES):
        # The activation takes turns, so that each one meets every dtype and several geometries.
        for i, g in enumerate(FFN):
            cases.append(ffn_case(dtype, g, ACTIVATIONS[(i + dtype_index) % len(ACTIVATIONS)]))
        for i, g in enumerate(GATED):
            # SwiGLU (the common case) in every geometry of bf16; elsewhere the others take turns.
            activation = "silu" if dtype == "bf16" else ACTIVATIONS[(i + 2 * dtype_index) % 5]
            cases.append(gated_mlp_case(dtype, g, activation))
    cases += [ffn_case("f32", g, "gelu") for g in FFN_TF32]
    cases += [gated_mlp_case("f32", g, "silu") for g in GATED_TF32]
    return cases


def cases():
    return matmul_cases() + mlp_cases()
