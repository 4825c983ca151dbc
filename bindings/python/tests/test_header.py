"""The binding mirrors include/llmk.h: every function declared, enum values, struct layout."""
import ctypes
import re

import pytest

import llmk
from llmk._library import _PROTOTYPES, ABI_VERSION, MAX_DIMS, TensorStruct
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


def test_constants_and_tensor_layout(header):
    assert (define(header, "LLMK_ABI_VERSION"), define(header, "LLMK_MAX_DIMS")) == (
        ABI_VERSION, MAX_DIMS)
    # void*, two int32, two int64[8]: no padding anywhere on LP64.
    assert ctypes.sizeof(TensorStruct) == 8 + 4 + 4 + 2 * 8 * MAX_DIMS
    assert TensorStruct.shape.offset == 16
