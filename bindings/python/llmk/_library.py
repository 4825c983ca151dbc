"""Finding and loading libllmk, checking its ABI, and declaring every C function's prototype.

This is the only module that knows the C signatures; the rest of the package calls `lib`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from typing import Iterator, Tuple

#: LLMK_ABI_VERSION of the llmk.h this binding was written for (the SONAME's major number).
ABI_VERSION = 0
#: LLMK_MAX_DIMS: the most dimensions an llmk_tensor holds.
MAX_DIMS = 8

_SONAME = f"libllmk.so.{ABI_VERSION}"


class LibraryLoadError(ImportError):
    """libllmk could not be loaded, or it is not the ABI version this binding was written for."""


class TensorStruct(ctypes.Structure):
    """llmk_tensor, field for field."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class RopeConfigStruct(ctypes.Structure):
    """llmk_rope_config, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("style", ctypes.c_int32),
        ("rotary_dim", ctypes.c_int32),
        ("theta", ctypes.c_double),
        ("llama3_factor", ctypes.c_double),
        ("llama3_low_freq_factor", ctypes.c_double),
        ("llama3_high_freq_factor", ctypes.c_double),
        ("llama3_original_max_position", ctypes.c_double),
    ]


class AdamWConfigStruct(ctypes.Structure):
    """llmk_adamw_config, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("lr", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("weight_decay", ctypes.c_double),
        ("step", ctypes.c_int64),
    ]


class MatmulConfigStruct(ctypes.Structure):
    """llmk_matmul_config, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("alpha", ctypes.c_float),
        ("beta", ctypes.c_float),
        ("activation", ctypes.c_int32),
        ("allow_tf32", ctypes.c_int32),
        ("path", ctypes.c_int32),
    ]


class MatmulTuningStruct(ctypes.Structure):
    """llmk_matmul_tuning, field for field: what llmk_matmul_tune writes back."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("candidates", ctypes.c_int32),
        ("chosen", ctypes.c_int32),
        ("first_us", ctypes.c_float),
        ("chosen_us", ctypes.c_float),
    ]


class MlpConfigStruct(ctypes.Structure):
    """llmk_mlp_config, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("allow_tf32", ctypes.c_int32),
        ("path", ctypes.c_int32),
        ("tune", ctypes.c_int32),
    ]


class AttentionConfigStruct(ctypes.Structure):
    """llmk_attention_config, field for field."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("scale", ctypes.c_float),
        ("causal", ctypes.c_int32),
        ("window_left", ctypes.c_int32),
        ("window_right", ctypes.c_int32),
        ("softcap", ctypes.c_float),
        ("dropout_p", ctypes.c_float),
        ("dropout_offset", ctypes.c_uint32),
        ("dropout_seed", ctypes.c_uint64),
        ("kernel", ctypes.c_int32),
    ]


# C enums (llmk_status, llmk_dtype, llmk_backend, llmk_activation) are int-sized on every platform
# llmk targets.
_enum = ctypes.c_int
_opaque = ctypes.c_void_p  # llmk_context*, data pointers, cudaStream_t
_tensor = ctypes.POINTER(TensorStruct)
_rope_config = ctypes.POINTER(RopeConfigStruct)
_adamw_config = ctypes.POINTER(AdamWConfigStruct)
_matmul_config = ctypes.POINTER(MatmulConfigStruct)
_matmul_tuning = ctypes.POINTER(MatmulTuningStruct)
_mlp_config = ctypes.POINTER(MlpConfigStruct)
_attention_config = ctypes.POINTER(AttentionConfigStruct)
_int64_out = ctypes.POINTER(ctypes.c_int64)

