"""The binding mirrors include/llmk.h: every function declared, enum values, struct layout."""
import ctypes
import dataclasses
import re

import pytest

import llmk
from llmk._library import (_PROTOTYPES, ABI_VERSION, MAX_DIMS, AdamWConfigStruct,
                           AttentionConfigStruct, MatmulConfigStruct, MatmulTuningStruct,
                           MlpConfigStruct, RopeConfigStruct, TensorStruct, lib)
from vector_cases import VECTORS_DIR

HEADER = VECTORS_DIR.parents[1] / "include" / "llmk.h"


@pytest.fixture(scope="module")
def header():
    if not HEADER.is_file():
        pytest.skip(f"no llmk.h at {HEADER}")
    return re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)  # comments out


def define(header, name):
    return int(re.search(rf"#define {name} (\d+)", header).group(1))


def enum_values(header, c_name):
    body = re.search(rf"typedef enum {c_name} \{{(.*?)\}}", header, re.S).group(1)
    return {name: int(value) for name, value in re.findall(r"(LLMK_\w+) = (\d+)", body)}


def test_every_function_is_declared(header):
    functions = set(re.findall(r"LLMK_API\b[^;(]*?\b(llmk_\w+)\s*\(", header))
    assert functions == set(_PROTOTYPES)


def test_enums(header):
    assert enum_values(header, "llmk_status") == {
        "LLMK_SUCCESS" if s == 0 else f"LLMK_ERROR_{s.name}": s.value for s in llmk.Status}
    assert enum_values(header, "llmk_dtype") == {f"LLMK_DTYPE_{d.name}": d.value for d in llmk.DType}
    assert enum_values(header, "llmk_backend") == {
        f"LLMK_BACKEND_{b.name}": b.value for b in llmk.Backend}
    assert enum_values(header, "llmk_activation") == {
        f"LLMK_ACTIVATION_{a.name}": a.value for a in llmk.Activation}
    assert enum_values(header, "llmk_rope_style") == {
        f"LLMK_ROPE_{s.name}": s.value for s in llmk.RopeStyle}
    assert enum_values(header, "llmk_matmul_path") == {
        f"LLMK_MATMUL_PATH_{p.name}": p.value for p in llmk.MatmulPath}
    assert enum_values(header, "llmk_attention_kernel") == {
        f"LLMK_ATTENTION_KERNEL_{k.name}": k.value for k in llmk.AttentionKernel}


def test_constants_and_tensor_layout(header):
    assert (define(header, "LLMK_ABI_VERSION"), define(header, "LLMK_MAX_DIMS")) == (
        ABI_VERSION, MAX_DIMS)
    # void*, two int32, two int64[8]: no padding anywhere on LP64.
    assert ctypes.sizeof(TensorStruct) == 8 + 4 + 4 + 2 * 8 * MAX_DIMS
    assert TensorStruct.shape.offset == 16


C_TYPES = {"size_t": ctypes.c_size_t, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64,
           "uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64, "float": ctypes.c_float,
           "double": ctypes.c_double}


def struct_fields(header, c_name):
    """The (name, ctypes type) fields of `typedef struct c_name {...}`, in order."""
    body = re.search(rf"typedef struct {c_name} \{{(.*?)\}}", header, re.S).group(1)
    # \s+: clang-format may break a long declaration after its type.
    return [(name, C_TYPES[c_type]) for c_type, name in re.findall(r"(\w+)\s+(\w+);", body)]


@pytest.mark.parametrize("c_name, struct, init, config", [
    ("llmk_rope_config", RopeConfigStruct, lib.llmk_rope_config_init, llmk.RopeConfig),
    ("llmk_adamw_config", AdamWConfigStruct, lib.llmk_adamw_config_init, llmk.AdamWConfig),
    ("llmk_matmul_config", MatmulConfigStruct, lib.llmk_matmul_config_init, llmk.MatmulConfig),
    ("llmk_mlp_config", MlpConfigStruct, lib.llmk_mlp_config_init, llmk.MlpConfig),
    ("llmk_attention_config", AttentionConfigStruct, lib.llmk_attention_config_init,
     llmk.AttentionConfig),
])
def test_config_structs(header, c_name, struct, init, config):
    fields = struct_fields(header, c_name)
    assert struct._fields_ == fields
    # The Python config has every field but struct_size, under the C names.
    assert [field.name for field in dataclasses.fields(config)] == [name for name, _ in fields[1:]]
    filled = struct()
    init(ctypes.byref(filled))
    assert filled.struct_size == ctypes.sizeof(struct)


@pytest.mark.parametrize("c_name, struct, result", [
    ("llmk_matmul_tuning", MatmulTuningStruct, llmk.MatmulTuning),
])
def test_result_structs(header, c_name, struct, result):
    """Structs llmk writes back (struct_size set by the caller): the Python result has every
    field but struct_size, under the C names, in the C order."""
    fields = struct_fields(header, c_name)
    assert struct._fields_ == fields and fields[0] == ("struct_size", ctypes.c_size_t)
    assert list(result._fields) == [name for name, _ in fields[1:]]
