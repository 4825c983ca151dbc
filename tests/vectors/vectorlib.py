"""The building blocks of llmk's test vectors: dtype rounding and storage, strided buffers, and
Case, which collects one manifest line and its .npy files. The format is in README.md; each op's
cases live in ops/<op>.py and generate.py writes them all.
"""
import hashlib
import math

import numpy as np

# Filled into the gaps of strided float buffers: a kernel that reads a gap gets a visibly wrong
# answer instead of a plausible one.
GAP_VALUE = 1000.0
# The same for integer buffers (ids, positions, slots): far out of any valid range.
GAP_INT = 1 << 30

# Tolerances, per output dtype; README.md says why they are enough.
RTOL = {"f32": 1e-5, "f16": 2.0**-10, "bf16": 2.0**-7}
ATOL = {"f32": 1e-6, "f16": 1e-5, "bf16": 1e-5}

FLOAT_DTYPES = ["f32", "f16", "bf16"]
INT_STORAGE = {"i32": np.int32, "i64": np.int64}


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
    """Values already representable in `dtype`, as the array stored in the .npy file."""
    if dtype in INT_STORAGE:
        return np.asarray(values).astype(INT_STORAGE[dtype])
    if dtype == "f32":
        return values.astype(np.float32)
    if dtype == "f16":
        return values.astype(np.float16)
    if dtype == "bf16":
        bits = values.astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0), "value not representable in bf16"
        return (bits >> 16).astype(np.uint16)
    raise ValueError(dtype)


def round_up(value):
    """A tolerance rounded up to 3 significant digits, as the manifest writes it."""
    scale = 10.0 ** (math.floor(math.log10(value)) - 2)
    return float(f"{math.ceil(value / scale - 1e-9) * scale:.3g}")


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


def contiguous(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


# --- cases -------------------------------------------------------------------------------------


class Case:
    """One manifest line. `dtype` is the case's float dtype, the default of every float role."""

    def __init__(self, op, dtype, label):
        self.name = f"{op}/{dtype}/{label}"
        self.op = op
        self.dtype = dtype
        self.tokens = [f"name={self.name}", f"op={op}"]
        seed = int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "little")
        self.rng = np.random.default_rng(seed)
        self.files = {}
        self.buffers = {}  # role -> (backing buffer, dtype), for views into it
        self.views = {}  # role -> (the role whose buffer it views, offset in elements)

    def _file(self, role, suffix):
        base = self.name.replace("/", ".")
        return f"{base}.{role}{suffix}.npy"

    def _view_tokens(self, role, shape, strides, dtype):
        self.tokens += [
            f"{role}.dtype={dtype}",
            f"{role}.shape={','.join(map(str, shape))}",
            f"{role}.strides={','.join(map(str, strides))}",
        ]

    def _store(self, role, shape, strides, values, dtype, gap, length=None):
        buffer = np.full(length or buffer_length(shape, strides), gap,
                         dtype=np.int64 if dtype in INT_STORAGE else np.float64)
        buffer[view_indices(shape, strides)] = values
        file = self._file(role, "")
        self.buffers[role] = (buffer, dtype)
        self.views[role] = (role, 0)
        self.files[file] = storage(dtype, buffer)
        self._view_tokens(role, shape, strides, dtype)
        self.tokens.append(f"{role}={file}")

    def input(self, role, shape, strides, scale=1.0, offset=0.0, dtype=None, length=None):
        """A random normal(offset, scale) float input view; returns its values (float64, exact in
        the dtype). `length` makes the backing buffer longer than the view needs, for views that
        other roles share (see view_of)."""
        dtype = dtype or self.dtype
        values = round_to(dtype, offset + scale * self.rng.standard_normal(shape))
        self._store(role, shape, strides, values, dtype, GAP_VALUE, length)
        return values

    def values(self, role, values, strides=None, dtype=None, length=None):
        """A float input view holding the given values (rounded to the dtype); returns them.
        A stride of 0 repeats elements: their values must then be equal (np.broadcast_to)."""
        dtype = dtype or self.dtype
        values = round_to(dtype, values)
        strides = strides or contiguous(values.shape)
        self._store(role, values.shape, strides, values, dtype, GAP_VALUE, length)
        return values

    def ints(self, role, values, strides=None, dtype="i32"):
        """An integer input view (ids, positions, slots) holding `values`; returns them."""
        values = np.asarray(values, dtype=np.int64)
        strides = strides or contiguous(values.shape)
        self._store(role, values.shape, strides, values, dtype, GAP_INT)
        return values

    def view_of(self, role, base, offset, shape, strides, scale=1.0, offset_value=0.0):
        """`role` is an input view into `base`'s backing buffer, starting `offset` elements in
        (slices of one fused buffer, e.g. up in [gate | up], or v in a fused QKV buffer). Its
        elements get random normal(offset_value, scale) values, written into the base buffer;
        returns them. Make base's buffer long enough with input(..., length=...)."""
        buffer, dtype = self.buffers[base]
        values = round_to(dtype, offset_value + scale * self.rng.standard_normal(shape))
        buffer[offset + view_indices(shape, strides)] = values
        self.files[self._file(base, "")] = storage(dtype, buffer)
        self._view_tokens(role, shape, strides, dtype)
        self.tokens += [f"{role}=@{base}", f"{role}.offset={offset}"]
        self.views[role] = (base, offset)
        return values

    def output(self, role, shape, strides, expected, dtype=None, rtol=None, atol=None):
        """An output view the runner allocates and fills with NaN; `expected` after the op."""
        self._view_tokens(role, shape, strides, dtype or self.dtype)
        self.expect(role, expected, dtype, rtol, atol)

    def alias(self, role, other, shape, strides, expected, rtol=None, atol=None):
        """`role` is the very same view as `other` (in place); `other` may itself be a view into
        a third role's buffer."""
        base, offset = self.views[other]
        self._view_tokens(role, shape, strides, self.dtype)
        self.tokens.append(f"{role}=@{base}")
        if offset:
            self.tokens.append(f"{role}.offset={offset}")
        self.expect(role, expected, rtol=rtol, atol=atol)

    def expect(self, role, expected, dtype=None, rtol=None, atol=None):
        """The expected contents of view `role` after the op (inputs that the op overwrites too).
        The tolerance defaults to the dtype's (README.md)."""
        dtype = dtype or self.dtype
        file = self._file(role, ".expect")
        self.files[file] = np.ascontiguousarray(expected, dtype=np.float64)
        self.tokens += [
            f"expect.{role}={file}",
            f"rtol.{role}={RTOL[dtype] if rtol is None else rtol!r}",
            f"atol.{role}={ATOL[dtype] if atol is None else atol!r}",
        ]

    def scalar(self, key, value):
        """A scalar argument: a number, or a name (an enum value, e.g. activation=gelu_tanh)."""
        self.tokens.append(f"{key}={value}" if isinstance(value, str) else f"{key}={value!r}")

    def line(self):
        return " ".join(self.tokens)
