"""A runner for the shared test vectors, with the semantics of tests/vectors/README.md (the C++
runner, tests/common/vectors.cpp, is the reference).

Every role that names a file, and every output role, gets a backing buffer from llmk.DeviceBuffer
on the context under test (host memory on the CPU, device memory on CUDA): input buffers hold
their .npy file, output buffers start as NaN. A role `R=@S` is a view into S's buffer starting at
element R.offset. ffn and gated_mlp get a workspace of exactly the bytes their *_workspace_size
query returns, from a DeviceBuffer on the context. After the op, per buffer: every view with an
expect. file must match it within its rtol/atol (an expected infinity, such as the lse of a query
that sees no key, only by the same infinity; NaN and other infinities never pass), and every other
element (gaps, inputs) must hold its initial bits.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import llmk

VECTORS_DIR = Path(os.environ.get("LLMK_VECTORS_DIR")
                   or Path(__file__).resolve().parents[3] / "tests" / "vectors")

# The tensor roles of each op, in the C argument order.
ROLES = {
    "rms_norm": ("x", "weight", "y"),
    "add_rms_norm": ("x", "residual", "weight", "y"),
    "layer_norm": ("x", "weight", "bias", "y"),
    "bias_activation": ("x", "bias", "y"),
    "gated_activation": ("gate", "up", "y"),
    "rope": ("positions", "q", "k", "cos_sin_cache"),
    "embedding": ("ids", "table", "y"),
    "kv_cache_write": ("k", "v", "cache_seqlens", "k_cache", "v_cache"),
    "paged_kv_cache_write": ("k", "v", "slot_mapping", "k_cache", "v_cache"),
    "matmul": ("a", "b", "c", "bias", "d"),
    "ffn": ("x", "w1", "b1", "w2", "b2", "y"),
    "gated_mlp": ("x", "w_gate", "w_up", "w_down", "y"),
    "attention": ("q", "k", "v", "o", "lse"),
    "attention_varlen": ("q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "o", "lse"),
    "adamw_step": ("param", "grad", "exp_avg", "exp_avg_sq"),
}

# Manifest dtype: (llmk dtype, .npy storage dtype).
DTYPES = {
    "f32": (llmk.DType.F32, np.dtype("<f4")),
    "f16": (llmk.DType.F16, np.dtype("<f2")),
    "bf16": (llmk.DType.BF16, np.dtype("<u2")),
    "i32": (llmk.DType.I32, np.dtype("<i4")),
    "i64": (llmk.DType.I64, np.dtype("<i8")),
}
# The bit pattern a fresh output buffer starts with; integer roles are never outputs.
FRESH = {"f32": np.float32("nan"), "f16": np.float16("nan"), "bf16": np.uint16(0x7FC0)}

# Scalars given by name: the enum they name a member of (`activation=gelu_tanh`).
ENUM_SCALARS = {"activation": llmk.Activation, "style": llmk.RopeStyle, "path": llmk.MatmulPath}


def load_cases(directory: Path = VECTORS_DIR) -> List[Dict[str, str]]:
    """The manifest's cases, each a dict of its key=value tokens."""
    cases = []
    for line in (directory / "manifest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            cases.append(dict(token.split("=", 1) for token in line.split()))
    return cases


def _ints(text: str) -> Tuple[int, ...]:
    return tuple(int(item) for item in text.split(","))


def _scalar(case: Dict[str, str], key: str) -> Any:
    """A scalar or config field: an enum member by its lower-case name, else a number, an int
    when it is written as one."""
    text = case[key]
    if key in ENUM_SCALARS:
        return ENUM_SCALARS[key][text.upper()]
    try:
        return int(text)
    except ValueError:
        return float(text)


def _integer(case: Dict[str, str], key: str) -> int:
    """An integer scalar, also when it is spelled as a whole float ("64.0", "1e+15")."""
    value = _scalar(case, key)
    if isinstance(value, float):
        assert value.is_integer() and abs(value) <= 2 ** 53, f"{key}={case[key]} is no integer"
        value = int(value)
    return value


def _config(config_type: type, case: Dict[str, str]) -> Any:
    """A config (RopeConfig, AdamWConfig, MatmulConfig, MlpConfig, AttentionConfig) of the fields
    the case gives; the rest keep their defaults. Integer fields take whole floats too."""
    given = {}
    for field in dataclasses.fields(config_type):
        if field.name in case:
            integral = re.search(r"\b(int|bool)\b", str(field.type)) is not None
            given[field.name] = (_integer(case, field.name) if integral
                                 else _scalar(case, field.name))
    return config_type(**given)


def _buffer_length(shape: Tuple[int, ...], strides: Tuple[int, ...]) -> int:
    if any(n == 0 for n in shape):
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides))


