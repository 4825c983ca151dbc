"""Elementwise activations: bias + activation, and gated activations (SwiGLU, GeGLU).

Shared rules (llmk.h): tensors are [..., n] with the last dimension contiguous; the leading
dimensions may have any non-negative strides, each tensor its own. All tensors share one dtype:
F32, F16 or BF16; each output element is rounded once. `out` is required (llmk never allocates)
and llmk's messages call it by its C name, "y". Each op returns `out`.
"""
from __future__ import annotations

import enum
from typing import Any, Optional

from ._args import enum_arg, optional_tensor_arg, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import lib


class Activation(enum.IntEnum):
    """llmk_activation, value for value."""

    IDENTITY = 0   # a(x) = x
    GELU = 1       # exact: x/2 * (1 + erf(x / sqrt(2)))
    GELU_TANH = 2  # x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    SILU = 3       # x * sigmoid(x)
    RELU = 4       # max(x, 0)


def bias_activation(ctx: Context, x: Any, bias: Optional[Any], activation: Activation, out: Any,
                    stream: Optional[int] = None) -> Any:
    """out = activation(x + bias); bias None: out = activation(x).

    x, out: [..., n]; bias: [n], contiguous, or None. out may be exactly x (in place); any other
    overlap is refused. stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_bias_activation(ctx.handle, tensor_arg(x), optional_tensor_arg(bias),
                                   enum_arg(activation), written_tensor_arg(out, "out"),
                                   stream_handle(stream)))
    return out


def gated_activation(ctx: Context, gate: Any, up: Any, activation: Activation, out: Any,
                     stream: Optional[int] = None) -> Any:
    """out = activation(gate) * up: SwiGLU with Activation.SILU, GeGLU with GELU or GELU_TANH.

    gate, up, out: [..., n], one shape, each its own strides. For a fused x = [..., 2n] holding
    [gate | up] (vLLM's silu_and_mul), pass gate = x[..., :n] and up = x[..., n:]. out may be
    exactly gate or exactly up (in place); any other overlap is refused. stream: None or an int
    cudaStream_t. Returns out.
    """
    check(lib.llmk_gated_activation(ctx.handle, tensor_arg(gate), tensor_arg(up),
                                    enum_arg(activation), written_tensor_arg(out, "out"),
                                    stream_handle(stream)))
    return out
