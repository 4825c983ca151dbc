"""A runner for the shared test vectors, with the semantics of tests/vectors/README.md.

Every tensor role gets a backing buffer from llmk.DeviceBuffer on the context under test (host
memory on the CPU, device memory on CUDA); the view starts at buffer element 0. Input buffers
hold their .npy file; output buffers start as NaN. After the op, every output view must match its
expect file within rtol/atol, every gap element of an output buffer must be bit-for-bit what it
was, and every buffer no output shares must be unchanged altogether.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

import llmk

VECTORS_DIR = Path(os.environ.get("LLMK_VECTORS_DIR")
                   or Path(__file__).resolve().parents[3] / "tests" / "vectors")

# The tensor roles of each op, in the C argument order.
ROLES = {
    "rms_norm": ("x", "weight", "y"),
    "add_rms_norm": ("x", "residual", "weight", "y"),
    "layer_norm": ("x", "weight", "bias", "y"),
}

# Manifest dtype: (llmk dtype, .npy storage dtype, the bit pattern a fresh output starts with).
DTYPES = {
    "f32": (llmk.DType.F32, np.dtype("<f4"), np.float32("nan")),
    "f16": (llmk.DType.F16, np.dtype("<f2"), np.float16("nan")),
    "bf16": (llmk.DType.BF16, np.dtype("<u2"), np.uint16(0x7FC0)),  # a bf16 quiet NaN
}


def load_cases(directory: Path = VECTORS_DIR) -> List[Dict[str, str]]:
    """The manifest's cases, each a dict of its key=value tokens."""
    cases = []
    for line in (directory / "manifest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            cases.append(dict(token.split("=", 1) for token in line.split()))
    return cases


def _ints(text: str) -> Tuple[int, ...]:
    return tuple(int(item) for item in text.split(","))


def _buffer_length(shape: Tuple[int, ...], strides: Tuple[int, ...]) -> int:
    if any(n == 0 for n in shape):
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides))


def _view_offsets(shape: Tuple[int, ...], strides: Tuple[int, ...]) -> np.ndarray:
    """The buffer index of every view element, as an array of the view's shape."""
    offsets = np.zeros(shape, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(shape, strides)):
        index_shape = [1] * len(shape)
        index_shape[axis] = n
        offsets = offsets + (np.arange(n, dtype=np.int64) * s).reshape(index_shape)
    return offsets


def _as_float64(dtype_name: str, values: np.ndarray) -> np.ndarray:
    if dtype_name == "bf16":  # bit patterns: the upper half of a float32
        return (values.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return values.astype(np.float64)


def _bits(values: np.ndarray) -> np.ndarray:
    """Elements as unsigned integers, so that NaN compares equal to itself."""
    return values.view(f"u{values.itemsize}")


@dataclass
class _Role:
    dtype_name: str
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]
    initial: np.ndarray  # the backing buffer's contents before the op
    buffer: llmk.DeviceBuffer
    tensor: llmk.Tensor


def _make_role(ctx: llmk.Context, case: Dict[str, str], name: str, data_dir: Path,
               buffers: contextlib.ExitStack) -> _Role:
    dtype_name = case[f"{name}.dtype"]
    dtype, storage, fresh = DTYPES[dtype_name]
    shape, strides = _ints(case[f"{name}.shape"]), _ints(case[f"{name}.strides"])
    length = _buffer_length(shape, strides)
    if name in case:
        initial = np.load(data_dir / case[name])
        assert initial.dtype == storage and initial.shape == (length,), (
            f"{name}: {case[name]} holds {initial.dtype} {initial.shape}, "
            f"the view needs {storage} ({length},)")
    else:
        initial = np.full(length, fresh, dtype=storage)
    # llmk_malloc refuses 0 bytes; an empty view never touches its buffer anyway.
    buffer = buffers.enter_context(llmk.DeviceBuffer(ctx, max(initial.nbytes, 1)))
    buffer.copy_from_host(initial)
    return _Role(dtype_name, shape, strides, initial, buffer, buffer.tensor(dtype, shape, strides))


def _check_output(name: str, role: _Role, after: np.ndarray, expect: np.ndarray, rtol: float,
                  atol: float) -> List[str]:
    offsets = _view_offsets(role.shape, role.strides)
    if expect.shape != role.shape:
        return [f"{name}: expected array has shape {expect.shape}, the view {role.shape}"]
    got = _as_float64(role.dtype_name, after[offsets])
    with np.errstate(invalid="ignore"):
        good = np.isfinite(got) & (np.abs(got - expect) <= atol + rtol * np.abs(expect))
    problems = []
    if not good.all():
        bad = np.argwhere(~good)
        examples = "; ".join(f"{name}{tuple(int(i) for i in index)} = {got[tuple(index)]:.9g}, "
                             f"expected {expect[tuple(index)]:.9g}" for index in bad[:3])
        problems.append(f"{examples}; {len(bad)} of {got.size} elements off "
                        f"(rtol {rtol}, atol {atol})")
    in_view = np.zeros(len(after), dtype=bool)
    in_view[offsets.ravel()] = True
    written_gaps = np.flatnonzero(~in_view & (_bits(after) != _bits(role.initial)))
    if written_gaps.size:
        problems.append(f"{name}: gap elements {written_gaps[:5].tolist()} were written "
                        f"({written_gaps.size} in all)")
    return problems


def _run_op(ctx: llmk.Context, op: str, tensors: Dict[str, llmk.Tensor], eps: float) -> None:
    t = tensors
    if op == "rms_norm":
        llmk.rms_norm(ctx, t["x"], t["weight"], eps, t["y"])
    elif op == "add_rms_norm":
        llmk.add_rms_norm(ctx, t["x"], t["residual"], t["weight"], eps, t["y"])
    elif op == "layer_norm":
        llmk.layer_norm(ctx, t["x"], t["weight"], t.get("bias"), eps, t["y"])
    else:
        raise ValueError(f"unknown op {op}")


def run_case(ctx: llmk.Context, case: Dict[str, str],
             vectors_dir: Path = VECTORS_DIR) -> List[str]:
    """Runs one manifest case on ctx; returns what was wrong (nothing when it passes)."""
    data_dir = vectors_dir / "data"
    with contextlib.ExitStack() as buffers:
        roles: Dict[str, _Role] = {}
        for name in ROLES[case["op"]]:
            if f"{name}.shape" not in case:
                continue  # an optional tensor left out: passed as None (NULL)
            if case.get(name, "").startswith("@"):  # the very same view as another role
                roles[name] = roles[case[name][1:]]
                assert (_ints(case[f"{name}.shape"]), _ints(case[f"{name}.strides"])) == (
                    roles[name].shape, roles[name].strides), f"{name} is not the view it aliases"
            else:
                roles[name] = _make_role(ctx, case, name, data_dir, buffers)

        _run_op(ctx, case["op"], {name: role.tensor for name, role in roles.items()},
                float(case["eps"]))
        ctx.synchronize()

        written = {id(roles[name]) for name in roles if f"expect.{name}" in case}
        problems = []
        for name, role in roles.items():
            after = role.buffer.copy_to_host(np.empty_like(role.initial))
            if f"expect.{name}" in case:
                expect = np.load(data_dir / case[f"expect.{name}"])
                problems += _check_output(name, role, after, expect, float(case[f"rtol.{name}"]),
                                          float(case[f"atol.{name}"]))
            elif id(role) not in written and not np.array_equal(_bits(after), _bits(role.initial)):
                problems.append(f"{name} is an input, but its buffer changed")
        return problems