# name: (restype, argtypes), in the order of llmk.h.
_PROTOTYPES = {
    "llmk_status_string": (ctypes.c_char_p, [_enum]),
    "llmk_last_error_message": (ctypes.c_char_p, []),
    "llmk_version": (ctypes.c_char_p, []),
    "llmk_abi_version": (ctypes.c_int32, []),
    "llmk_dtype_bits": (ctypes.c_int32, [_enum]),
    "llmk_cuda_device_count": (_enum, [ctypes.POINTER(ctypes.c_int32)]),
    "llmk_context_create": (_enum, [_enum, ctypes.c_int32, ctypes.POINTER(_opaque)]),
    "llmk_context_destroy": (None, [_opaque]),
    "llmk_context_info": (_enum, [_opaque, ctypes.POINTER(_enum), ctypes.POINTER(ctypes.c_int32)]),
    "llmk_malloc": (_enum, [_opaque, ctypes.c_size_t, ctypes.POINTER(_opaque)]),
    "llmk_free": (_enum, [_opaque, _opaque]),
    "llmk_memcpy": (_enum, [_opaque, _opaque, _opaque, ctypes.c_size_t, _opaque]),
    "llmk_synchronize": (_enum, [_opaque, _opaque]),
    "llmk_rms_norm": (_enum, [_opaque, _tensor, _tensor, ctypes.c_float, _tensor, _opaque]),
    "llmk_add_rms_norm": (
        _enum, [_opaque, _tensor, _tensor, _tensor, ctypes.c_float, _tensor, _opaque]),
    "llmk_layer_norm": (
        _enum, [_opaque, _tensor, _tensor, _tensor, ctypes.c_float, _tensor, _opaque]),
    "llmk_bias_activation": (_enum, [_opaque, _tensor, _tensor, _enum, _tensor, _opaque]),
    "llmk_gated_activation": (_enum, [_opaque, _tensor, _tensor, _enum, _tensor, _opaque]),
    "llmk_rope_config_init": (None, [_rope_config]),
    "llmk_rope": (
        _enum, [_opaque, _rope_config, _tensor, _tensor, _tensor, _tensor, _opaque]),
    "llmk_embedding": (_enum, [_opaque, _tensor, _tensor, _tensor, _opaque]),
    "llmk_kv_cache_write": (
        _enum, [_opaque, _tensor, _tensor, _tensor, _tensor, _tensor, _opaque]),
    "llmk_paged_kv_cache_write": (
        _enum, [_opaque, _tensor, _tensor, _tensor, _tensor, _tensor, _opaque]),
    "llmk_matmul_config_init": (None, [_matmul_config]),
    "llmk_matmul": (
        _enum, [_opaque, _matmul_config, _tensor, _tensor, _tensor, _tensor, _tensor, _opaque]),
    "llmk_matmul_path_for": (
        _enum, [_opaque, _matmul_config, _tensor, _tensor, _tensor, _tensor, _tensor,
                ctypes.POINTER(ctypes.c_int32)]),
    "llmk_matmul_tune": (
        _enum, [_opaque, _matmul_config, _tensor, _tensor, _tensor, _tensor, _tensor, _opaque,
                _matmul_tuning]),
    "llmk_matmul_cache_stats": (_enum, [_opaque, _int64_out, _int64_out, _int64_out]),
    "llmk_mlp_config_init": (None, [_mlp_config]),
    "llmk_ffn_workspace_size": (
        _enum, [_opaque, _tensor, _tensor, ctypes.POINTER(ctypes.c_size_t)]),
    "llmk_ffn": (
        _enum, [_opaque, _mlp_config, _tensor, _tensor, _tensor, _tensor, _tensor, _enum, _opaque,
                ctypes.c_size_t, _tensor, _opaque]),
    "llmk_gated_mlp_workspace_size": (
        _enum, [_opaque, _tensor, _tensor, ctypes.POINTER(ctypes.c_size_t)]),
    "llmk_gated_mlp": (
        _enum, [_opaque, _mlp_config, _tensor, _tensor, _tensor, _tensor, _enum, _opaque,
                ctypes.c_size_t, _tensor, _opaque]),
    "llmk_attention_config_init": (None, [_attention_config]),
    "llmk_attention": (
        _enum, [_opaque, _attention_config, _tensor, _tensor, _tensor, _tensor, _tensor, _opaque]),
    "llmk_attention_varlen": (
        _enum, [_opaque, _attention_config, _tensor, _tensor, _tensor, _tensor, _tensor,
                ctypes.c_int64, _tensor, _tensor, _opaque]),
    "llmk_adamw_config_init": (None, [_adamw_config]),
    "llmk_adamw_step": (
        _enum, [_opaque, _adamw_config, _tensor, _tensor, _tensor, _tensor, _opaque]),
}


def _candidates() -> Iterator[Tuple[str, str]]:
    """(where, what to dlopen) in lookup order, computed lazily: find_library spawns processes."""
    explicit = os.environ.get("LLMK_LIBRARY")
    if explicit:
        # An explicit choice that does not load must not silently fall back to another copy.
        yield "LLMK_LIBRARY", explicit
        return
    package_dir = Path(__file__).resolve().parent
    for name in (_SONAME, "libllmk.so"):
        yield "beside the llmk package", str(package_dir / name)
    # The SONAME first: it names the ABI this binding speaks. dlopen searches LD_LIBRARY_PATH,
    # the ld.so cache and the default directories.
    yield "dynamic loader", _SONAME
    found = ctypes.util.find_library("llmk")
    if found and found != _SONAME:
        yield "ctypes.util.find_library", found


def check_abi_version(found: int, expected: int = ABI_VERSION, library: str = "libllmk") -> None:
    """Raises LibraryLoadError unless the loaded library's ABI version is the expected one."""
    if found != expected:
        raise LibraryLoadError(
            f"{library} has ABI version {found}, but this llmk binding was written for ABI "
            f"version {expected}: use a libllmk.so.{expected} (LLMK_LIBRARY=/path/to/it) or the "
            f"binding that matches the library")


def _declare(lib: ctypes.CDLL, path: str, name: str) -> None:
    try:
        function = getattr(lib, name)
    except AttributeError:
        raise LibraryLoadError(f"{path} does not export {name}; it is not a libllmk this "
                               f"binding can use") from None
    function.restype, function.argtypes = _PROTOTYPES[name]


def _load() -> Tuple[ctypes.CDLL, str]:
    failures = []
    for where, path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as error:
            failures.append(f"  {path} ({where}): {error}")
            continue
        _declare(lib, path, "llmk_abi_version")
        check_abi_version(lib.llmk_abi_version(), library=path)
        for name in _PROTOTYPES:
            _declare(lib, path, name)
        return lib, path
    raise LibraryLoadError(
        "cannot load libllmk; tried, in order:\n" + "\n".join(failures) +
        "\nSet LLMK_LIBRARY to the path of libllmk.so, put libllmk.so.0 beside the llmk "
        "package, or install it where the dynamic loader finds it.")


lib, _loaded_from = _load()


def library_path() -> str:
    """The path (or, when the dynamic loader searched, the name) libllmk was loaded from."""
    return _loaded_from


def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return lib.llmk_version().decode()


def abi_version() -> int:
    """The loaded library's LLMK_ABI_VERSION (checked at import to equal the binding's)."""
    return lib.llmk_abi_version()
