#!/usr/bin/env python3
"""Activation benchmarks: llmk beside PyTorch and a device-to-device copy, in one process on one GPU.

Timing and byte counting as bench/common.py says. The gated rows take vLLM's silu_and_mul input,
x = [rows, 2n] holding [gate | up], passed to llmk as two column views of x; the bias rows read x
and a bias of n elements.

Usage: bench_activation.py [--json FILE] [--markdown FILE]
"""
import torch
import torch.nn.functional as F

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)

ACTIVATIONS = {
    "silu": llmk.Activation.SILU,
    "gelu": llmk.Activation.GELU,
    "gelu_tanh": llmk.Activation.GELU_TANH,
}


class Case:
    """form: "gated" (a(gate) * up), "bias" (a(x + bias)) or "plain" (a(x)); n is the output's
    row length (the gated input rows are 2n)."""

    def __init__(self, form, activation, rows, n, dtype, peers):
        self.form, self.activation, self.rows, self.n = form, activation, rows, n
        self.dtype, self.peers = dtype, peers

    @property
    def label(self):
        name = {"gated": f"{self.activation}_and_mul", "bias": f"bias + {self.activation}",
                "plain": self.activation}[self.form]
        width = 2 * self.n if self.form == "gated" else self.n
        return f"{name} {self.rows}x{width} {DTYPE_NAMES[self.dtype]}"

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        inputs = 2 * self.rows * self.n if self.form == "gated" else self.rows * self.n
        bias = self.n if self.form == "bias" else 0
        return (inputs + self.rows * self.n + bias) * element


def make_sets(case):
    """Per set: (x, bias, y) as torch tensors; bias is None unless the form has one."""
    sets = []
    for _ in range(SETS):
        width = 2 * case.n if case.form == "gated" else case.n
        x = 2 * torch.randn(case.rows, width, dtype=case.dtype, device="cuda")
        bias = (0.5 * torch.randn(case.n, dtype=case.dtype, device="cuda")
                if case.form == "bias" else None)
        y = torch.empty(case.rows, case.n, dtype=case.dtype, device="cuda")
        sets.append((x, bias, y))
    return sets


def llmk_sets(case, sets):
    """The llmk views of each set, built outside the timing."""
    views = []
    for x, bias, y in sets:
        if case.form == "gated":
            views.append((as_llmk(x[..., :case.n]), as_llmk(x[..., case.n:]), as_llmk(y)))
        else:
            views.append((as_llmk(x), None if bias is None else as_llmk(bias), as_llmk(y)))
    return views


def llmk_fn(case, ctx):
    stream = torch.cuda.current_stream().cuda_stream
    activation = ACTIVATIONS[case.activation]
    if case.form == "gated":
        def run(gate, up, y):
            llmk.gated_activation(ctx, gate, up, activation, y, stream=stream)
    else:
        def run(x, bias, y):
            llmk.bias_activation(ctx, x, bias, activation, y, stream=stream)
    return run


def silu_and_mul(x, bias, y):
    n = x.shape[-1] // 2
    return F.silu(x[..., :n]) * x[..., n:]


def gelu_tanh_and_mul(x, bias, y):
    n = x.shape[-1] // 2
    return F.gelu(x[..., :n], approximate="tanh") * x[..., n:]


def bias_gelu(x, bias, y):
    return F.gelu(x + bias)


def silu(x, bias, y):
    return F.silu(x)


PEERS = {
    "eager silu * up": silu_and_mul,
    "compiled silu * up": compiled(silu_and_mul),
    "eager gelu_tanh * up": gelu_tanh_and_mul,
    "compiled gelu_tanh * up": compiled(gelu_tanh_and_mul),
    "eager F.gelu(x + b)": bias_gelu,
    "compiled F.gelu(x + b)": compiled(bias_gelu),
    "F.silu": silu,
    "compiled F.silu": compiled(silu),
}

CASES = [
    # The shape of ../shared/design/peers-h200.md's SiLU-and-mul row: a 16384 x 5504 input.
    Case("gated", "silu", 16384, 2752, torch.bfloat16, ["eager silu * up", "compiled silu * up"]),
    Case("gated", "silu", 16384, 5504, torch.bfloat16, ["eager silu * up", "compiled silu * up"]),
    Case("bias", "gelu", 16384, 5504, torch.bfloat16,
         ["eager F.gelu(x + b)", "compiled F.gelu(x + b)"]),
    Case("gated", "gelu_tanh", 16384, 5504, torch.bfloat16,
         ["eager gelu_tanh * up", "compiled gelu_tanh * up"]),
    Case("plain", "silu", 16384, 5504, torch.bfloat16, ["F.silu", "compiled F.silu"]),
    Case("gated", "silu", 16384, 5504, torch.float16, ["eager silu * up", "compiled silu * up"]),
    Case("bias", "gelu", 16384, 5504, torch.float16,
         ["eager F.gelu(x + b)", "compiled F.gelu(x + b)"]),
    # vLLM's decode-sized call: one token of a Llama-2-7B MLP.
    Case("gated", "silu", 1, 11008, torch.bfloat16, ["eager silu * up", "compiled silu * up"]),
]


def reference(case, x, bias):
    """PyTorch's float32 result for one set's inputs."""
    xf = x.float()
    if case.form == "gated":
        gate, up = xf[..., :case.n], xf[..., case.n:]
        if case.activation == "gelu_tanh":
            return F.gelu(gate, approximate="tanh") * up
        return (F.gelu(gate) if case.activation == "gelu" else F.silu(gate)) * up
    if case.form == "bias":
        xf = xf + bias.float()
    if case.activation == "gelu_tanh":
        return F.gelu(xf, approximate="tanh")
    return F.gelu(xf) if case.activation == "gelu" else F.silu(xf)


def check_against_torch(case, sets, views, run):
    """Relative error of llmk's output against PyTorch's float32 computation, as a sanity line."""
    x, bias, y = sets[0]
    y.fill_(float("nan"))
    run(*views[0])
    torch.cuda.synchronize()
    want = reference(case, x, bias)
    return ((y.float() - want).norm() / want.norm()).item()


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    rows = []
    for case in CASES:
        sets = make_sets(case)
        views = llmk_sets(case, sets)
        run = llmk_fn(case, ctx)
        error = check_against_torch(case, sets, views, run)
        llmk_us = median_us(run, views)
        peers = {name: median_us(PEERS[name], sets) for name in case.peers}
        rows.append(row(case.label, case.bytes_moved(), llmk_us, copy_gbs, peers, error))
        del sets, views
        torch.cuda.empty_cache()
    report(args, "Activations", rows, copy_gbs, copy_us)
    ctx.close()


if __name__ == "__main__":
    main()
