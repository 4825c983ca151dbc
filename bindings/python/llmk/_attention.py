"""Attention (prefill): out = softmax(scale * Q K^T + mask) V, exact, without writing the score
matrix to memory (flash attention).

Shared rules (llmk.h). Two entries share one kernel:
  attention: a padded batch. q and out: [batch, q_len, q_heads, head_dim]; k and v:
    [batch, kv_len, kv_heads, head_dim]; every sequence has q_len queries and kv_len keys.
  attention_varlen: packed sequences of different lengths, as flash-attention's varlen API.
    q and out: [total_q, q_heads, head_dim]; k and v: [total_k, kv_heads, head_dim];
    cu_seqlens_q and cu_seqlens_k: [batch + 1] int32, contiguous: sequence s has queries
    cu_seqlens_q[s] ... cu_seqlens_q[s + 1] - 1, and keys likewise.
Every tensor has its own batch (or token), sequence and head strides, so BSHD and BHSD views and
slices of one fused QKV buffer work without a copy; head_dim is contiguous, every other stride a
multiple of 8 elements and every data pointer 16-byte aligned. One dtype, F16 or BF16, for q, k,
v and out; f32 math on CUDA (f64 on the CPU), each output element rounded once. head_dim is 64,
96, 128 or 256. GQA / MQA: q_heads is a multiple of kv_heads; query head h reads kv head
h // (q_heads // kv_heads).

The mask: the queries are the last q_len positions of their sequence (bottom-right alignment, as
FlashAttention 2.1+), so query i sits at key position i + kv_len - q_len; key j is visible when
j <= that + window_right (if window_right >= 0) and j >= that - window_left (if window_left >= 0).
causal is window_right = 0. A query with no visible key gets out = 0 and lse = -inf.

lse, when given, receives the natural log-sum-exp of each query's visible scores, float32:
[batch, q_heads, q_len] for attention, [q_heads, total_q] for attention_varlen, any strides.

llmk's messages call `out` by its C name, "o". out overlaps no input; lse overlaps nothing.

Kernels on CUDA (AttentionKernel): the portable one (mma.sync, sm_80 on, every head_dim and
option), or the Hopper one (wgmma, sm_90 with a library built for sm_90a, head_dim 64 and 128, no
soft-cap or dropout); AUTO takes the Hopper one where it can run the call.
"""
from __future__ import annotations

import ctypes
import dataclasses
import enum
import operator
from typing import Any, Optional

from ._args import config_struct, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import AttentionConfigStruct, lib


class AttentionKernel(enum.IntEnum):
    """llmk_attention_kernel, value for value: the kernel of a CUDA attention call."""

    AUTO = 0      # HOPPER where it can run the call, else PORTABLE
    PORTABLE = 1  # mma.sync tensor cores (FlashAttention-2's design): every GPU from sm_80 on,
                  # every head_dim and option
    HOPPER = 2    # wgmma tensor cores (FlashAttention-3's road): an sm_90 GPU (H100, H200) with a
                  # library built for sm_90a, head_dim 64 or 128, no soft-cap and no dropout; a
                  # call it cannot take raises Status.UNSUPPORTED, naming why


