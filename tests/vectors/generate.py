#!/usr/bin/env python3
"""Writes llmk's shared test vectors: tests/vectors/manifest.txt and tests/vectors/data/*.npy.

Expected outputs are computed here in float64 with numpy, independently of llmk. The format is
described in tests/vectors/README.md. Every random draw comes from a generator seeded by the case
name, so rerunning this script reproduces the files bit for bit.
"""
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# Filled into the gaps of strided input buffers: a kernel that reads a gap gets a visibly wrong
# answer instead of a plausible one.
GAP_VALUE = 1000.0

# Tolerances, per output dtype; README.md says why they are enough.
RTOL = {"f32": 1e-5, "f16": 2.0**-10, "bf16": 2.0**-7}
ATOL = {"f32": 1e-6, "f16": 1e-5, "bf16": 1e-5}


# --- dtypes ------------------------------------------------------------------------------------


def round_to(dtype, values):
    """Rounds float64 values to the nearest value of `dtype` (ties to even), returned as float64."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "f32":
        return values.astype(np.float32).astype(np.float64)
    if dtype == "f16":
        return values.astype(np.float16).astype(np.float64)
    if dtype == "bf16":
        # bfloat16 keeps 8 significant bits. Rounding the float64 significand directly avoids the
        # double rounding of going through float32 first. (The values here are far from bf16's
        # subnormal and overflow ranges.)
        mantissa, exponent = np.frexp(values)
        return np.ldexp(np.rint(mantissa * 256.0) / 256.0, exponent)
    raise ValueError(dtype)


def storage(dtype, values):
    """Float64 values already representable in `dtype`, as the array stored in the .npy file."""
    if dtype == "f32":
        return values.astype(np.float32)
    if dtype == "f16":
        return values.astype(np.float16)
    if dtype == "bf16":
        bits = values.astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0), "value not representable in bf16"
        return (bits >> 16).astype(np.uint16)
    raise ValueError(dtype)


# --- views -------------------------------------------------------------------------------------


def buffer_length(shape, strides):
    if any(n == 0 for n in shape):
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides))


def view_indices(shape, strides):
    """Buffer index of every view element, in C order of the view."""
    index = np.zeros(shape, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(shape, strides)):
        index_shape = [1] * len(shape)
        index_shape[axis] = n
        index = index + (np.arange(n, dtype=np.int64) * s).reshape(index_shape)
    return index


# --- references (float64) ----------------------------------------------------------------------


def rms_norm_ref(x, weight, eps):
    mean_square = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(mean_square + eps) * weight


def layer_norm_ref(x, weight, bias, eps):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * weight
    return y if bias is None else y + bias


# --- cases -------------------------------------------------------------------------------------


class Case:
    def __init__(self, op, dtype, label):
        self.name = f"{op}/{dtype}/{label}"
        self.op = op
        self.dtype = dtype
        self.tokens = [f"name={self.name}", f"op={op}"]
        seed = int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "little")
        self.rng = np.random.default_rng(seed)
        self.files = {}

    def _file(self, role, suffix):
        base = self.name.replace("/", ".")
        return f"{base}.{role}{suffix}.npy"

    def _view_tokens(self, role, shape, strides, dtype):
        self.tokens += [
            f"{role}.dtype={dtype}",
            f"{role}.shape={','.join(map(str, shape))}",
            f"{role}.strides={','.join(map(str, strides))}",
        ]

    def input(self, role, shape, strides, scale=1.0, offset=0.0):
        """A random input view; returns its values (float64, exact in the dtype)."""
        values = round_to(self.dtype, offset + scale * self.rng.standard_normal(shape))
        buffer = np.full(buffer_length(shape, strides), GAP_VALUE)
        buffer[view_indices(shape, strides)] = values
        file = self._file(role, "")
        self.files[file] = storage(self.dtype, buffer)
        self._view_tokens(role, shape, strides, self.dtype)
        self.tokens.append(f"{role}={file}")
        return values

    def output(self, role, shape, strides, expected):
        self._view_tokens(role, shape, strides, self.dtype)
        self.expect(role, expected)

    def alias(self, role, other, shape, strides, expected):
        self._view_tokens(role, shape, strides, self.dtype)
        self.tokens.append(f"{role}=@{other}")
        self.expect(role, expected)

    def expect(self, role, expected):
        file = self._file(role, ".expect")
        self.files[file] = np.ascontiguousarray(expected, dtype=np.float64)
        self.tokens += [
            f"expect.{role}={file}",
            f"rtol.{role}={RTOL[self.dtype]!r}",
            f"atol.{role}={ATOL[self.dtype]!r}",
        ]

    def scalar(self, key, value):
        self.tokens.append(f"{key}={value!r}")

    def line(self):
        return " ".join(self.tokens)


# A norm case's geometry: the shape of x, and the strides of x and y (y=None: in place).
class Geometry:
    def __init__(self, label, shape, x_strides, y_strides, residual_strides=None):
        self.label = label
        self.shape = shape
        self.x_strides = x_strides
        self.y_strides = y_strides
        self.residual_strides = residual_strides or x_strides


def contiguous(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def geometries(large_hidden):
    g = []
    g.append(Geometry("r1_h1", (1, 1), (1, 1), (1, 1)))
    g.append(Geometry("r5_h3_strided", (5, 3), (5, 1), (4, 1), (7, 1)))
    g.append(Geometry("r7_h17_inplace", (7, 17), (20, 1), None, (17, 1)))
    g.append(Geometry("r2_h4095_strided", (2, 4095), (4100, 1), (4097, 1), (4104, 1)))
    g.append(Geometry("r2_h4096_inplace_strided", (2, 4096), (4160, 1), None, (4104, 1)))
    g.append(Geometry(f"r1_h{large_hidden}", (1, large_hidden), contiguous((1, large_hidden)),
                      contiguous((1, large_hidden))))
    # Leading dimensions that cannot be merged into one row stride: [batch, seq, hidden] views.
    g.append(Geometry("b2_s3_h64_3d", (2, 3, 64), (3 * 72 + 8, 72, 1), (3 * 64 + 64, 64, 1),
                      (3 * 80, 80, 1)))
    return g


LARGE_HIDDEN = [5120, 8192, 11008, 16384]
DTYPES = ["f32", "f16", "bf16"]


def norm_cases():
    cases = []
    for op_index, op in enumerate(["rms_norm", "add_rms_norm", "layer_norm"]):
        for dtype_index, dtype in enumerate(DTYPES):
            large = LARGE_HIDDEN[(op_index * len(DTYPES) + dtype_index) % len(LARGE_HIDDEN)]
            for geometry_index, geo in enumerate(geometries(large)):
                case = Case(op, dtype, geo.label)
                hidden = geo.shape[-1]
                # A single element makes eps matter; elsewhere the usual model values.
                eps = 0.5 if hidden == 1 else (1e-5 if op == "layer_norm" else 1e-6)

                x = case.input("x", geo.shape, geo.x_strides, scale=1.5, offset=0.25)
                if op == "add_rms_norm":
                    residual = case.input("residual", geo.shape, geo.residual_strides)
                weight = case.input("weight", (hidden,), (1,), scale=0.2, offset=1.0)
                bias = None
                if op == "layer_norm" and geometry_index % 2 == 0:
                    bias = case.input("bias", (hidden,), (1,), scale=0.1)
                case.scalar("eps", eps)

                if op == "rms_norm":
                    y = rms_norm_ref(x, weight, eps)
                elif op == "add_rms_norm":
                    summed = round_to(dtype, x + residual)
                    case.expect("residual", summed)
                    y = rms_norm_ref(summed, weight, eps)
                else:
                    y = layer_norm_ref(x, weight, bias, eps)

                if geo.y_strides is None:
                    case.alias("y", "x", geo.shape, geo.x_strides, y)
                else:
                    case.output("y", geo.shape, geo.y_strides, y)
                cases.append(case)
    return cases


def main():
    cases = norm_cases()
    os.makedirs(DATA, exist_ok=True)
    for stale in os.listdir(DATA):
        os.remove(os.path.join(DATA, stale))
    lines = [
        "# llmk test vectors, written by generate.py; the format is in README.md.",
        "# One case per line: space-separated key=value tokens.",
    ]
    for case in cases:
        for file, array in case.files.items():
            np.save(os.path.join(DATA, file), array, allow_pickle=False)
        lines.append(case.line())
    with open(os.path.join(HERE, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    size = sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA))
    print(f"{len(cases)} cases, {len(os.listdir(DATA))} files, {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
