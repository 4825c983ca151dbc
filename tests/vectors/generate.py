#!/usr/bin/env python3
"""Writes llmk's shared test vectors: tests/vectors/manifest.txt and tests/vectors/data/*.npy.

Expected outputs are computed in float64 with numpy, independently of llmk: each op's cases and
reference live in ops/<op>.py, the building blocks in vectorlib.py, and the format is described
in README.md. Every random draw comes from a generator seeded by the case name, so rerunning this
script reproduces the files bit for bit.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, HERE)

from ops import activation, adamw, attention, embedding, kv_cache, matmul, norm, rope  # noqa: E402

OPS = [norm, activation, rope, embedding, kv_cache, adamw, matmul, attention]


def main():
    cases = [case for op in OPS for case in op.cases()]
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    os.makedirs(DATA, exist_ok=True)
    for stale in os.listdir(DATA):
        os.remove(os.path.join(DATA, stale))
    lines = [
        "# llmk test vectors, written by generate.py; the format is in README.md.",
        "# One case per line: space-separated key=value tokens.",
    ]
    for case in cases:
        for file, array in case.files.items():
            np.save(os.path.join(DATA, file), array, allow_pickle=False)
        lines.append(case.line())
    with open(os.path.join(HERE, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    size = sum(os.path.getsize(os.path.join(DATA, f)) for f in os.listdir(DATA))
    print(f"{len(cases)} cases, {len(os.listdir(DATA))} files, {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
