"""Matrix multiplication with a fused epilogue: out = a(alpha * A B + beta * C + bias).

Shared rules (llmk.h): A [M, K], B [K, N], C and out [M, N], or a batch [batch, ...] of each. One
dtype for every tensor: F32, F16 or BF16; f32 accumulation, each element of out rounded once.
Every matrix is row-major (last dimension contiguous) or column-major (second-to-last dimension
contiguous), with its own leading dimension: layouts come from the strides, nothing is copied.
nn.Linear's y = x W^T, with W [N, K], is B = W.T: in numpy `w.T`, in torch `w.t()`, or
llmk.Tensor(ptr, dtype, (K, N), (1, K)).

llmk's messages call `out` by its C name, "d". Engines on CUDA: cuBLASLt, or llmk's GEMV for a
few rows (MatmulPath, matmul_path_for). Nothing is allocated per call: the context keeps the
cuBLASLt plans and a workspace per stream (matmul_cache_stats). matmul_tune, once per shape at
start-up, times cuBLASLt's candidate algorithms and pins the fastest in those plans.
"""
from __future__ import annotations

import ctypes
import dataclasses
import enum
from typing import Any, NamedTuple, Optional

from ._activation import Activation
from ._args import config_struct, optional_tensor_arg, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import MatmulConfigStruct, MatmulTuningStruct, lib


class MatmulPath(enum.IntEnum):
    """llmk_matmul_path, value for value: the engine of a CUDA matmul."""

    AUTO = 0      # llmk's choice, as measured on the GPUs it is tuned on
    CUBLASLT = 1  # always cuBLASLt
    GEMV = 2      # llmk's GEMV (M <= 16, batch 1, B column-major, A and out row-major,
                  # 16-byte-aligned A and B): a call it cannot take raises Status.UNSUPPORTED


@dataclasses.dataclass
class MatmulConfig:
    """matmul's options (llmk_matmul_config). A field left None takes llmk_matmul_config_init's
    default, read from the loaded library.

    alpha: scales A B (default 1). beta: scales C (default 0; 0 does not read C).
    activation: an Activation applied last (default IDENTITY). cuBLASLt fuses RELU and
        GELU_TANH (with the bias) into its epilogue; GELU and SILU take one more pass over out.
    allow_tf32: lets F32 inputs be rounded to TF32 on tensor cores (default False).
    path: a MatmulPath (default AUTO); ignored on a CPU context.
    """

    alpha: Optional[float] = None
    beta: Optional[float] = None
    activation: Optional[Activation] = None
    allow_tf32: Optional[bool] = None
    path: Optional[MatmulPath] = None

    def _struct(self) -> MatmulConfigStruct:
        return config_struct(self, MatmulConfigStruct, lib.llmk_matmul_config_init)


class MatmulCacheStats(NamedTuple):
    """A context's matmul plan cache (all 0 on a CPU context)."""

    plans: int              # distinct plans cached (shape, layout, dtype, epilogue)
    heuristic_queries: int  # cuBLASLt heuristic queries made: one per plan
    workspaces: int         # cuBLASLt workspaces set aside: one per stream


class MatmulTuning(NamedTuple):
    """What matmul_tune measured: all 0 where there was nothing to tune (a CPU context, or a call
    that takes the GEMV)."""

    candidates: int   # cuBLASLt algorithms timed
    chosen: int       # the pinned algorithm's rank in the heuristic's order; 0 is its first
    first_us: float   # median time of one GEMM with the heuristic's first algorithm
    chosen_us: float  # the same with the pinned one; first_us when chosen is 0


def _config_ref(config: Optional[MatmulConfig]):
    return ctypes.byref((config if config is not None else MatmulConfig())._struct())


