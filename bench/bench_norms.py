#!/usr/bin/env python3
"""Norm benchmarks: llmk beside PyTorch and a device-to-device copy, in one process on one GPU.

Every figure is the median of per-iteration CUDA-event timings after warm-up. Inputs rotate
between two sets of buffers, each far larger than L2, so no iteration finds its data in cache.
A sleep kernel queued ahead of each timed loop keeps the GPU behind the host, so the events time
the kernels and not Python's call overhead. Bytes count each tensor read once and each written
once; the copy's bandwidth (bytes read + written) is the ceiling every row is a fraction of.

Usage: bench_norms.py [--json FILE] [--markdown FILE]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F

import llmk

WARMUP = 10
ITERATIONS = 60
SETS = 2

TORCH_TO_LLMK = {
    torch.float32: llmk.DType.F32,
    torch.float16: llmk.DType.F16,
    torch.bfloat16: llmk.DType.BF16,
}


def as_llmk(t):
    """An llmk view of a CUDA torch tensor (torch's __cuda_array_interface__ refuses bf16)."""
    return llmk.Tensor(t.data_ptr(), TORCH_TO_LLMK[t.dtype], tuple(t.shape), tuple(t.stride()))


def median_us(fn, sets):
    """Median time of fn(*sets[i % len(sets)]) in microseconds."""
    for i in range(WARMUP):
        fn(*sets[i % len(sets)])
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(ITERATIONS)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(ITERATIONS)]
    torch.cuda.synchronize()
    torch.cuda._sleep(20_000_000)  # ~10 ms of backlog
    for i in range(ITERATIONS):
        starts[i].record()
        fn(*sets[i % len(sets)])
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends))


def copy_ceiling():
    """Device-to-device copy bandwidth, bytes read + written, in GB/s."""
    n = 1 << 30
    sets = [(torch.empty(n, dtype=torch.uint8, device="cuda"),
             torch.empty(n, dtype=torch.uint8, device="cuda")) for _ in range(SETS)]
    us = median_us(lambda src, dst: dst.copy_(src), sets)
    return 2 * n / us / 1e3, us


class Case:
    def __init__(self, op, rows, hidden, dtype, peers):
        self.op, self.rows, self.hidden, self.dtype, self.peers = op, rows, hidden, dtype, peers

    @property
    def label(self):
        name = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[self.dtype]
        return f"{self.op} {self.rows}x{self.hidden} {name}"

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
    "compiled rms_norm": torch.compile(rms_norm_eager),
    "eager add + F.rms_norm": add_rms_norm_eager,
    "compiled add + rms_norm": torch.compile(add_rms_norm_eager),
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here as JSON")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args()

    ctx = llmk.Context.cuda(0)
    props = torch.cuda.get_device_properties(0)
    copy_gbs, copy_us = copy_ceiling()
    device = f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}"
    rows = []
    for case in CASES:
        sets = make_sets(case)
        llmk_sets = [tuple(as_llmk(t) for t in s) for s in sets]  # views built outside the timing
        run = llmk_fn(case, ctx)
        error = check_against_torch(case, sets, run)
        llmk_us = median_us(run, llmk_sets)
        gbs = case.bytes_moved() / llmk_us / 1e3
        peers = {name: median_us(PEERS[name], sets) for name in case.peers}
        rows.append({
            "op": case.label, "llmk_us": llmk_us, "llmk_gbs": gbs,
            "fraction_of_copy": gbs / copy_gbs, "rel_error_vs_torch_f32": error,
            "peers": {name: {"us": us, "gbs": case.bytes_moved() / us / 1e3}
                      for name, us in peers.items()},
        })
        del sets, llmk_sets
        torch.cuda.empty_cache()

    lines = [
        f"Device: {device}. Copy ceiling: {copy_gbs:.0f} GB/s (1 GiB, {copy_us:.0f} us).",
        "",
        "| op | llmk us | llmk GB/s | of copy | best peer | peer us | peer GB/s | speedup | rel err |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        best = min(r["peers"], key=lambda name: r["peers"][name]["us"])
        peer = r["peers"][best]
        lines.append(
            f"| {r['op']} | {r['llmk_us']:.1f} | {r['llmk_gbs']:.0f} | "
            f"{100 * r['fraction_of_copy']:.1f}% | {best} | {peer['us']:.1f} | {peer['gbs']:.0f} | "
            f"{peer['us'] / r['llmk_us']:.2f}x | {r['rel_error_vs_torch_f32']:.1e} |")
    others = [f"- {r['op']}: " + ", ".join(f"{n} {p['us']:.1f} us" for n, p in r["peers"].items())
              for r in rows]
    table = "\n".join(lines + ["", "All peers measured:"] + others) + "\n"
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "copy_gbs": copy_gbs, "rows": rows}, f, indent=1)
    ctx.close()


if __name__ == "__main__":
    main()
