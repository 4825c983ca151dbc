"""Python arguments as the C functions take them: tensor views by pointer, enum values, and config
structs filled from their llmk_*_config_init."""
from __future__ import annotations

import ctypes
import operator
from typing import Any, Callable, Optional, Tuple, Type, TypeVar

from ._context import DeviceBuffer
from ._tensor import Tensor, as_tensor

Struct = TypeVar("Struct", bound=ctypes.Structure)


def _ref(tensor: Tensor):
    return ctypes.byref(tensor._struct)


def tensor_arg(obj: Any):
    """A tensor the op only reads (anything as_tensor takes), as a const llmk_tensor*."""
    return _ref(as_tensor(obj))


def optional_tensor_arg(obj: Optional[Any]):
    """tensor_arg, or NULL for None."""
    return None if obj is None else tensor_arg(obj)


def written_tensor_arg(obj: Any, role: str):
    """A tensor the op writes. A read-only view (a non-writeable numpy array, a read-only CUDA
    array) is refused here: llmk cannot tell, and would write it anyway."""
    tensor = as_tensor(obj)
    if tensor.readonly:
        raise ValueError(f"{role} is read-only, but the op writes it")
    return _ref(tensor)


def workspace_arg(obj: Optional[Any]) -> Tuple[Optional[int], int]:
    """The (void* workspace, size_t workspace_bytes) pair of an op's scratch memory: a
    DeviceBuffer (all of it), anything as_tensor takes (a Tensor, a numpy array, a
    __cuda_array_interface__ object: contiguous, its bytes), or None (NULL, 0 bytes). A raw
    pointer is passed as llmk.Tensor(ptr, llmk.DType.U8, (nbytes,)). llmk checks the size against
    the op's *_workspace_size, the alignment and the memory space; the binding refuses what it
    cannot describe as one range of bytes, and read-only memory."""
    if obj is None:
        return None, 0
    if isinstance(obj, DeviceBuffer):
        return obj.ptr, obj.nbytes
    tensor = as_tensor(obj)
    if tensor.readonly:
        raise ValueError("workspace is read-only, but the op writes it")
    if any(extent < 0 for extent in tensor.shape):
        raise ValueError(f"workspace has a negative extent: shape {tensor.shape}")
    if 0 in tensor.shape:
        return tensor.data_ptr or None, 0
    elements = 1
    for extent, stride in reversed(list(zip(tensor.shape, tensor.strides))):
        if extent != 1 and stride != elements:
            raise ValueError(f"workspace must be contiguous (one range of bytes); it has shape "
                             f"{tensor.shape} and strides {tensor.strides}")
        elements *= extent
    return tensor.data_ptr or None, elements * tensor.dtype.bits // 8


def enum_arg(value: Any) -> int:
    """An enum member or a plain int, passed on as is: llmk refuses values it does not know
    (INVALID_VALUE), which leaves room for values added to the library after this binding."""
    return operator.index(value)


# The integer field types of the config structs: (signed, bits).
_INTEGER_FIELDS = {ctypes.c_int32: (True, 32), ctypes.c_int64: (True, 64),
                   ctypes.c_uint32: (False, 32), ctypes.c_uint64: (False, 64)}


def config_struct(config: Any, struct_type: Type[Struct], init: Callable[[Any], None]) -> Struct:
    """The C struct of a config object (RopeConfig, AdamWConfig, ...: an attribute per field after
    struct_size, under the C names): filled by its llmk_*_config_init, so that defaults and
    struct_size come from the loaded library, then with every attribute that is not None.

    Integer fields take integers only and refuse values their C type cannot hold, which ctypes
    would otherwise wrap around silently.
    """
    struct = struct_type()
    init(ctypes.byref(struct))
    for name, field_type in struct_type._fields_[1:]:
        value = getattr(config, name)
        if value is None:
            continue
        if field_type in _INTEGER_FIELDS:
            value = operator.index(value)
            signed, bits = _INTEGER_FIELDS[field_type]
            low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
            if not low <= value < high:
                raise OverflowError(
                    f"{name} = {value} does not fit in {'' if signed else 'u'}int{bits}")
        else:
            value = float(value)
        setattr(struct, name, value)
    return struct