@dataclasses.dataclass
class AttentionConfig:
    """Attention's options (llmk_attention_config). A field left None takes
    llmk_attention_config_init's default, read from the loaded library.

    scale: the scores' factor, finite and > 0; default 0, which means 1 / sqrt(head_dim).
    causal: bottom-right aligned causal mask (window_right = 0); default False.
    window_left, window_right: the sliding window, >= 0, or -1 (the default) for no limit.
    softcap: a soft-cap c > 0 makes each score c * tanh(score / c) (Gemma 2, Grok); default 0,
        none.
    dropout_p: in [0, 1); default 0 (for fine-tuning). The mask is Philox 4x32-10 of
        dropout_seed (uint64, the key) and dropout_offset (uint32, the counter's fourth word),
        the same on every backend (llmk.h gives the counter).
    kernel: an AttentionKernel (default AUTO); ignored on a CPU context. HOPPER where it cannot
        run the call raises Status.UNSUPPORTED; a value outside AttentionKernel raises
        Status.INVALID_VALUE.
    """

    scale: Optional[float] = None
    causal: Optional[bool] = None
    window_left: Optional[int] = None
    window_right: Optional[int] = None
    softcap: Optional[float] = None
    dropout_p: Optional[float] = None
    dropout_offset: Optional[int] = None
    dropout_seed: Optional[int] = None
    kernel: Optional[AttentionKernel] = None

    def _struct(self) -> AttentionConfigStruct:
        return config_struct(self, AttentionConfigStruct, lib.llmk_attention_config_init)


def _config_ref(config: Optional[AttentionConfig]):
    return ctypes.byref((config if config is not None else AttentionConfig())._struct())


def _int64(value: Any, name: str) -> int:
    value = operator.index(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{name} = {value} does not fit in int64")
    return value


def attention(ctx: Context, config: Optional[AttentionConfig], q: Any, k: Any, v: Any, out: Any,
              lse: Optional[Any] = None, stream: Optional[int] = None) -> Any:
    """out = softmax(scale * q k^T + mask) v over a padded batch.

    config: an AttentionConfig, or None for the defaults (scale 1/sqrt(head_dim), no mask,
        kernel AUTO).
    q, out: [batch, q_len, q_heads, head_dim]; k, v: [batch, kv_len, kv_heads, head_dim];
        F16 or BF16 (see the module's doc for strides, alignment and head_dim).
    lse: None, or a float32 [batch, q_heads, q_len] that receives each query's log-sum-exp.
    stream: None or an int cudaStream_t. Returns out.
    """
    check(lib.llmk_attention(ctx.handle, _config_ref(config), tensor_arg(q), tensor_arg(k),
                             tensor_arg(v), written_tensor_arg(out, "out"),
                             None if lse is None else written_tensor_arg(lse, "lse"),
                             stream_handle(stream)))
    return out


def attention_varlen(ctx: Context, config: Optional[AttentionConfig], q: Any, k: Any, v: Any,
                     cu_seqlens_q: Any, cu_seqlens_k: Any, max_seqlen_q: int, out: Any,
                     lse: Optional[Any] = None, stream: Optional[int] = None) -> Any:
    """attention over packed sequences of different lengths (flash-attention's varlen API).

    config: an AttentionConfig, or None for the defaults.
    q, out: [total_q, q_heads, head_dim]; k, v: [total_k, kv_heads, head_dim].
    cu_seqlens_q, cu_seqlens_k: [batch + 1] int32, contiguous: the sequences' offsets into the
        rows of q and of k (from 0, non-decreasing, ending at most at total_q and total_k).
    max_seqlen_q: the most queries of one sequence (> 0 when total_q > 0); the CUDA grid is
        sized from it.
    lse: None, or a float32 [q_heads, total_q] that receives each query's log-sum-exp.
    stream: None or an int cudaStream_t. Returns out.

    A CPU context checks cu_seqlens on the host and refuses bad ones (Status.INVALID_VALUE)
    before writing anything. A CUDA context does not read them on the host: a sequence whose
    offsets break the rules gets NaN in the rows of out and lse they name, and the others are
    computed as usual.
    """
    check(lib.llmk_attention_varlen(ctx.handle, _config_ref(config), tensor_arg(q), tensor_arg(k),
                                    tensor_arg(v), tensor_arg(cu_seqlens_q),
                                    tensor_arg(cu_seqlens_k), _int64(max_seqlen_q, "max_seqlen_q"),
                                    written_tensor_arg(out, "out"),
                                    None if lse is None else written_tensor_arg(lse, "lse"),
                                    stream_handle(stream)))
    return out
