#!/usr/bin/env python3
"""Prefill attention: llmk beside PyTorch SDPA's FlashAttention-2 and cuDNN backends, in one
process on one GPU.

Timing as bench/common.py says (median of CUDA-event timings after warm-up, inputs rotating
between sets). TFLOP/s counts 4 B H T^2 D (QK^T and PV), halved when causal. The ceiling is the
dense GEMM rate of the same dtype measured in the run, after the rows (torch.matmul, 8192^3):
"of GEMM" is llmk's rate over it. The first row is measured once before the table, so that every
row meets the same clocks. Every tensor is [B, T, H, D] in memory (BSHD, as serving engines hold
it); torch's SDPA gets the [B, H, T, D] view of the same memory (flash-attention's native
layout), llmk the BSHD view itself.

Rows:
  - the issue's grid: B x T = 16384 tokens, 32 heads, head_dim 128, T = 1024, 4096, 16384,
    f16 and bf16, causal and not;
  - head_dim 64 (T = 4096), GQA 32 query heads over 8 KV heads (T = 4096), bf16, both masks;
  - packed sequences of lengths 37, 512, 1000, 2048, 3000 (32 heads, head_dim 128, bf16), llmk's
    attention_varlen beside torch's flash varlen entry (aten._flash_attention_forward) and, for
    cuDNN, SDPA per sequence.
"llmk" is the call as users make it (AttentionKernel.AUTO: the Hopper kernel where it runs);
"portable" the same call forced onto the portable (mma.sync) kernel, for comparison.
"err" is llmk's relative error (Frobenius) against torch's float32 math on the same inputs, for
one head of the row's shape: a sanity figure.

Usage: bench_attention.py [--json FILE] [--markdown FILE]
"""
import json
import sys
import traceback

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import llmk
import common
from common import DTYPE_NAMES, as_llmk, parse_args

DEVICE = "cuda"
TOKENS, HEADS, HEAD_DIM = 16384, 32, 128
GRID_T = (1024, 4096, 16384)
VARLEN = (37, 512, 1000, 2048, 3000)
PEERS = {"FA2": SDPBackend.FLASH_ATTENTION, "cuDNN": SDPBackend.CUDNN_ATTENTION}


def stream():
    return torch.cuda.current_stream().cuda_stream


def flops(b, t_q, t_k, heads, d, causal):
    full = 4.0 * b * heads * t_q * t_k * d
    return full / 2 if causal else full


def gemm_peak_tflops(dtype):
    n = 8192
    sets = [(torch.randn(n, n, device=DEVICE).to(dtype), torch.randn(n, n, device=DEVICE).to(dtype))
            for _ in range(2)]
    us = common.median_us(lambda a, b: torch.matmul(a, b), sets)
    return 2.0 * n ** 3 / us / 1e6


def bshd(b, t, heads, d, dtype):
    return torch.randn(b, t, heads, d, device=DEVICE).to(dtype)


def reference_error(q, k, v, o, causal):
    """o's relative error against float32 math, on head 0 of batch 0 (GQA: its KV head)."""
    qh, kh, vh = (x[0, :, 0].float() for x in (q, k, v))
    want = F.scaled_dot_product_attention(qh[None], kh[None], vh[None], is_causal=causal)[0]
    got = o[0, :, 0].float()
    return ((got - want).norm() / want.norm()).item()


