"""What every llmk benchmark shares: timing, the copy ceiling, llmk views of torch tensors, and the
table and JSON every bench script writes.

Timing: the median of per-iteration CUDA-event timings after warm-up. Inputs rotate between SETS
sets of buffers, each far larger than L2, so no iteration finds its data in cache. Outputs rotate
too: llmk writes into each set's output, and a peer that returns a new tensor has its last
SETS - 1 results kept alive (rotating()), so the caching allocator hands it SETS buffers in turn.
Without that, such a peer wrote the same block every call, and an output that fits in L2 was still
there, dirty, from the call before: compiled F.embedding of 2048 rows of 4096 bf16 (16 MB out)
timed 11.5 us that way and 12.9 us with its outputs rotating, llmk's time (H200).

A sleep kernel queued ahead of each timed loop keeps the GPU behind the host, so the events time
the kernels and not Python's call overhead. back_to_back_us times many calls between two events
instead, for the decode rows, where an event pair's fixed cost is a tenth of a call. Bytes count
each tensor read once and each written once; the copy's bandwidth (bytes read + written, measured
in the same process) is the ceiling every row is a fraction of.

torch.compile'd peers go through compiled(), which passes dynamic=False: one kernel specialized
to each shape, as a model compiled for its shapes gets. By default a function called with a
second shape is recompiled with symbolic sizes, and that kernel can be several times slower
(compiled SiLU-and-mul at 16384 x 11008 took 290 us after a call at 16384 x 5504, against 127 us
when specialized).
"""
import argparse
import collections
import json
import statistics

import torch

import llmk

WARMUP = 10  # calls before timing, and at least one per set (see warm_up)
ITERATIONS = 60
SETS = 2
BACK_TO_BACK = 16  # calls per timing of back_to_back_us (bench/read_floor.cu's kBackToBack)

TORCH_TO_LLMK = {
    torch.float32: llmk.DType.F32,
    torch.float16: llmk.DType.F16,
    torch.bfloat16: llmk.DType.BF16,
    torch.int32: llmk.DType.I32,
    torch.int64: llmk.DType.I64,
}
DTYPE_NAMES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def as_llmk(t):
    """An llmk view of a CUDA torch tensor (torch's __cuda_array_interface__ refuses bf16)."""
    return llmk.Tensor(t.data_ptr(), TORCH_TO_LLMK[t.dtype], tuple(t.shape), tuple(t.stride()))


def compiled(fn):
    """fn under torch.compile, specialized to each shape it meets (dynamic=False, see above)."""
    return torch.compile(fn, dynamic=False)


def rotating(fn, sets):
    """fn, keeping its last len(sets) - 1 results alive: see the top of the file."""
    held = collections.deque(maxlen=len(sets) - 1)

    def run(*args):
        held.append(fn(*args))
    return run


def warm_up(fn, sets):
    """WARMUP calls, and at least one on every set: a set's first use costs more than later ones.
    The shapes part of bench_matmul.py rotates ~200 sets of a 0.5 MB weight through L2; with 10
    warm-up calls, whichever engine was timed first at such a shape took 5.7 us against 5.2-5.3
    for the same cuBLASLt plan timed after it, and with every set warmed both took 5.5 (H200)."""
    for i in range(max(WARMUP, len(sets))):
        fn(*sets[i % len(sets)])


def median_us(fn, sets):
    """Median time of fn(*sets[i % len(sets)]) in microseconds."""
    fn = rotating(fn, sets)
    warm_up(fn, sets)
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


def back_to_back_us(fn, sets, calls=BACK_TO_BACK, timings=20):
    """Median time of one call when `calls` calls run back to back between two events, the sets
    rotating: a call's cost inside a CUDA graph or a decode loop, where no event separates it from
    the next kernel. median_us's event pair around each call adds a fixed cost (an empty kernel
    timed so takes ~3.5 us on the H200) that matters next to a call of tens of microseconds."""
    fn = rotating(fn, sets)
    warm_up(fn, sets)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(timings + 1)]
    torch.cuda.synchronize()
    torch.cuda._sleep(20_000_000)  # the backlog covers the host queueing every call
    events[0].record()
    for t in range(timings):
        for i in range(calls):
            fn(*sets[(t * calls + i) % len(sets)])
        events[t + 1].record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) * 1000.0 / calls
                             for a, b in zip(events, events[1:]))


def copy_ceiling():
    """Device-to-device copy bandwidth, bytes read + written, in GB/s, and its time in us."""
    n = 1 << 30
    sets = [(torch.empty(n, dtype=torch.uint8, device="cuda"),
             torch.empty(n, dtype=torch.uint8, device="cuda")) for _ in range(SETS)]
    us = median_us(lambda src, dst: dst.copy_(src), sets)
    return 2 * n / us / 1e3, us


def parse_args(description, add_arguments=None):
    """--json and --markdown, plus whatever add_arguments(parser) adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="write the rows here as JSON")
    parser.add_argument("--markdown", help="write the table here")
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args()


def row(label, bytes_moved, llmk_us, copy_gbs, peers_us, error=None):
    """One benchmark row: llmk's time and bandwidth, its fraction of the copy, and each peer's.
    `error` is a sanity figure against torch (e.g. the relative error), or None."""
    gbs = bytes_moved / llmk_us / 1e3
    return {
        "op": label, "bytes": bytes_moved, "llmk_us": llmk_us, "llmk_gbs": gbs,
        "fraction_of_copy": gbs / copy_gbs, "error_vs_torch": error,
        "peers": {name: {"us": us, "gbs": bytes_moved / us / 1e3} for name, us in peers_us.items()},
    }


def report(args, title, rows, copy_gbs, copy_us):
    """Prints the table and writes it (and the rows as JSON) where the arguments say."""
    props = torch.cuda.get_device_properties(0)
    device = f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}"
    lines = [
        f"### {title}",
        "",
        f"Device: {device}. Copy ceiling: {copy_gbs:.0f} GB/s (1 GiB, {copy_us:.0f} us).",
        "",
        "| op | llmk us | llmk GB/s | of copy | best peer | peer us | peer GB/s | speedup | err vs torch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        error = "" if r["error_vs_torch"] is None else f"{r['error_vs_torch']:.1e}"
        if r["peers"]:
            best = min(r["peers"], key=lambda name: r["peers"][name]["us"])
            peer = r["peers"][best]
            peer_cells = (f"{best} | {peer['us']:.1f} | {peer['gbs']:.0f} | "
                          f"{peer['us'] / r['llmk_us']:.2f}x")
        else:
            peer_cells = "none | | |"
        lines.append(f"| {r['op']} | {r['llmk_us']:.1f} | {r['llmk_gbs']:.0f} | "
                     f"{100 * r['fraction_of_copy']:.1f}% | {peer_cells} | {error} |")
    others = [f"- {r['op']}: " + ", ".join(f"{n} {p['us']:.1f} us" for n, p in r["peers"].items())
              for r in rows if r["peers"]]
    table = "\n".join(lines + ["", "All peers measured:"] + others) + "\n"
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "copy_gbs": copy_gbs, "rows": rows}, f, indent=1)
