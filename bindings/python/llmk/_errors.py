"""llmk_status as Status, and LlmkError for failed calls."""
from __future__ import annotations

import enum
from typing import Union

from ._library import lib


class Status(enum.IntEnum):
    """llmk_status, value for value (LLMK_ERROR_SHAPE_MISMATCH is Status.SHAPE_MISMATCH)."""

    SUCCESS = 0
    NULL_POINTER = 1
    UNSUPPORTED_DTYPE = 2
    DTYPE_MISMATCH = 3
    INVALID_NDIM = 4
    INVALID_SHAPE = 5
    SHAPE_MISMATCH = 6
    INVALID_STRIDE = 7
    NOT_CONTIGUOUS = 8
    MISALIGNED = 9
    OVERLAP = 10
    WRONG_MEMORY_SPACE = 11
    WRONG_DEVICE = 12
    INVALID_VALUE = 13
    UNSUPPORTED = 14
    NO_DEVICE = 15
    OUT_OF_MEMORY = 16
    CUDA = 17
    CUDA_CONTEXT_LOST = 18
    INTERNAL = 19


class LlmkError(Exception):
    """A libllmk call failed.

    status: the Status it returned (a plain int for a status added to llmk after this binding).
    message: the library's detail, naming the argument at fault, e.g.
        "rms_norm: weight has 4095 elements, x rows have 4096".

    Arguments the binding itself can judge (a numpy dtype with no llmk dtype, byte strides that
    are not whole elements, a read-only output) raise TypeError or ValueError instead.
    """

    def __init__(self, status: int, message: str):
        try:
            self.status: Union[Status, int] = Status(status)
            label = self.status.name
        except ValueError:  # appended to llmk_status after this binding was written
            self.status = status
            label = f"status {status} ({lib.llmk_status_string(status).decode()})"
        self.message = message
        super().__init__(f"{label}: {message}" if message else label)

    def __reduce__(self):
        # The formatted text is not what __init__ takes; pickle (multiprocessing) needs the parts.
        return type(self), (int(self.status), self.message)


def check(status: int) -> None:
    """Raises LlmkError for a status other than SUCCESS. Call it right after the failing call."""
    if status != Status.SUCCESS:
        # The detail is thread-local and valid only until the next llmk call on this thread.
        raise LlmkError(status, lib.llmk_last_error_message().decode("utf-8", "replace"))
