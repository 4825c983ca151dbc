"""The normalization ops.

Shared rules (llmk.h): x has shape [..., hidden] and is normalized over its last dimension, one
row per index of the leading dimensions. The last dimension of x, out and residual has stride 1;
leading dimensions may have any non-negative strides, each tensor its own. weight (and bias) are
[hidden], contiguous. All tensors share one dtype: F32, F16 or BF16. eps must be finite and >= 0.

Tensors are anything llmk.as_tensor takes: a Tensor, a numpy array, a __cuda_array_interface__
object. `out` is required: llmk never allocates. In place: out may be exactly x (the same object,
or the same pointer, shape and strides); any other overlap is refused (Status.OVERLAP). llmk's
messages call `out` by its C name, "y".

stream: None (the default stream) or an int cudaStream_t, e.g.
torch.cuda.current_stream().cuda_stream. On a CUDA context the op is only queued on it.
Each op returns `out`.
"""
from __future__ import annotations

from typing import Any, Optional

from ._args import optional_tensor_arg, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import lib


def rms_norm(ctx: Context, x: Any, weight: Any, eps: float, out: Any,
             stream: Optional[int] = None) -> Any:
    """out = x / sqrt(mean(x^2) + eps) * weight, over the last dimension of x.

    x, out: [..., hidden], one dtype (F32, F16, BF16), last dimension contiguous; out may be
    exactly x (in place). weight: [hidden]. stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_rms_norm(ctx.handle, tensor_arg(x), tensor_arg(weight), float(eps),
                            written_tensor_arg(out, "out"), stream_handle(stream)))
    return out


def add_rms_norm(ctx: Context, x: Any, residual: Any, weight: Any, eps: float, out: Any,
                 stream: Optional[int] = None) -> Any:
    """residual = x + residual (rounded to the dtype), then out = rms_norm(residual, weight, eps).

    x, residual, out: [..., hidden], one dtype, last dimension contiguous. residual is read and
    overwritten (the sum the next skip connection needs) and may overlap nothing; out may be
    exactly x. weight: [hidden]. stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_add_rms_norm(ctx.handle, tensor_arg(x), written_tensor_arg(residual, "residual"),
                                tensor_arg(weight), float(eps), written_tensor_arg(out, "out"),
                                stream_handle(stream)))
    return out


def layer_norm(ctx: Context, x: Any, weight: Any, bias: Optional[Any], eps: float, out: Any,
               stream: Optional[int] = None) -> Any:
    """out = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, over the last dimension of x
    (biased variance).

    x, out: [..., hidden], one dtype, last dimension contiguous; out may be exactly x. weight and
    bias: [hidden]; bias may be None. stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_layer_norm(ctx.handle, tensor_arg(x), tensor_arg(weight),
                              optional_tensor_arg(bias), float(eps), written_tensor_arg(out, "out"),
                              stream_handle(stream)))
    return out