def matmul(ctx: Context, config: Optional[MatmulConfig], a: Any, b: Any, c: Optional[Any],
           bias: Optional[Any], out: Any, stream: Optional[int] = None) -> Any:
    """out = activation(alpha * a @ b + beta * c + bias).

    config: a MatmulConfig, or None for the defaults (alpha 1, beta 0, IDENTITY, AUTO).
    a: [M, K]; b: [K, N]; c, out: [M, N]; each row- or column-major with any leading dimension;
        c has out's layout (row- or column-major). Rank 3 out is a batch: a, b and c are rank 3
        with out's batch (each its own batch stride, 0 repeating one matrix) or rank 2 (one
        matrix for every product).
    c: [M, N] (or a batch), or None where beta is 0 (beta 0 does not read c). c may be
        exactly out (in place: out = ... + beta * out); out overlaps nothing else.
    bias: [N], contiguous, added to every row, or None; refused with a column-major out.
    stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_matmul(ctx.handle, _config_ref(config), tensor_arg(a), tensor_arg(b),
                          optional_tensor_arg(c), optional_tensor_arg(bias),
                          written_tensor_arg(out, "out"), stream_handle(stream)))
    return out


def matmul_tune(ctx: Context, config: Optional[MatmulConfig], a: Any, b: Any, c: Optional[Any],
                bias: Optional[Any], out: Any, stream: Optional[int] = None) -> MatmulTuning:
    """matmul, with cuBLASLt's algorithm chosen by timing instead of by its heuristic; the
    arguments are matmul's, and out is computed as matmul computes it.

    Where the call takes cuBLASLt, up to 8 of the heuristic's algorithms are timed on `stream`
    and the fastest is pinned in ctx's plan cache for this shape, layouts, dtype, epilogue and
    alignments: every later matmul with the same key runs it, with no heuristic query. The
    heuristic's first choice stays unless another is at least 2% faster. The candidates write
    into out, or, when out is c with beta != 0, into scratch memory the call allocates.

    A start-up call, not a hot-path one: it synchronizes the stream and allocates; a stream being
    captured is refused with Status.UNSUPPORTED. Tuning a key again re-times it. The times are of
    the GEMM alone (with GELU or SILU, not the activation pass after it). On a CPU context, and
    where the call takes the GEMV, it is matmul and returns all zeros. Returns a MatmulTuning.
    """
    tuning = MatmulTuningStruct(struct_size=ctypes.sizeof(MatmulTuningStruct))
    check(lib.llmk_matmul_tune(ctx.handle, _config_ref(config), tensor_arg(a), tensor_arg(b),
                               optional_tensor_arg(c), optional_tensor_arg(bias),
                               written_tensor_arg(out, "out"), stream_handle(stream),
                               ctypes.byref(tuning)))
    return MatmulTuning(tuning.candidates, tuning.chosen, tuning.first_us, tuning.chosen_us)


def matmul_path_for(ctx: Context, config: Optional[MatmulConfig], a: Any, b: Any,
                    c: Optional[Any], bias: Optional[Any], out: Any) -> MatmulPath:
    """The engine matmul would take for these arguments, checked as matmul checks them:
    MatmulPath.CUBLASLT or MatmulPath.GEMV, never AUTO. On a CPU context, the answer for a GPU
    like the H200 llmk is tuned on. Nothing is run or written."""
    path = ctypes.c_int32()
    check(lib.llmk_matmul_path_for(ctx.handle, _config_ref(config), tensor_arg(a), tensor_arg(b),
                                   optional_tensor_arg(c), optional_tensor_arg(bias),
                                   tensor_arg(out), ctypes.byref(path)))
    try:
        return MatmulPath(path.value)
    except ValueError:  # a path added to llmk after this binding
        return path.value


def matmul_cache_stats(ctx: Context) -> MatmulCacheStats:
    """What ctx's matmul plan cache has done so far."""
    plans, queries, workspaces = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
    check(lib.llmk_matmul_cache_stats(ctx.handle, ctypes.byref(plans), ctypes.byref(queries),
                                      ctypes.byref(workspaces)))
    return MatmulCacheStats(plans.value, queries.value, workspaces.value)
