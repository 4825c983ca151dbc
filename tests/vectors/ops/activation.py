"""Vectors of bias_activation and gated_activation."""
import math

import numpy as np

from vectorlib import Case, buffer_length

DTYPES = ["f32", "f16", "bf16"]
ACTIVATIONS = ["identity", "gelu", "gelu_tanh", "silu", "relu"]
# Wide enough that GELU and SiLU reach their tails (|x| up to ~10).
X_SCALE = 2.5

_erfc = np.vectorize(math.erfc)


def activate(name, x):
    if name == "identity":
        return x
    if name == "gelu":  # x * Phi(x), Phi(x) = erfc(-x / sqrt(2)) / 2: no cancellation for x < 0
        return 0.5 * x * _erfc(-x / math.sqrt(2.0))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(name)


def fused_gate_up(case, shape, strides, n):
    """The [gate | up] layout of vLLM's silu_and_mul: each row of one buffer holds gate's n
    elements, then up's. `shape` and `strides` are gate's view (up's is the same, n elements
    further). Returns the values of gate and up."""
    gate = case.input("gate", shape, strides, scale=X_SCALE,
                      length=buffer_length(shape, strides) + n)
    up = case.view_of("up", "gate", n, shape, strides)
    return gate, up


# --- bias_activation ---------------------------------------------------------------------------

# label, shape of x, strides of x, strides of y (None: in place, y=@x), with a bias.
BIAS_GEOMETRIES = [
    ("r1_n1", (1, 1), (1, 1), (1, 1), True),
    ("r5_n3_strided", (5, 3), (5, 1), (4, 1), False),
    ("r7_n17_inplace", (7, 17), (20, 1), None, True),
    ("r3_n64_strided_aligned", (3, 64), (72, 1), (80, 1), False),
    # [batch, seq, n] views whose leading dimensions do not merge.
    ("b2_s3_n24_3d", (2, 3, 24), (3 * 40 + 8, 40, 1), (3 * 24 + 24, 24, 1), True),
]

# Long rows, each in one (activation, dtype) case only, to keep the data small.
BIAS_LARGE = {
    ("gelu", "f16"): ("r1_n4097", (1, 4097), (4097, 1), (4097, 1), True),
    ("gelu", "bf16"): ("r1_n5504", (1, 5504), (5504, 1), (5504, 1), True),
    ("silu", "f32"): ("r1_n4096_inplace", (1, 4096), (4096, 1), None, False),
}


def bias_activation_cases():
    cases = []
    for activation in ACTIVATIONS:
        for dtype in DTYPES:
            geometries = list(BIAS_GEOMETRIES)
            if (activation, dtype) in BIAS_LARGE:
                geometries.append(BIAS_LARGE[(activation, dtype)])
            for label, shape, x_strides, y_strides, with_bias in geometries:
                case = Case("bias_activation", dtype, f"{activation}/{label}")
                x = case.input("x", shape, x_strides, scale=X_SCALE)
                pre = x
                if with_bias:
                    pre = x + case.input("bias", (shape[-1],), (1,), scale=0.5)
                case.scalar("activation", activation)
                y = activate(activation, pre)
                if y_strides is None:
                    case.alias("y", "x", shape, x_strides, y)
                else:
                    case.output("y", shape, y_strides, y)
                cases.append(case)
    return cases


# --- gated_activation --------------------------------------------------------------------------

def gated_fused(label, shape, row_stride, y_strides):
    """[gate | up] rows of `row_stride` elements; y_strides None: y=@gate; "up": y is up's view."""
    n = shape[-1]
    strides = (row_stride, 1) if len(shape) == 2 else (shape[1] * row_stride + 8, row_stride, 1)
    return label, "fused", shape, strides, None, y_strides, n


def gated_separate(label, shape, gate_strides, up_strides, y_strides):
    return label, "separate", shape, gate_strides, up_strides, y_strides, shape[-1]


GATED_GEOMETRIES = [
    # n odd: up starts an odd number of elements into the buffer, misaligned for 16-byte access.
    gated_fused("r1_n1_fused", (1, 1), 2, (1, 1)),
    gated_fused("r5_n3_fused_strided", (5, 3), 6, (4, 1)),
    gated_fused("r7_n17_fused_inplace_gate", (7, 17), 34, None),
    gated_fused("r3_n16_fused_inplace_up", (3, 16), 40, "up"),
    gated_fused("b2_s3_n24_fused_3d", (2, 3, 24), 56, (3 * 24 + 24, 24, 1)),
    gated_separate("r4_n8_separate_strided", (4, 8), (10, 1), (9, 1), (8, 1)),
]

GATED_LARGE = {
    ("silu", "bf16"): gated_fused("r1_n5504_fused", (1, 5504), 2 * 5504, (5504, 1)),
    ("gelu", "f16"): gated_fused("r1_n4097_fused", (1, 4097), 2 * 4097, (4097, 1)),
    ("gelu_tanh", "f32"): gated_separate("r2_n256_separate", (2, 256), (264, 1), (256, 1),
                                         (256, 1)),
}


def gated_activation_cases():
    cases = []
    for activation in ACTIVATIONS:
        for dtype in DTYPES:
            geometries = list(GATED_GEOMETRIES)
            if (activation, dtype) in GATED_LARGE:
                geometries.append(GATED_LARGE[(activation, dtype)])
            for label, layout, shape, strides, up_strides, y_strides, n in geometries:
                case = Case("gated_activation", dtype, f"{activation}/{label}")
                if layout == "fused":
                    gate, up = fused_gate_up(case, shape, strides, n)
                    up_strides = strides
                else:
                    gate = case.input("gate", shape, strides, scale=X_SCALE)
                    up = case.input("up", shape, up_strides)
                case.scalar("activation", activation)
                y = activate(activation, gate) * up
                if y_strides is None:
                    case.alias("y", "gate", shape, strides, y)
                elif y_strides == "up":  # in place over up's columns of the fused buffer
                    case.alias("y", "up", shape, up_strides, y)
                else:
                    case.output("y", shape, y_strides, y)
                cases.append(case)
    return cases


def cases():
    return bias_activation_cases() + gated_activation_cases()
