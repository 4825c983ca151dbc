"""Embedding lookup: gathering table rows by token id."""
from __future__ import annotations

from typing import Any, Optional

from ._args import tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import lib


def embedding(ctx: Context, ids: Any, table: Any, out: Any, stream: Optional[int] = None) -> Any:
    """out[t] = table[ids[t]].

    ids: [tokens], I32 or I64 (numpy int32/int64), any stride. table: [vocab, hidden];
    out: [tokens, hidden]; one dtype (F32, F16, BF16), last dimension contiguous, row strides
    free; out overlaps neither input (llmk calls it "y"). An id outside [0, vocab): the CPU
    refuses the call (INVALID_VALUE, naming the token) before writing; on CUDA that token's row
    becomes NaN. stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_embedding(ctx.handle, tensor_arg(ids), tensor_arg(table),
                             written_tensor_arg(out, "out"), stream_handle(stream)))
    return out
