"""Vectors of embedding: y[t] = table[ids[t]], rows copied exactly."""
import numpy as np

from vectorlib import FLOAT_DTYPES, Case, contiguous


# (label, tokens, vocab, hidden, ids dtype, ids stride, table row stride, y row stride)
GEOMETRIES = [
    ("t5_v11_h1", 5, 11, 1, "i32", 1, 1, 1),
    ("t7_v13_h3_strided_ids", 7, 13, 3, "i64", 3, 3, 3),
    ("t9_v20_h17_padded_rows", 9, 20, 17, "i32", 2, 20, 19),
    ("t6_v16_h64", 6, 16, 64, "i64", 1, 64, 64),
    ("t33_v40_h24_repeated_ids", 33, 40, 24, "i32", 1, 32, 40),
    ("t1_v1_h8", 1, 1, 8, "i64", 1, 8, 8),
]


def cases():
    cases = []
    for dtype in FLOAT_DTYPES:
        for label, tokens, vocab, hidden, ids_dtype, ids_stride, table_stride, y_stride in (
                GEOMETRIES):
            case = Case("embedding", dtype, f"{label}_{ids_dtype}")
            if label.endswith("repeated_ids"):
                ids = case.rng.integers(0, 4, tokens)  # few distinct ids, each used many times
            else:
                ids = case.rng.integers(0, vocab, tokens)
            ids[0] = vocab - 1  # the last row, where an off-by-one would read past the table
            case.ints("ids", ids, strides=(ids_stride,), dtype=ids_dtype)
            table = case.input("table", (vocab, hidden), (table_stride, 1))
            case.output("y", (tokens, hidden), (y_stride, 1), table[ids], rtol=0.0, atol=0.0)
            cases.append(case)
    return cases
