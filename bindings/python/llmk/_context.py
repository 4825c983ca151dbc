"""Contexts (where ops run) and DeviceBuffer (memory from llmk_malloc, for callers without a CUDA
runtime of their own)."""
from __future__ import annotations

import ctypes
import enum
import weakref
from typing import Optional, Sequence

import numpy as np

from ._errors import check
from ._library import lib
from ._tensor import DType, Tensor


class Backend(enum.IntEnum):
    """llmk_backend, value for value."""

    CPU = 0
    CUDA = 1


def cuda_device_count() -> int:
    """CUDA devices llmk can use; 0 when there is no driver or GPU."""
    count = ctypes.c_int32()
    check(lib.llmk_cuda_device_count(ctypes.byref(count)))
    return count.value


def stream_handle(stream: Optional[int]) -> Optional[int]:
    """A cudaStream_t for ctypes: None is the legacy default stream (NULL)."""
    if stream is None or (isinstance(stream, int) and not isinstance(stream, bool)):
        return stream
    raise TypeError(f"stream must be None or an int cudaStream_t handle (e.g. "
                    f"torch.cuda.current_stream().cuda_stream), got {type(stream).__name__}")


class Context:
    """Where ops run: the CPU, or one CUDA device.

    CPU: tensors are host memory (numpy arrays, or DeviceBuffers of this context); ops finish
    before returning; the stream argument is ignored.
    CUDA: tensors are device (or managed) memory of that device; ops are queued on the stream
    argument and return at once: wait with synchronize() (DeviceBuffer copies wait themselves).

    One context may be used from several threads. close() (or leaving a with block) frees the
    DeviceBuffers still open on it, then the context; garbage collection releases an
    unreferenced context too.
    """

    def __init__(self, backend: Backend, device: int = 0):
        handle = ctypes.c_void_p()
        check(lib.llmk_context_create(Backend(backend), device, ctypes.byref(handle)))
        self._finalizer = weakref.finalize(self, lib.llmk_context_destroy, handle.value)
        self._buffers = weakref.WeakSet()  # weak: an open buffer keeps its context alive, not back
        backend_out, device_out = ctypes.c_int(), ctypes.c_int32()
        check(lib.llmk_context_info(handle, ctypes.byref(backend_out), ctypes.byref(device_out)))
        self._handle_value = handle.value
        self._backend, self._device = Backend(backend_out.value), device_out.value

    @classmethod
    def cpu(cls) -> "Context":
        return cls(Backend.CPU)

    @classmethod
    def cuda(cls, device: int = 0) -> "Context":
        return cls(Backend.CUDA, device)

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def device(self) -> int:
        """The CUDA device ordinal; -1 for the CPU."""
        return self._device

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def handle(self) -> int:
        """The llmk_context* as an int."""
        if self.closed:
            raise ValueError("this llmk Context is closed")
        return self._handle_value

    def synchronize(self, stream: Optional[int] = None) -> None:
        """Waits for the work queued on `stream` (None: the default stream); no-op on the CPU."""
        check(lib.llmk_synchronize(self.handle, stream_handle(stream)))

    def close(self) -> None:
        for buffer in list(self._buffers):
            buffer.close()
        self._finalizer()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "CPU" if self._backend == Backend.CPU else f"CUDA device {self._device}"
        return f"<llmk.Context {where}{' (closed)' if self.closed else ''}>"


class DeviceBuffer:
    """nbytes (> 0) from llmk_malloc: device memory of the context's GPU, or host memory on a CPU
    context; 256-byte aligned, uninitialized.

    Copies to and from numpy run on the default stream and are waited for. tensor() makes views.
    Freed by close(), by leaving a with block, by garbage collection, or when the context closes.
    """

    def __init__(self, ctx: Context, nbytes: int):
        if nbytes < 0:
            raise ValueError(f"nbytes is {nbytes}")
        ptr = ctypes.c_void_p()
        check(lib.llmk_malloc(ctx.handle, nbytes, ctypes.byref(ptr)))
        self._finalizer = weakref.finalize(self, lib.llmk_free, ctx.handle, ptr.value)
        self._ptr, self._nbytes, self._context = ptr.value, nbytes, ctx
        ctx._buffers.add(self)

    @property
    def ptr(self) -> int:
        if not self._finalizer.alive:
            raise ValueError("this DeviceBuffer is closed")
        return self._ptr

    @property
    def nbytes(self) -> int:
        return self._nbytes

    @property
    def context(self) -> Context:
        return self._context

    def _check_range(self, byte_offset: int, nbytes: int) -> None:
        if byte_offset < 0 or byte_offset + nbytes > self._nbytes:
            raise ValueError(f"bytes [{byte_offset}, {byte_offset + nbytes}) are outside the "
                             f"{self._nbytes}-byte buffer")

    def copy_from_host(self, array: np.ndarray, byte_offset: int = 0) -> None:
        """Copies the bytes of `array` (in C order) into the buffer at byte_offset."""
        source = np.ascontiguousarray(array)  # a copy of a source is harmless: nothing goes back
        self._check_range(byte_offset, source.nbytes)
        check(lib.llmk_memcpy(self._context.handle, self.ptr + byte_offset, source.ctypes.data,
                              source.nbytes, None))
        self._context.synchronize()

    def copy_to_host(self, array: np.ndarray, byte_offset: int = 0) -> np.ndarray:
        """Fills `array` (C-contiguous, writable) with the buffer's bytes from byte_offset;
        returns it."""
        if not (isinstance(array, np.ndarray) and array.flags.c_contiguous
                and array.flags.writeable):
            raise ValueError("copy_to_host needs a writable, C-contiguous numpy array")
        self._check_range(byte_offset, array.nbytes)
        check(lib.llmk_memcpy(self._context.handle, array.ctypes.data, self.ptr + byte_offset,
                              array.nbytes, None))
        self._context.synchronize()
        return array

    def tensor(self, dtype: DType, shape: Sequence[int], strides: Optional[Sequence[int]] = None,
               offset: int = 0) -> Tensor:
        """A view into the buffer starting `offset` elements in; shape and strides in elements
        (strides=None: C-contiguous). The view must lie inside the buffer."""
        dtype = DType(dtype)
        if offset < 0 or offset * dtype.bits % 8 != 0:
            raise ValueError(f"offset {offset} ({dtype.name} elements) must be >= 0 and start "
                             f"on a whole byte")
        view = Tensor(self.ptr + offset * dtype.bits // 8, dtype, shape, strides, keepalive=self)
        # Empty views touch nothing, and llmk refuses negative extents and strides when an op
        # runs: only the remaining views can reach past the buffer.
        if all(n > 0 for n in view.shape) and all(s >= 0 for s in view.strides):
            furthest = offset + sum((n - 1) * s for n, s in zip(view.shape, view.strides))
            if (furthest + 1) * dtype.bits > self._nbytes * 8:
                raise ValueError(f"the view reaches element {furthest}, beyond the "
                                 f"{self._nbytes}-byte buffer")
        return view

    def close(self) -> None:
        # Detaching turns off the garbage-collection path (which cannot report a failure), so an
        # explicit close reports llmk_free's status.
        release = self._finalizer.detach()
        if release is not None:
            _, free, args, _ = release
            check(free(*args))

    def __enter__(self) -> "DeviceBuffer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if not self._finalizer.alive else f"at {self._ptr:#x}"
        return f"<llmk.DeviceBuffer {self._nbytes} bytes {state} on {self._context!r}>"
