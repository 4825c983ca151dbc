"""Feed-forward blocks: a whole MLP in one call, over nn.Linear weights.

Shared rules (llmk.h): x and out are [tokens, d_model]; every weight W is [out_features,
in_features] (nn.Linear's layout), y = ... x W^T ...; last dimensions contiguous, row strides
free; one dtype for every tensor: F32, F16 or BF16. out overlaps no input. Each GEMM runs as
matmul would (same engines, same numerics); the intermediate is rounded to the dtype.

The intermediate activations live in `workspace`, which the caller provides (nothing is allocated
per call): at least ffn_workspace_size / gated_mlp_workspace_size bytes for these shapes, aligned
to 16 bytes, device memory of the context's GPU (host memory on a CPU context), overlapping no
tensor. It is a DeviceBuffer, anything llmk.as_tensor takes (contiguous: a torch.empty(n,
dtype=torch.uint8) through __cuda_array_interface__, a numpy array), or a raw pointer wrapped as
llmk.Tensor(ptr, llmk.DType.U8, (nbytes,)); its bytes are the size passed to llmk.

llmk's messages call `out` by its C name, "y".
"""
from __future__ import annotations

import ctypes
import dataclasses
from typing import Any, Optional

from ._activation import Activation
from ._args import (config_struct, enum_arg, optional_tensor_arg, tensor_arg, workspace_arg,
                    written_tensor_arg)
from ._context import Context, stream_handle
from ._errors import check
from ._library import MlpConfigStruct, lib
from ._matmul import MatmulPath


@dataclasses.dataclass
class MlpConfig:
    """Options of ffn and gated_mlp (llmk_mlp_config). A field left None takes
    llmk_mlp_config_init's default, read from the loaded library.

    allow_tf32: as in MatmulConfig (default False).
    path: a MatmulPath for every GEMM of the block (default AUTO); ignored on a CPU context.
    tune: True runs every cuBLASLt GEMM of the block as matmul_tune does: its algorithms are
        timed and the fastest pinned, so later calls with the same shapes, dtype and pointer
        alignments (the same x, out and workspace, typically) run it with no further query. A
        start-up call: it synchronizes and allocates, and a stream being captured is refused
        with Status.UNSUPPORTED. Default False.
    """

    allow_tf32: Optional[bool] = None
    path: Optional[MatmulPath] = None
    tune: Optional[bool] = None

    def _struct(self) -> MlpConfigStruct:
        return config_struct(self, MlpConfigStruct, lib.llmk_mlp_config_init)


def _config_ref(config: Optional[MlpConfig]):
    return ctypes.byref((config if config is not None else MlpConfig())._struct())


def ffn_workspace_size(ctx: Context, x: Any, w1: Any) -> int:
    """Bytes of workspace ffn needs for x [tokens, d_model] and w1 [d_ff, d_model]."""
    size = ctypes.c_size_t()
    check(lib.llmk_ffn_workspace_size(ctx.handle, tensor_arg(x), tensor_arg(w1),
                                      ctypes.byref(size)))
    return size.value


def ffn(ctx: Context, config: Optional[MlpConfig], x: Any, w1: Any, b1: Optional[Any], w2: Any,
        b2: Optional[Any], activation: Activation, workspace: Any, out: Any,
        stream: Optional[int] = None) -> Any:
    """out = activation(x @ w1.T + b1) @ w2.T + b2: a GPT-2 / BERT style MLP.

    config: an MlpConfig, or None for the defaults. x, out: [tokens, d_model].
    w1: [d_ff, d_model]; w2: [d_model, d_ff]. b1: [d_ff], b2: [d_model], contiguous, or None.
    workspace: at least ffn_workspace_size(ctx, x, w1) bytes (see the module's doc).
    stream: None or an int cudaStream_t. Returns out.
    """
    workspace_ptr, workspace_bytes = workspace_arg(workspace)
    check(lib.llmk_ffn(ctx.handle, _config_ref(config), tensor_arg(x), tensor_arg(w1),
                       optional_tensor_arg(b1), tensor_arg(w2), optional_tensor_arg(b2),
                       enum_arg(activation), workspace_ptr, workspace_bytes,
                       written_tensor_arg(out, "out"), stream_handle(stream)))
    return out


def gated_mlp_workspace_size(ctx: Context, x: Any, w_gate: Any) -> int:
    """Bytes of workspace gated_mlp needs for x [tokens, d_model] and w_gate [d_ff, d_model]."""
    size = ctypes.c_size_t()
    check(lib.llmk_gated_mlp_workspace_size(ctx.handle, tensor_arg(x), tensor_arg(w_gate),
                                            ctypes.byref(size)))
    return size.value


def gated_mlp(ctx: Context, config: Optional[MlpConfig], x: Any, w_gate: Any, w_up: Any,
              w_down: Any, activation: Activation, workspace: Any, out: Any,
              stream: Optional[int] = None) -> Any:
    """out = (activation(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T: the Llama / Mistral MLP with
    Activation.SILU (SwiGLU), GeGLU with GELU or GELU_TANH.

    config: an MlpConfig, or None for the defaults. x, out: [tokens, d_model].
    w_gate, w_up: [d_ff, d_model]; w_down: [d_model, d_ff]. A fused [2 d_ff, d_model] gate_up
        weight (vLLM's) is passed as two views: w_gate = gate_up[:d_ff], w_up = gate_up[d_ff:];
        then one GEMM computes both.
    workspace: at least gated_mlp_workspace_size(ctx, x, w_gate) bytes (see the module's doc).
    stream: None or an int cudaStream_t. Returns out.
    """
    workspace_ptr, workspace_bytes = workspace_arg(workspace)
    check(lib.llmk_gated_mlp(ctx.handle, _config_ref(config), tensor_arg(x), tensor_arg(w_gate),
                             tensor_arg(w_up), tensor_arg(w_down), enum_arg(activation),
                             workspace_ptr, workspace_bytes, written_tensor_arg(out, "out"),
                             stream_handle(stream)))
    return out
