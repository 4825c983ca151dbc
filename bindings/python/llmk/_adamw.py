"""The AdamW optimizer step, as torch.optim.AdamW."""
from __future__ import annotations

import ctypes
import dataclasses
from typing import Any, Optional

from ._args import config_struct, tensor_arg, written_tensor_arg
from ._context import Context, stream_handle
from ._errors import check
from ._library import AdamWConfigStruct, lib


@dataclasses.dataclass
class AdamWConfig:
    """AdamW's hyperparameters (llmk_adamw_config). A field left None takes
    llmk_adamw_config_init's default, read from the loaded library: torch.optim.AdamW's.

    lr: >= 0 (default 1e-3). beta1, beta2: in [0, 1) (defaults 0.9, 0.999). eps: > 0 (default
    1e-8). weight_decay: >= 0, decoupled (default 1e-2). step: this update's number, counted from
    1 (the default): set it to t on the t-th call.
    """

    lr: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    eps: Optional[float] = None
    weight_decay: Optional[float] = None
    step: Optional[int] = None

    def _struct(self) -> AdamWConfigStruct:
        return config_struct(self, AdamWConfigStruct, lib.llmk_adamw_config_init)


def adamw_step(ctx: Context, config: Optional[AdamWConfig], param: Any, grad: Any, exp_avg: Any,
               exp_avg_sq: Any, stream: Optional[int] = None) -> None:
    """One AdamW step, in place, elementwise:
        param      = param * (1 - lr * weight_decay)
        exp_avg    = beta1 * exp_avg + (1 - beta1) * grad
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad^2
        param      = param - lr / (1 - beta1^step)
                             * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)

    config: an AdamWConfig, or None for the defaults (step 1).
    param, exp_avg, exp_avg_sq: F32, written in place, overlapping nothing. grad: F32, F16 or
    BF16. All four have one shape [..., n], last dimension contiguous, leading strides free.
    stream: None or an int cudaStream_t.
    """
    struct = (config if config is not None else AdamWConfig())._struct()
    check(lib.llmk_adamw_step(ctx.handle, ctypes.byref(struct),
                              written_tensor_arg(param, "param"), tensor_arg(grad),
                              written_tensor_arg(exp_avg, "exp_avg"),
                              written_tensor_arg(exp_avg_sq, "exp_avg_sq"), stream_handle(stream)))