def _view_offsets(shape: Tuple[int, ...], strides: Tuple[int, ...]) -> np.ndarray:
    """The buffer index of every view element (from the view's start), in the view's shape."""
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


@dataclasses.dataclass
class _Buffer:
    initial: np.ndarray  # the contents before the op
    memory: llmk.DeviceBuffer


@dataclasses.dataclass
class _View:
    dtype_name: str
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]
    owner: str   # the role whose backing buffer the view is in: itself, or S for `@S`
    offset: int  # the buffer element where the view starts
    tensor: llmk.Tensor


def _make_buffer(ctx: llmk.Context, case: Dict[str, str], name: str, data_dir: Path,
                 buffers: contextlib.ExitStack) -> _Buffer:
    """Role `name`'s own backing buffer: its file, or NaN for an output."""
    dtype_name = case[f"{name}.dtype"]
    storage = DTYPES[dtype_name][1]
    needed = _buffer_length(_ints(case[f"{name}.shape"]), _ints(case[f"{name}.strides"]))
    if name in case:
        initial = np.load(data_dir / case[name])
        # A buffer that other roles view into may be longer than this role's view.
        assert initial.dtype == storage and initial.ndim == 1 and len(initial) >= needed, (
            f"{name}: {case[name]} holds {initial.dtype} {initial.shape}, the view needs "
            f"{storage} of at least {needed} elements")
    else:
        assert dtype_name in FRESH, f"{name}: an output of dtype {dtype_name}"
        initial = np.full(needed, FRESH[dtype_name], dtype=storage)
    # llmk_malloc refuses 0 bytes; an empty view never touches its buffer anyway.
    memory = buffers.enter_context(llmk.DeviceBuffer(ctx, max(initial.nbytes, 1)))
    memory.copy_from_host(initial)
    return _Buffer(initial, memory)


def _workspace(ctx: llmk.Context, nbytes: int, buffers: contextlib.ExitStack) -> llmk.Tensor:
    """Exactly nbytes of scratch on ctx, as a U8 view (llmk_malloc refuses 0 bytes, so an empty
    workspace is an empty view of a 1-byte buffer)."""
    memory = buffers.enter_context(llmk.DeviceBuffer(ctx, max(nbytes, 1)))
    return memory.tensor(llmk.DType.U8, (nbytes,))


def _run_op(ctx: llmk.Context, case: Dict[str, str],
            tensor: Callable[[str], Optional[llmk.Tensor]], buffers: contextlib.ExitStack) -> None:
    """Calls the case's op; tensor(role) is None for a role the case leaves out. Scratch memory
    the op needs goes on `buffers`."""
    op = case["op"]
    if op == "rms_norm":
        llmk.rms_norm(ctx, tensor("x"), tensor("weight"), float(case["eps"]), tensor("y"))
    elif op == "add_rms_norm":
        llmk.add_rms_norm(ctx, tensor("x"), tensor("residual"), tensor("weight"),
                          float(case["eps"]), tensor("y"))
    elif op == "layer_norm":
        llmk.layer_norm(ctx, tensor("x"), tensor("weight"), tensor("bias"), float(case["eps"]),
                        tensor("y"))
    elif op == "bias_activation":
        llmk.bias_activation(ctx, tensor("x"), tensor("bias"), _scalar(case, "activation"),
                             tensor("y"))
    elif op == "gated_activation":
        llmk.gated_activation(ctx, tensor("gate"), tensor("up"), _scalar(case, "activation"),
                              tensor("y"))
    elif op == "rope":
        llmk.rope(ctx, _config(llmk.RopeConfig, case), tensor("positions"), tensor("q"),
                  tensor("k"), tensor("cos_sin_cache"))
    elif op == "embedding":
        llmk.embedding(ctx, tensor("ids"), tensor("table"), tensor("y"))
    elif op == "kv_cache_write":
        llmk.kv_cache_write(ctx, tensor("k"), tensor("v"), tensor("cache_seqlens"),
                            tensor("k_cache"), tensor("v_cache"))
    elif op == "paged_kv_cache_write":
        llmk.paged_kv_cache_write(ctx, tensor("k"), tensor("v"), tensor("slot_mapping"),
                                  tensor("k_cache"), tensor("v_cache"))
    elif op == "matmul":
        llmk.matmul(ctx, _config(llmk.MatmulConfig, case), tensor("a"), tensor("b"), tensor("c"),
                    tensor("bias"), tensor("d"))
    elif op == "ffn":
        workspace = _workspace(ctx, llmk.ffn_workspace_size(ctx, tensor("x"), tensor("w1")),
                               buffers)
        llmk.ffn(ctx, _config(llmk.MlpConfig, case), tensor("x"), tensor("w1"), tensor("b1"),
                 tensor("w2"), tensor("b2"), _scalar(case, "activation"), workspace, tensor("y"))
    elif op == "gated_mlp":
        workspace = _workspace(
            ctx, llmk.gated_mlp_workspace_size(ctx, tensor("x"), tensor("w_gate")), buffers)
        llmk.gated_mlp(ctx, _config(llmk.MlpConfig, case), tensor("x"), tensor("w_gate"),
                       tensor("w_up"), tensor("w_down"), _scalar(case, "activation"), workspace,
                       tensor("y"))
    elif op == "attention":
        llmk.attention(ctx, _config(llmk.AttentionConfig, case), tensor("q"), tensor("k"),
                       tensor("v"), tensor("o"), tensor("lse"))
    elif op == "attention_varlen":
        llmk.attention_varlen(ctx, _config(llmk.AttentionConfig, case), tensor("q"), tensor("k"),
                              tensor("v"), tensor("cu_seqlens_q"), tensor("cu_seqlens_k"),
                              _integer(case, "max_seqlen_q"), tensor("o"), tensor("lse"))
    elif op == "adamw_step":
        llmk.adamw_step(ctx, _config(llmk.AdamWConfig, case), tensor("param"), tensor("grad"),
                        tensor("exp_avg"), tensor("exp_avg_sq"))
    else:
        raise ValueError(f"unknown op {op}")