class Bench:
    def __init__(self, ctx):
        self.ctx, self.rows, self.failures = ctx, [], []
        self.peak = {}

    def measure_peaks(self):
        """The dense GEMM rate per dtype, measured after the rows: run first, its power draw
        lowered the clocks for the first row (T = 1024 bf16 read 0.91x of FA2 there, 0.97x f16)."""
        self.peak = {dtype: gemm_peak_tflops(dtype) for dtype in (torch.float16, torch.bfloat16)}
        for r in self.rows:
            peak = self.peak[r["dtype_torch"]]
            r["gemm_peak_tflops"] = peak
            r["of_gemm_peak"] = None if r["llmk_tflops"] is None else r["llmk_tflops"] / peak
            del r["dtype_torch"]

    def time(self, what, fn, sets):
        """The median in us, or None (and a note) when fn raises."""
        try:
            return common.median_us(fn, sets)
        except Exception as error:  # noqa: BLE001: a benchmark reports and goes on
            self.failures.append(f"{what}: {type(error).__name__}: {error}")
            traceback.print_exc()
            return None

    def add(self, label, dtype, causal, work, llmk_us, portable_us, peers_us, error):
        rate = lambda us: None if us is None else work / us / 1e6
        self.rows.append({
            "op": label, "dtype": DTYPE_NAMES[dtype], "causal": causal, "flop": work,
            "llmk_us": llmk_us, "llmk_tflops": rate(llmk_us), "dtype_torch": dtype,
            "portable_us": portable_us, "portable_tflops": rate(portable_us),
            "error_vs_torch": error,
            "peers": {name: {"us": us, "tflops": rate(us)} for name, us in peers_us.items()},
        })

    def dense(self, label, b, t, q_heads, kv_heads, d, dtype, causal):
        """One padded-batch row: llmk and both SDPA backends over the same BSHD memory."""
        sets = [(bshd(b, t, q_heads, d, dtype), bshd(b, t, kv_heads, d, dtype),
                 bshd(b, t, kv_heads, d, dtype), torch.empty(b, t, q_heads, d, dtype=dtype,
                                                              device=DEVICE)) for _ in range(2)]
        config = llmk.AttentionConfig(causal=causal)
        portable = llmk.AttentionConfig(causal=causal, kernel=llmk.AttentionKernel.PORTABLE)
        views = [tuple(as_llmk(x) for x in s) for s in sets]
        ctx, s = self.ctx, stream()
        llmk_us = self.time(f"llmk {label}", lambda q, k, v, o:
                            llmk.attention(ctx, config, q, k, v, o, None, stream=s), views)
        portable_us = self.time(f"llmk portable {label}", lambda q, k, v, o:
                                llmk.attention(ctx, portable, q, k, v, o, None, stream=s), views)
        gqa = q_heads != kv_heads
        peers = {}
        for name, backend in PEERS.items():
            def sdpa(q, k, v, o, backend=backend):
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(
                        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal,
                        enable_gqa=gqa)
            peers[name] = self.time(f"{name} {label}", sdpa, sets)
        q, k, v, o = sets[0]
        error = None
        if llmk_us is not None:
            llmk.attention(ctx, config, *views[0], None, stream=s)
            torch.cuda.synchronize()
            error = reference_error(q, k, v, o, causal)
        self.add(label, dtype, causal, flops(b, t, t, q_heads, d, causal), llmk_us, portable_us,
                 peers, error)

    def varlen(self, lengths, dtype, causal):
        """Packed sequences: llmk's attention_varlen, torch's flash varlen entry, cuDNN per
        sequence."""
        total, h, d = sum(lengths), HEADS, HEAD_DIM
        offsets = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32,
                               device=DEVICE)
        sets = [(torch.randn(total, h, d, device=DEVICE).to(dtype),
                 torch.randn(total, h, d, device=DEVICE).to(dtype),
                 torch.randn(total, h, d, device=DEVICE).to(dtype),
                 torch.empty(total, h, d, dtype=dtype, device=DEVICE)) for _ in range(2)]
        config = llmk.AttentionConfig(causal=causal)
        portable = llmk.AttentionConfig(causal=causal, kernel=llmk.AttentionKernel.PORTABLE)
        ctx, s, longest = self.ctx, stream(), max(lengths)
        cu = as_llmk(offsets)
        views = [tuple(as_llmk(x) for x in st) for st in sets]
        llmk_us = self.time("llmk varlen", lambda q, k, v, o: llmk.attention_varlen(
            ctx, config, q, k, v, cu, cu, longest, o, None, stream=s), views)
        portable_us = self.time("llmk portable varlen", lambda q, k, v, o: llmk.attention_varlen(
            ctx, portable, q, k, v, cu, cu, longest, o, None, stream=s), views)

        def flash_varlen(q, k, v, o):
            return torch.ops.aten._flash_attention_forward(
                q, k, v, offsets, offsets, longest, longest, 0.0, causal, False)
        peers = {"FA2": self.time("FA2 varlen", flash_varlen, sets)}
        bounds = list(zip(offsets.tolist()[:-1], offsets.tolist()[1:]))

        def cudnn_each(q, k, v, o):
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                for lo, hi in bounds:
                    F.scaled_dot_product_attention(
                        q[None, lo:hi].transpose(1, 2), k[None, lo:hi].transpose(1, 2),
                        v[None, lo:hi].transpose(1, 2), is_causal=causal)
        peers["cuDNN (per sequence)"] = self.time("cuDNN varlen", cudnn_each, sets)
        work = sum(flops(1, n, n, h, d, causal) for n in lengths)
        label = "varlen " + "+".join(map(str, lengths)) + f" H{h} D{d}"
        error = None
        if llmk_us is not None:
            q, k, v, o = sets[0]
            llmk.attention_varlen(ctx, config, *views[0][:3], cu, cu, longest, views[0][3], None,
                                  stream=s)
            torch.cuda.synchronize()
            lo, hi = bounds[-1]
            error = reference_error(q[None, lo:hi], k[None, lo:hi], v[None, lo:hi],
                                    o[None, lo:hi], causal)
        self.add(label, dtype, causal, work, llmk_us, portable_us, peers, error)


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def table(bench, device):
    peak = ", ".join(f"{DTYPE_NAMES[t]} {p:.0f}" for t, p in bench.peak.items())
    lines = [
        "### Prefill attention (TFLOP/s: 4 B H T^2 D, halved when causal)", "",
        f"Device: {device}. Dense GEMM 8192^3 in the same run, TFLOP/s: {peak}.", "",
        "| shape | dtype | mask | llmk ms | llmk TFLOP/s | of GEMM | portable TFLOP/s "
        "| FA2 TFLOP/s | cuDNN TFLOP/s | vs FA2 | vs cuDNN | err |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in bench.rows:
        fa2 = r["peers"].get("FA2", {}).get("tflops")
        cudnn = next((p["tflops"] for n, p in r["peers"].items() if n.startswith("cuDNN")), None)
        mine = r["llmk_tflops"]
        ratio = lambda peer: "" if mine is None or peer is None else f"{mine / peer:.2f}x"
        lines.append(
            f"| {r['op']} | {r['dtype']} | {'causal' if r['causal'] else 'none'} | "
            f"{fmt(r['llmk_us'] and r['llmk_us'] / 1e3, '.3f')} | {fmt(mine, '.0f')} | "
            f"{fmt(r['of_gemm_peak'] and 100 * r['of_gemm_peak'], '.0f')}% | "
            f"{fmt(r['portable_tflops'], '.0f')} | {fmt(fa2, '.0f')} | "
            f"{fmt(cudnn, '.0f')} | {ratio(fa2)} | {ratio(cudnn)} | {fmt(r['error_vs_torch'], '.1e')} |")
    if bench.failures:
        lines += ["", "Failures:"] + [f"- {f}" for f in bench.failures]
    return "\n".join(lines) + "\n"


def main():
    args = parse_args(__doc__.splitlines()[0])
    props = torch.cuda.get_device_properties(0)
    device = f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}"
    ctx = llmk.Context.cuda(0)
    bench = Bench(ctx)
    # The first row once untimed-for-the-table, so it meets the clocks the other rows meet.
    bench.dense("warm-up", TOKENS // GRID_T[0], GRID_T[0], HEADS, HEADS, HEAD_DIM, torch.bfloat16,
                False)
    bench.rows.clear()
    for dtype in (torch.bfloat16, torch.float16):
        for t in GRID_T:
            for causal in (False, True):
                bench.dense(f"B{TOKENS // t} T{t} H{HEADS} D{HEAD_DIM}", TOKENS // t, t, HEADS,
                            HEADS, HEAD_DIM, dtype, causal)
    for causal in (False, True):
        bench.dense(f"B4 T4096 H{HEADS} D64", 4, 4096, HEADS, HEADS, 64, torch.bfloat16, causal)
        bench.dense(f"B4 T4096 H32/8 (GQA) D{HEAD_DIM}", 4, 4096, HEADS, 8, HEAD_DIM,
                    torch.bfloat16, causal)
        bench.varlen(VARLEN, torch.bfloat16, causal)
    bench.measure_peaks()
    text = table(bench, device)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "gemm_peak_tflops": {DTYPE_NAMES[t]: p for t, p in
                                                              bench.peak.items()},
                       "rows": bench.rows, "failures": bench.failures}, f, indent=1)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
