"""DType, and Tensor: the llmk_tensor view, built from raw pointers, numpy arrays or CUDA arrays."""
from __future__ import annotations

import enum
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ._library import MAX_DIMS, TensorStruct, lib


class DType(enum.IntEnum):
    """llmk_dtype, value for value."""

    F32 = 0
    F16 = 1
    BF16 = 2  # numpy has no bfloat16: wrap uint16 bit patterns with dtype=DType.BF16
    I8 = 3
    U8 = 4
    I32 = 5
    I4 = 6  # two per byte; no numpy equivalent, so only through Tensor(data_ptr, ...)
    I64 = 7

    @property
    def bits(self) -> int:
        """Bits per element (4 for I4)."""
        return lib.llmk_dtype_bits(self)


# The numpy dtypes that mean one llmk dtype unambiguously (uint16 could be bf16 or a u16 llmk
# does not have, so it needs an explicit dtype).
_FROM_NUMPY = {
    np.dtype(np.float32): DType.F32,
    np.dtype(np.float16): DType.F16,
    np.dtype(np.int8): DType.I8,
    np.dtype(np.uint8): DType.U8,
    np.dtype(np.int32): DType.I32,
    np.dtype(np.int64): DType.I64,
}


def _int64(value: Any, what: str) -> int:
    value = int(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise OverflowError(f"{what} {value} does not fit in int64")
    return value


def _contiguous_strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    strides, step = [], 1
    for extent in reversed(shape):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))


def _element_strides(byte_strides: Sequence[int], itemsize: int) -> Tuple[int, ...]:
    """numpy and __cuda_array_interface__ count strides in bytes; llmk counts elements.

    Negative strides pass through unchanged: llmk reports them (INVALID_STRIDE) rather than the
    binding quietly copying the data.
    """
    for stride in byte_strides:
        if stride % itemsize != 0:
            raise ValueError(f"byte stride {stride} is not a multiple of the element size "
                             f"{itemsize}; llmk strides count whole elements")
    return tuple(stride // itemsize for stride in byte_strides)


def _llmk_dtype(numpy_dtype: np.dtype, dtype: Optional[DType]) -> DType:
    """The llmk dtype of data stored as numpy_dtype: inferred, or an explicit reinterpretation."""
    if dtype is None:
        try:
            return _FROM_NUMPY[numpy_dtype]
        except KeyError:
            raise TypeError(f"numpy dtype {numpy_dtype} has no llmk dtype; for bfloat16 pass its "
                            f"bits as uint16 with dtype=llmk.DType.BF16") from None
    dtype = DType(dtype)
    if not numpy_dtype.isnative or numpy_dtype.itemsize * 8 != dtype.bits:
        raise TypeError(f"numpy dtype {numpy_dtype} cannot hold {dtype.name} elements "
                        f"({dtype.bits} bits, native byte order)")
    return dtype


class Tensor:
    """A strided view of memory that llmk reads or writes. It owns nothing.

    data_ptr: address of the view's first element (host memory for a CPU context, device or
        managed memory of the context's GPU for a CUDA context).
    shape, strides: extents and strides counted in ELEMENTS, not bytes (torch's t.stride() is in
        elements; numpy's strides are bytes: use Tensor.from_numpy). strides=None means
        C-contiguous. At most 8 dimensions.
    readonly: refuses the view as an op's output.
    keepalive: any object to keep referenced as long as the view (the memory's owner).

    Nothing else is checked here: llmk checks every view when an op runs and reports what is
    wrong with it.
    """

    def __init__(self, data_ptr: int, dtype: DType, shape: Sequence[int],
                 strides: Optional[Sequence[int]] = None, *, readonly: bool = False,
                 keepalive: Any = None):
        shape = tuple(_int64(n, "extent") for n in shape)
        if len(shape) > MAX_DIMS:
            raise ValueError(f"{len(shape)} dimensions; llmk tensors have at most {MAX_DIMS}")
        strides = (_contiguous_strides(shape) if strides is None
                   else tuple(_int64(s, "stride") for s in strides))
        if len(strides) != len(shape):
            raise ValueError(f"{len(strides)} strides for {len(shape)} dimensions")
        padding = (0,) * (MAX_DIMS - len(shape))
        # Built once, so that calling an op with the same Tensor again costs no conversion.
        self._struct = TensorStruct(data_ptr, DType(dtype), len(shape), shape + padding,
                                    strides + padding)
        self._shape, self._strides = shape, strides
        self._readonly = readonly
        self._keepalive = keepalive

    @classmethod
    def from_numpy(cls, array: np.ndarray, dtype: Optional[DType] = None) -> "Tensor":
        """A view of a numpy array's memory (no copy), for a CPU context.

        The dtype is inferred (float32, float16, int8, uint8, int32, int64) unless given; an
        explicit dtype reinterprets elements of the same size, e.g. uint16 bits as DType.BF16.
        """
        if not isinstance(array, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(array).__name__}")
        dtype = _llmk_dtype(array.dtype, dtype)
        return cls(array.ctypes.data, dtype, array.shape,
                   _element_strides(array.strides, array.itemsize),
                   readonly=not array.flags.writeable, keepalive=array)

    @classmethod
    def from_cuda_array(cls, obj: Any, dtype: Optional[DType] = None) -> "Tensor":
        """A view of an object with __cuda_array_interface__ (version 2 or 3), e.g. CuPy arrays.

        The interface's strides are bytes (None: C-contiguous). Its version-3 "stream" entry is
        not waited on: run the op on the producer's stream (stream=...) or order the streams.
        """
        interface = obj.__cuda_array_interface__
        if interface.get("version") not in (2, 3):
            raise ValueError(f"__cuda_array_interface__ version {interface.get('version')}; "
                             f"llmk reads versions 2 and 3")
        if interface.get("mask") is not None:
            raise ValueError("masked CUDA arrays are not supported")
        numpy_dtype = np.dtype(interface["typestr"])
        dtype = _llmk_dtype(numpy_dtype, dtype)
        shape = tuple(interface["shape"])
        byte_strides = interface.get("strides")
        strides = None if byte_strides is None else _element_strides(byte_strides,
                                                                     numpy_dtype.itemsize)
        data_ptr, readonly = interface["data"]
        return cls(data_ptr, dtype, shape, strides, readonly=bool(readonly), keepalive=obj)

    @property
    def data_ptr(self) -> int:
        return self._struct.data or 0

    @property
    def dtype(self) -> DType:
        return DType(self._struct.dtype)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def strides(self) -> Tuple[int, ...]:
        """In elements."""
        return self._strides

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def readonly(self) -> bool:
        return self._readonly

    def __repr__(self) -> str:
        return (f"llmk.Tensor(data_ptr={self.data_ptr:#x}, dtype={self.dtype.name}, "
                f"shape={self._shape}, strides={self._strides})")


def as_tensor(obj: Any) -> Tensor:
    """What every op accepts: a Tensor as is, a numpy array (host memory) through
    Tensor.from_numpy, or an object with __cuda_array_interface__ through Tensor.from_cuda_array.
    Nothing is copied; bf16 data needs an explicit Tensor.from_numpy(..., dtype=DType.BF16) or
    Tensor(...).
    """
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return Tensor.from_numpy(obj)
    if hasattr(obj, "__cuda_array_interface__"):
        return Tensor.from_cuda_array(obj)
    raise TypeError(f"expected an llmk.Tensor, a numpy array or an object with "
                    f"__cuda_array_interface__, got {type(obj).__name__}")