def _check_view(name: str, view: _View, got_elements: np.ndarray, expect: np.ndarray,
                rtol: float, atol: float) -> List[str]:
    if expect.shape != view.shape:
        return [f"{name}: expected array has shape {expect.shape}, the view {view.shape}"]
    got = _as_float64(view.dtype_name, got_elements)
    with np.errstate(invalid="ignore"):
        close = np.isfinite(got) & (np.abs(got - expect) <= atol + rtol * np.abs(expect))
    # An expected infinity (the lse of a query that sees no key) matches only itself.
    good = np.where(np.isinf(expect), got == expect, close)
    if good.all():
        return []
    bad = np.argwhere(~good)
    examples = "; ".join(f"{name}{tuple(int(i) for i in index)} = {got[tuple(index)]:.9g}, "
                         f"expected {expect[tuple(index)]:.9g}" for index in bad[:3])
    return [f"{examples}; {len(bad)} of {got.size} elements off (rtol {rtol}, atol {atol})"]


def run_case(ctx: llmk.Context, case: Dict[str, str],
             vectors_dir: Path = VECTORS_DIR) -> List[str]:
    """Runs one manifest case on ctx; returns what was wrong (nothing when it passes)."""
    data_dir = vectors_dir / "data"
    with contextlib.ExitStack() as stack:
        buffers: Dict[str, _Buffer] = {}
        views: Dict[str, _View] = {}
        for name in ROLES[case["op"]]:
            if f"{name}.shape" not in case:
                continue  # an optional tensor left out: passed as None (NULL)
            dtype_name = case[f"{name}.dtype"]
            shape, strides = _ints(case[f"{name}.shape"]), _ints(case[f"{name}.strides"])
            if case.get(name, "").startswith("@"):
                owner, offset = case[name][1:], int(case.get(f"{name}.offset", "0"))
                assert (buffers[owner].initial.dtype.itemsize
                        == DTYPES[dtype_name][1].itemsize), f"{name}: element size of {owner}"
            else:
                owner, offset = name, 0
                buffers[name] = _make_buffer(ctx, case, name, data_dir, stack)
            # DeviceBuffer.tensor refuses a view that reaches past the buffer.
            tensor = buffers[owner].memory.tensor(DTYPES[dtype_name][0], shape, strides, offset)
            views[name] = _View(dtype_name, shape, strides, owner, offset, tensor)

        _run_op(ctx, case, lambda name: views[name].tensor if name in views else None, stack)
        ctx.synchronize()

        problems = []
        for owner, buffer in buffers.items():
            after = buffer.memory.copy_to_host(np.empty_like(buffer.initial))
            checked = np.zeros(len(after), dtype=bool)
            for name, view in views.items():
                if view.owner != owner or f"expect.{name}" not in case:
                    continue
                offsets = view.offset + _view_offsets(view.shape, view.strides)
                checked[offsets.ravel()] = True
                problems += _check_view(name, view, after[offsets],
                                        np.load(data_dir / case[f"expect.{name}"]),
                                        float(case[f"rtol.{name}"]), float(case[f"atol.{name}"]))
            changed = np.flatnonzero(~checked & (_bits(after) != _bits(buffer.initial)))
            if changed.size:
                problems.append(f"{owner}'s buffer: elements {changed[:5].tolist()} outside "
                                f"every output view were written ({changed.size} in all)")
        return problems
