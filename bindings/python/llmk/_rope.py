"""Rotary position embedding (RoPE), in place on q and k."""
from __future__ import annotations

import ctypes
import dataclasses
import enum
from typing import Any, Optional

from ._args import config_struct, optional_tensor_arg, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import RopeConfigStruct, lib


class RopeStyle(enum.IntEnum):
    """llmk_rope_style, value for value."""

    NEOX = 0  # pairs (i, i + rotary_dim/2): GPT-NeoX, Hugging Face Llama, vLLM is_neox_style
    GPTJ = 1  # pairs (2i, 2i + 1): GPT-J, Meta's original Llama


@dataclasses.dataclass
class RopeConfig:
    """RoPE's options (llmk_rope_config). A field left None takes llmk_rope_config_init's
    default, read from the loaded library.

    style: a RopeStyle (default NEOX).
    rotary_dim: the dimensions rotated from the start of each head, even and <= head_dim; 0 (the
        default) means head_dim. The rest of each head is left as it is (partial rotary).
    theta: pair i turns by position * theta^(-2i / rotary_dim) (default 10000).
    llama3_factor, llama3_low_freq_factor, llama3_high_freq_factor,
    llama3_original_max_position: Llama 3.1's frequency scaling, on when llama3_factor > 0
        (default 0: off); Llama 3.1 uses 8, 1, 4 and 8192.
    """

    style: Optional[RopeStyle] = None
    rotary_dim: Optional[int] = None
    theta: Optional[float] = None
    llama3_factor: Optional[float] = None
    llama3_low_freq_factor: Optional[float] = None
    llama3_high_freq_factor: Optional[float] = None
    llama3_original_max_position: Optional[float] = None

    def _struct(self) -> RopeConfigStruct:
        """The llmk_rope_config the C function takes: the library's defaults, then the fields
        that are set."""
        return config_struct(self, RopeConfigStruct, lib.llmk_rope_config_init)


def rope(ctx: Context, config: Optional[RopeConfig], positions: Any, q: Any, k: Optional[Any],
         cos_sin_cache: Optional[Any] = None, stream: Optional[int] = None) -> None:
    """Rotates q and k in place: in every head, each pair (a, b) of rotary dimensions becomes
    (a cos - b sin, b cos + a sin) for the pair's angle at positions[t].

    config: a RopeConfig, or None for the defaults (NEOX, full head, theta 10000).
    positions: [tokens], I32 or I64 (numpy int32/int64), any stride.
    q: [tokens, q_heads, head_dim]; k: [tokens, kv_heads, head_dim], or None to rotate q alone.
        One dtype (F32, F16, BF16); head_dim contiguous, token and head strides free (slices of a
        fused QKV buffer work); q and k may not overlap.
    cos_sin_cache: None (angles computed, any position), or [max_position, rotary_dim] in F32 or
        q's dtype, last dimension contiguous, row p = the cosines of position p's rotary_dim/2
        angles, then their sines (vLLM's layout). theta and the Llama 3 scaling are then unused
        and positions must lie in [0, max_position): the CPU refuses others (INVALID_VALUE); on
        CUDA such a token's rotated dimensions become NaN.
    stream: None or an int cudaStream_t.
    """
    struct = (config if config is not None else RopeConfig())._struct()
    k_arg = None if k is None else written_tensor_arg(k, "k")
    check(lib.llmk_rope(ctx.handle, ctypes.byref(struct), tensor_arg(positions),
                        written_tensor_arg(q, "q"), k_arg, optional_tensor_arg(cos_sin_cache),
                        stream_handle(stream)))
