#!/usr/bin/env python3
"""Norm benchmarks: llmk beside PyTorch and a device-to-device copy, in one process on one GPU.

Timing and byte counting as bench/common.py says.

Usage: bench_norms.py [--json FILE] [--markdown FILE]
"""
import torch
import torch.nn.functional as F

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)


class Case:
    def __init__(self, op, rows, hidden, dtype, peers):
        self.op, self.rows, self.hidden, self.dtype, self.peers = op, rows, hidden, dtype, peers

    @property
    def label(self):
        return f"{self.op} {self.rows}x{self.hidden} {DTYPE_NAMES[self.dtype]}"

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        rows_traffic = {"rms_norm": 2, "layer_norm": 2, "add_rms_norm": 4}[self.op]
        return (rows_traffic * self.rows * self.hidden + 2 * self.hidden) * element


def make_sets(case):
    shape = (case.rows, case.hidden)
    sets = []
    for _ in range(SETS):
        x = torch.randn(shape, dtype=case.dtype, device="cuda")
        residual = torch.randn(shape, dtype=case.dtype, device="cuda")
        weight = 1 + 0.2 * torch.randn(case.hidden, dtype=case.dtype, device="cuda")
        bias = 0.1 * torch.randn(case.hidden, dtype=case.dtype, device="cuda")
        y = torch.empty(shape, dtype=case.dtype, device="cuda")
        sets.append((x, residual, weight, bias, y))
    return sets


def llmk_fn(case, ctx):
    stream = torch.cuda.current_stream().cuda_stream
    if case.op == "rms_norm":
        def run(x, residual, weight, bias, y):
            llmk.rms_norm(ctx, x, weight, 1e-6, y, stream=stream)
    elif case.op == "add_rms_norm":
        def run(x, residual, weight, bias, y):
            llmk.add_rms_norm(ctx, x, residual, weight, 1e-6, y, stream=stream)
    else:
        def run(x, residual, weight, bias, y):
            llmk.layer_norm(ctx, x, weight, bias, 1e-5, y, stream=stream)
    return run


def rms_norm_eager(x, residual, weight, bias, y):
    return F.rms_norm(x, (x.shape[-1],), weight, 1e-6)


def add_rms_norm_eager(x, residual, weight, bias, y):
    summed = x + residual
    return F.rms_norm(summed, (x.shape[-1],), weight, 1e-6), summed


def layer_norm_eager(x, residual, weight, bias, y):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, 1e-5)


PEERS = {
    "F.rms_norm": rms_norm_eager,
    "compiled rms_norm": compiled(rms_norm_eager),
    "eager add + F.rms_norm": add_rms_norm_eager,
    "compiled add + rms_norm": compiled(add_rms_norm_eager),
    "F.layer_norm": layer_norm_eager,
}

CASES = [
    Case("rms_norm", 16384, 4096, torch.bfloat16, ["F.rms_norm", "compiled rms_norm"]),
    Case("add_rms_norm", 16384, 4096, torch.bfloat16,
         ["eager add + F.rms_norm", "compiled add + rms_norm"]),
    Case("layer_norm", 16384, 4096, torch.bfloat16, ["F.layer_norm"]),
    Case("rms_norm", 16384, 4096, torch.float16, ["F.rms_norm"]),
    Case("add_rms_norm", 16384, 4096, torch.float16, ["compiled add + rms_norm"]),
    Case("layer_norm", 16384, 4096, torch.float16, ["F.layer_norm"]),
    Case("rms_norm", 8192, 4096, torch.float32, ["F.rms_norm"]),
    Case("rms_norm", 4096, 8192, torch.bfloat16, ["F.rms_norm"]),
    Case("rms_norm", 2048, 16384, torch.bfloat16, ["F.rms_norm"]),
    Case("rms_norm", 4096, 11008, torch.bfloat16, ["F.rms_norm"]),
    Case("add_rms_norm", 4096, 5120, torch.bfloat16, ["compiled add + rms_norm"]),
]


def check_against_torch(case, sets, run):
    """Relative error of llmk's output against PyTorch's float32 computation, as a sanity line."""
    x, residual, weight, bias, y = (t.clone() for t in sets[0])
    run(*(as_llmk(t) for t in (x, residual, weight, bias, y)))
    torch.cuda.synchronize()
    x0, r0, w, b, _ = sets[0]
    xf = x0.float()
    if case.op == "add_rms_norm":
        xf = (x0.float() + r0.float()).to(case.dtype).float()
    if case.op == "layer_norm":
        want = F.layer_norm(xf, (case.hidden,), w.float(), b.float(), 1e-5)
    else:
        want = F.rms_norm(xf, (case.hidden,), w.float(), 1e-6)
    return ((y.float() - want).norm() / want.norm()).item()


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    rows = []
    for case in CASES:
        sets = make_sets(case)
        llmk_sets = [tuple(as_llmk(t) for t in s) for s in sets]  # views built outside the timing
        run = llmk_fn(case, ctx)
        error = check_against_torch(case, sets, run)
        llmk_us = median_us(run, llmk_sets)
        peers = {name: median_us(PEERS[name], sets) for name in case.peers}
        rows.append(row(case.label, case.bytes_moved(), llmk_us, copy_gbs, peers, error))
        del sets, llmk_sets
        torch.cuda.empty_cache()
    report(args, "Norms", rows, copy_gbs, copy_us)
    ctx.close()


if __name__ == "__main__":
    main()
