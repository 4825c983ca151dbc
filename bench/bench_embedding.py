#!/usr/bin/env python3
"""Embedding benchmarks: llmk's gather beside PyTorch and a device-to-device copy, in one process on
one GPU.

Timing and byte counting as bench/common.py says: bytes are the ids read, the gathered table rows
read and y written (not the whole table).

Usage: bench_embedding.py [--json FILE] [--markdown FILE]
"""
import torch
import torch.nn.functional as F

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)


class Case:
    def __init__(self, tokens, vocab, hidden, dtype, peers):
        self.tokens, self.vocab, self.hidden, self.dtype, self.peers = (tokens, vocab, hidden,
                                                                        dtype, peers)

    @property
    def label(self):
        return (f"embedding {self.tokens} of {self.vocab}x{self.hidden} "
                f"{DTYPE_NAMES[self.dtype]}")

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        return self.tokens * 8 + 2 * self.tokens * self.hidden * element


def make_sets(case):
    sets = []
    for _ in range(SETS):
        ids = torch.randint(0, case.vocab, (case.tokens,), dtype=torch.int64, device="cuda")
        table = torch.randn(case.vocab, case.hidden, dtype=case.dtype, device="cuda")
        y = torch.empty(case.tokens, case.hidden, dtype=case.dtype, device="cuda")
        sets.append((ids, table, y))
    return sets


def llmk_fn(ctx):
    stream = torch.cuda.current_stream().cuda_stream

    def run(ids, table, y):
        llmk.embedding(ctx, ids, table, y, stream=stream)
    return run


def embedding_eager(ids, table, y):
    return F.embedding(ids, table)


def index_select_out(ids, table, y):
    return torch.index_select(table, 0, ids, out=y)


PEERS = {
    "F.embedding": embedding_eager,
    "compiled F.embedding": compiled(embedding_eager),
    "index_select(out=y)": index_select_out,
}
ALL_PEERS = list(PEERS)

CASES = [
    Case(16384, 32000, 4096, torch.bfloat16, ALL_PEERS),
    Case(2048, 32000, 4096, torch.bfloat16, ALL_PEERS),
    Case(16384, 32000, 4096, torch.float32, ["F.embedding", "compiled F.embedding"]),
    Case(16384, 128256, 4096, torch.bfloat16, ["F.embedding"]),  # Llama 3's vocabulary
]


def check_against_torch(sets, run):
    """Largest difference between llmk's rows and F.embedding's: a copy, so 0."""
    ids, table, y = sets[0]
    y.fill_(float("nan"))
    run(as_llmk(ids), as_llmk(table), as_llmk(y))
    torch.cuda.synchronize()
    return (y.float() - F.embedding(ids, table).float()).abs().max().item()


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    rows = []
    run = llmk_fn(ctx)
    for case in CASES:
        sets = make_sets(case)
        llmk_sets = [tuple(as_llmk(t) for t in s) for s in sets]  # views built outside the timing
        error = check_against_torch(sets, run)
        llmk_us = median_us(run, llmk_sets)
        peers = {name: median_us(PEERS[name], sets) for name in case.peers}
        rows.append(row(case.label, case.bytes_moved(), llmk_us, copy_gbs, peers, error))
        del sets, llmk_sets
        torch.cuda.empty_cache()
    report(args, "Embedding", rows, copy_gbs, copy_us)
    ctx.close()


if __name__ == "__main__":
    main()
