#!/usr/bin/env python3
"""Matmul and MLP benchmarks: llmk beside PyTorch (cuBLAS), in one process on one GPU.

The copy bandwidth measured in the same run is the ceiling of the decode rows.

Timing as bench/common.py says (median of CUDA-event timings after warm-up, inputs rotating
between sets far larger than L2). Four parts, Llama-2-7B shapes (d_model 4096, d_ff 11008) but
for the third:

  fusion  Prefill projections, M = 2048 and 8192 tokens: llmk's plain GEMM (cuBLASLt), with
          bias + GELU_TANH (fused into cuBLASLt's epilogue) and with bias + exact GELU (epilogue
          bias, then one more pass), each beside torch's F.linear(x, W) (the bare GEMM) and
          F.gelu(F.linear(x, W, b)) with the same GELU. "vs plain" is the time over llmk's plain
          GEMM of the shape, "vs F.linear" over torch's bare GEMM: 1.00 means the epilogue is
          free. Dense peak is not measured: TFLOP/s (2 M N K per product), and an 8192^3 GEMM
          beside torch for reference. Then an A/B of llmk.matmul_tune: a second context tunes
          the call, and the two contexts are timed in turn (ABBA, each timing after a 0.1 s
          rest), four rounds each (medians): "rank"
          is the algorithm the tuning pinned in the heuristic's order (0: the heuristic's own,
          so that row's ratio shows the A/B's noise), "tuned / heuristic" the gain, and "tuned
          vs tuned plain" what the epilogue costs once both are tuned.
  decode  M = 1 .. 64 rows through the up projection (K 4096, N 11008) and one row through the
          down projection (K 11008, N 4096): the path AUTO takes (matmul_path_for), llmk's AUTO,
          forced GEMV (M <= 16) and forced cuBLASLt times, and torch's F.linear. GB/s counts the
          weight, x and y once; "of copy" is that over the copy bandwidth measured in the run.
          "read floor us" is the fastest pure read of the weight's bytes on this GPU
          (bench/read_floor.cu, run by this script): the time no kernel that streams the weight
          once can beat, and "of floor" the floor's time over AUTO's. A note under the table
          splits the floor into its fixed part (an empty kernel's cost among it) and the
          streaming rate. A second table times AUTO, cuBLASLt, F.linear and the read floor back
          to back (common.back_to_back_us: 16 calls between two events, per call), as a CUDA
          graph or a decode loop runs them, without each event pair's fixed cost.
  shapes  One to eight rows (SHAPES_ROWS: each GEMV tile's smallest and largest M) through 21
          weight shapes of other models (WEIGHT_SHAPES), f16 and bf16: the path AUTO takes, AUTO,
          forced GEMV and forced cuBLASLt times and F.linear, beside the read floor of each
          weight's bytes (bench_read_floor, as in decode) and each engine's share of it. Small
          weights rotate through enough sets to overflow L2 twice.
  mlp     One Llama-2-7B MLP at 1 and 2048 tokens: llmk's gated_mlp (SwiGLU, vLLM's fused
          [22016, 4096] gate_up weight passed as two views) beside torch eager
          F.linear(F.silu(x Wg^T) * (x Wu^T), Wd), eager over the fused weight (vLLM's layout),
          and the three bare torch GEMMs alone; llmk's ffn (GELU and GELU_TANH, with biases,
          d_ff 11008) beside torch eager F.linear(F.gelu(F.linear(x, W1, b1)), W2, b2). At 2048
          tokens, an A/B of MlpConfig(tune=True) as in the fusion part: the block tuned once in
          the second context, then both contexts timed in ABBA order.

Every llmk row also carries its relative error against torch's float32 computation of the same
thing (a sanity figure). A call llmk refuses (an engine not built yet, say) leaves its cell empty
and the failure in the notes; the script then exits 1 after writing its tables.

Usage: bench_matmul.py [--json FILE] [--markdown FILE] [--parts fusion,decode,mlp]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
import traceback

import torch
import torch.nn.functional as F

import llmk
import common
from common import DTYPE_NAMES, SETS, as_llmk, copy_ceiling, parse_args

DEVICE = "cuda"
PARTS = ("fusion", "decode", "shapes", "mlp")
D_MODEL, D_FF = 4096, 11008
DTYPES = (torch.float16, torch.bfloat16)
FUSION_TOKENS = (2048, 8192)
DECODE_ROWS = (1, 2, 4, 8, 16, 32, 64)
# The weights of other models' projections, K x N (nn.Linear's [N, K]), which the shapes part
# runs SHAPES_ROWS rows through: Llama-2 7B, 13B and 70B, Mistral's and Qwen2's FFNs, GPT-2's, and
# k just past a multiple of 2048 or under one 256-element segment, where the one-row GEMV is
# weakest.
WEIGHT_SHAPES = ((4096, 11008), (11008, 4096), (5120, 5120), (5120, 13824), (13824, 5120),
                  (8192, 28672), (28672, 8192), (3072, 8192), (2560, 10240), (1024, 4096),
                  (768, 3072), (1536, 6144), (3584, 18944), (18944, 3584), (2304, 9216),
                  (9216, 2304), (2048, 8192), (8192, 2048), (2176, 8192), (512, 2048), (64, 4096))
SHAPES_ROWS = (1, 2, 3, 4, 5, 8)
GEMV_MAX_ROWS = 16  # llmk.h: the GEMV takes M <= 16
MLP_TOKENS = (1, 2048)
TUNED_ROUNDS = 4  # turns of heuristic and tuned timings per fusion row (ABBA: even)
REST_S = 0.1  # idle time before each of those timings
BIG = 8192  # the square GEMM for reference

Path = llmk.MatmulPath
Act = llmk.Activation


def median_us(fn, sets):
    """common.median_us, looked up at call time (a dry run off the GPU replaces it)."""
    return common.median_us(fn, sets)


def stream():
    return torch.cuda.current_stream().cuda_stream


def randn(*shape, dtype, scale=1.0):
    return (scale * torch.randn(*shape, device=DEVICE)).to(dtype)


def rel_error(got, want):
    """Relative error (Frobenius) of got against a float32 result."""
    return ((got.float() - want).norm() / want.norm()).item()


class Bench:
    """Rows, plus the failures met on the way (recorded, not raised, so that one refused call
    does not cost the rest of the run)."""

    def __init__(self, ctx, copy_gbs):
        self.ctx, self.copy_gbs, self.rows, self.failures = ctx, copy_gbs, [], []
        self.read_floor = None  # the decode part measures it
        self.tuned_ctx = None  # a second context, whose plans llmk.matmul_tune picks

    def attempt(self, what, fn, *args):
        """fn(*args), or None (and a note) when it raises."""
        try:
            return fn(*args)
        except Exception as error:  # noqa: BLE001: a benchmark reports and goes on
            self.failures.append(f"{what}: {type(error).__name__}: {error}")
            traceback.print_exc()
            return None

    def time(self, what, fn, sets):
        """median_us(fn, sets), or None when fn raises."""
        return self.attempt(what, median_us, fn, sets)


def tflops(flops, us):
    return None if us is None else flops / us / 1e6


def ratio(a, b):
    return None if a is None or b is None else a / b


# --- part a: fusion -----------------------------------------------------------------------------

FUSED = {  # llmk variant: (activation, has bias, torch peer)
    "plain": (Act.IDENTITY, False, "F.linear(x, W)"),
    "bias + gelu_tanh": (Act.GELU_TANH, True, "F.gelu(F.linear(x, W, b), tanh)"),
    "bias + gelu": (Act.GELU, True, "F.gelu(F.linear(x, W, b))"),
}
TORCH_FUSED = {
    "F.linear(x, W)": lambda x, w, b: F.linear(x, w),
    "F.gelu(F.linear(x, W, b), tanh)": lambda x, w, b: F.gelu(F.linear(x, w, b),
                                                              approximate="tanh"),
    "F.gelu(F.linear(x, W, b))": lambda x, w, b: F.gelu(F.linear(x, w, b)),
}


def torch_reference(variant, x, w, b):
    activation, has_bias, _ = FUSED[variant]
    y = F.linear(x.float(), w.float(), b.float() if has_bias else None)
    if activation == Act.GELU_TANH:
        return F.gelu(y, approximate="tanh")
    return F.gelu(y) if activation == Act.GELU else y


def linear_sets(m, k, n, dtype):
    """Per set: x [m, k], W [n, k] (nn.Linear's weight), b [n], y [m, n]."""
    return [(randn(m, k, dtype=dtype), randn(n, k, dtype=dtype, scale=k ** -0.5),
             randn(n, dtype=dtype, scale=0.5), torch.empty(m, n, dtype=dtype, device=DEVICE))
            for _ in range(SETS)]


def llmk_linear(bench, config, with_bias, ctx=None):
    """run(x, w^T, b, y) views -> llmk.matmul on ctx (default: the bench's); the views are built
    outside the timing."""
    ctx, s = ctx or bench.ctx, stream()

    def run(x, wt, b, y):
        llmk.matmul(ctx, config, x, wt, None, b if with_bias else None, y, stream=s)
    return run


def linear_views(sets):
    return [(as_llmk(x), as_llmk(w.t()), as_llmk(b), as_llmk(y)) for x, w, b, y in sets]


def fusion_case(bench, m, k, n, dtype, variants):
    label = f"{m}x{k}x{n}"
    flops = 2 * m * n * k
    sets = linear_sets(m, k, n, dtype)
    views = linear_views(sets)
    torch_sets = [(x, w, b) for x, w, b, _ in sets]
    bare = "F.linear(x, W)"
    peer_names = [bare] + [FUSED[v][2] for v in variants if FUSED[v][2] != bare]
    torch_us = {name: bench.time(f"fusion {label} {DTYPE_NAMES[dtype]} {name}",
                                 TORCH_FUSED[name], torch_sets) for name in peer_names}
    bare_us = torch_us[bare]
    plain_us = None
    rows = []
    for variant in variants:
        activation, has_bias, peer = FUSED[variant]
        config = llmk.MatmulConfig(activation=activation, path=Path.CUBLASLT)
        run = llmk_linear(bench, config, has_bias)
        what = f"fusion {label} {DTYPE_NAMES[dtype]} llmk {variant}"
        x, w, b, y = sets[0]
        y.fill_(float("nan"))
        bench.attempt(what + " (first call)", run, *views[0])
        torch.cuda.synchronize()
        error = bench.attempt(what + " check", rel_error, y, torch_reference(variant, x, w, b))
        us = bench.time(what, run, views)
        if variant == "plain":
            plain_us = us
        rows.append({
            "part": "fusion", "op": f"matmul {variant}", "shape": label,
            "dtype": DTYPE_NAMES[dtype], "llmk_us": us, "tflops": tflops(flops, us),
            "vs_llmk_plain": ratio(us, plain_us), "vs_torch_bare": ratio(us, bare_us),
            "peer": peer, "error_vs_torch": error,
            "peers": {name: {"us": t, "tflops": tflops(flops, t)} for name, t in torch_us.items()
                      if name in (peer, bare)},
        })
    # Then each variant tuned: llmk.matmul_tune pins the fastest of the heuristic's candidates in
    # a second context, and the two contexts are timed in turn, a few rounds each, so that the
    # GPU's drifting clock (power, heat) weighs on both alike.
    tuned_plain_us = None
    for variant, row in zip(variants, rows):
        activation, has_bias, _ = FUSED[variant]
        config = llmk.MatmulConfig(activation=activation, path=Path.CUBLASLT)
        what = f"fusion {label} {DTYPE_NAMES[dtype]} llmk {variant} tuned"
        x, wt, b, y = views[0]
        tuning = bench.attempt(what + " (tuning)", llmk.matmul_tune, bench.tuned_ctx, config, x,
                               wt, None, b if has_bias else None, y, stream())
        ab, rounds = time_ab(bench, what, llmk_linear(bench, config, has_bias),
                             llmk_linear(bench, config, has_bias, bench.tuned_ctx), views)
        if variant == "plain":
            tuned_plain_us = ab["tuned"]
        row.update({"tuning": None if tuning is None else tuning._asdict(), "ab_us": ab,
                    "ab_rounds_us": rounds, "tuned_vs_heuristic": ratio(ab["tuned"],
                                                                        ab["heuristic"]),
                    "vs_tuned_plain": ratio(ab["tuned"], tuned_plain_us)})
    bench.rows += rows
    del sets, views, torch_sets
    torch.cuda.empty_cache()


def time_ab(bench, what, heuristic, tuned, sets):
    """Medians of TUNED_ROUNDS timings of each of two runs (the heuristic's context and the
    tuned one), in ABBA order, each timing after a rest: neither side always follows the tuning's
    burst of calls or the other side's heat. Returns the medians and every round's time."""
    runs = {"heuristic": heuristic, "tuned": tuned}
    rounds = {name: [] for name in runs}
    for turn in range(TUNED_ROUNDS):
        for name in (("heuristic", "tuned") if turn % 2 == 0 else ("tuned", "heuristic")):
            torch.cuda.synchronize()
            time.sleep(REST_S)
            rounds[name].append(bench.time(f"{what} ({name})", runs[name], sets))
    ab = {name: None if None in times else statistics.median(times)
          for name, times in rounds.items()}
    return ab, rounds


def part_fusion(bench):
    for dtype in DTYPES:
        for m in FUSION_TOKENS:
            for k, n in ((D_MODEL, D_FF), (D_FF, D_MODEL)):
                fusion_case(bench, m, k, n, dtype, list(FUSED))
        fusion_case(bench, BIG, BIG, BIG, dtype, ["plain"])


# --- part b: decode -----------------------------------------------------------------------------


def decode_case(bench, m, k, n, dtype):
    label = f"{m}x{k}x{n}"
    element = torch.empty((), dtype=dtype).element_size()
    bytes_moved = (n * k + m * k + m * n) * element
    sets = linear_sets(m, k, n, dtype)
    views = linear_views(sets)
    torch_sets = [(x, w, b) for x, w, b, _ in sets]
    name = f"decode {label} {DTYPE_NAMES[dtype]}"
    x0, wt0, _, y0 = views[0]
    chosen = bench.attempt(name + " path_for", llmk.matmul_path_for, bench.ctx,
                           llmk.MatmulConfig(), x0, wt0, None, None, y0)
    times, errors, back_to_back = {}, {}, {}
    x, w, _, y = sets[0]
    want = F.linear(x.float(), w.float())
    for path in (Path.AUTO, Path.GEMV, Path.CUBLASLT):
        if path == Path.GEMV and m > GEMV_MAX_ROWS:
            continue
        key = path.name.lower()
        run = llmk_linear(bench, llmk.MatmulConfig(path=path), False)
        y.fill_(float("nan"))
        bench.attempt(f"{name} llmk {key} (first call)", run, *views[0])
        torch.cuda.synchronize()
        errors[key] = bench.attempt(f"{name} llmk {key} check", rel_error, y, want)
        times[key] = bench.time(f"{name} llmk {key}", run, views)
        if path != Path.GEMV:
            back_to_back[key] = bench.attempt(f"{name} llmk {key} back to back",
                                              common.back_to_back_us, run, views)
    torch_us = bench.time(name + " F.linear", TORCH_FUSED["F.linear(x, W)"], torch_sets)
    back_to_back["F.linear"] = bench.attempt(f"{name} F.linear back to back",
                                             common.back_to_back_us,
                                             TORCH_FUSED["F.linear(x, W)"], torch_sets)
    auto_us = times.get("auto")
    gbs = None if auto_us is None else bytes_moved / auto_us / 1e3
    bench.rows.append({
        "part": "decode", "op": "matmul", "shape": label, "dtype": DTYPE_NAMES[dtype],
        "bytes": bytes_moved, "auto_path": None if chosen is None else Path(chosen).name.lower(),
        "llmk_us": auto_us, "llmk_gbs": gbs, "tflops": tflops(2 * m * n * k, auto_us),
        "fraction_of_copy": None if gbs is None else gbs / bench.copy_gbs,
        "read_floor_us": bench.read_floor and bench.read_floor["us"],
        "paths_us": times, "error_vs_torch": errors.get("auto"), "errors_by_path": errors,
        "back_to_back_us": back_to_back,
        "read_floor_back_to_back_us": bench.read_floor and bench.read_floor["back_to_back_us"],
        "peers": {"F.linear(x, W)": {"us": torch_us, "gbs": None if torch_us is None
                                     else bytes_moved / torch_us / 1e3}},
    })
    del sets, views, torch_sets
    torch.cuda.empty_cache()


def read_floor(nbytes):
    """What the fastest pure read of nbytes costs (bench_read_floor, built beside libllmk.so in
    bench/, or LLMK_BENCH_READ_FLOOR): {"us": its time, "empty_us": an empty kernel timed the same
    way, "fixed_us" and "stream_gbs": that time split by a second read of 8 x nbytes into a fixed
    part and the streaming rate, "back_to_back_us" and "empty_back_to_back_us": the read and the
    empty kernel timed back to back (common.back_to_back_us)}."""
    tool = os.environ.get("LLMK_BENCH_READ_FLOOR") or os.path.join(
        os.path.dirname(os.environ.get("LLMK_LIBRARY", "build/libllmk.so")), "bench",
        "bench_read_floor")
    out = subprocess.run([tool, str(nbytes), str(8 * nbytes)], check=True, capture_output=True,
                         text=True).stdout
    one, eight = (float(us) for us in re.findall(r"bytes: ([0-9.]+) us", out))
    one_back_to_back = float(re.search(r"bytes back-to-back: ([0-9.]+) us", out).group(1))
    stream_gbs = 7 * nbytes / (eight - one) / 1e3
    return {"us": one, "empty_us": float(re.search(r"empty kernel: ([0-9.]+) us", out).group(1)),
            "fixed_us": one - nbytes / stream_gbs / 1e3, "stream_gbs": stream_gbs,
            "back_to_back_us": one_back_to_back,
            "empty_back_to_back_us": float(
                re.search(r"empty kernel back-to-back: ([0-9.]+) us", out).group(1))}


def part_decode(bench):
    weight_bytes = D_MODEL * D_FF * 2  # both projections, f16 and bf16
    bench.read_floor = bench.attempt("read floor", read_floor, weight_bytes)
    for dtype in DTYPES:
        for m in DECODE_ROWS:
            decode_case(bench, m, D_MODEL, D_FF, dtype)
        decode_case(bench, 1, D_FF, D_MODEL, dtype)


# --- part c: one to eight rows across weight shapes -------------------------------------------


def shapes_case(bench, m, k, n, dtype):
    """m rows through a [n, k] weight: AUTO's choice, AUTO, the GEMV and cuBLASLt forced, and
    F.linear, beside the read floor of the weight's bytes. Small weights rotate through enough
    sets to overflow L2 twice."""
    label = f"{m}x{k}x{n}"
    element = torch.empty((), dtype=dtype).element_size()
    weight_bytes = n * k * element
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
    sets = [(randn(m, k, dtype=dtype), randn(n, k, dtype=dtype, scale=k ** -0.5), None,
             torch.empty(m, n, dtype=dtype, device=DEVICE))
            for _ in range(max(SETS, -(-2 * l2_bytes // weight_bytes) + 1))]
    views = [(as_llmk(x), as_llmk(w.t()), None, as_llmk(y)) for x, w, _, y in sets]
    name = f"shapes {label} {DTYPE_NAMES[dtype]}"
    x0, wt0, _, y0 = views[0]
    chosen = bench.attempt(name + " path_for", llmk.matmul_path_for, bench.ctx,
                           llmk.MatmulConfig(), x0, wt0, None, None, y0)
    times = {}
    for path in (Path.AUTO, Path.GEMV, Path.CUBLASLT):
        key = path.name.lower()
        times[key] = bench.time(f"{name} llmk {key}", llmk_linear(
            bench, llmk.MatmulConfig(path=path), False), views)
    x, w, _, y = sets[0]
    y.fill_(float("nan"))
    auto = llmk_linear(bench, llmk.MatmulConfig(), False)
    bench.attempt(name + " llmk auto (checked call)", auto, *views[0])
    torch.cuda.synchronize()
    error = bench.attempt(name + " check", rel_error, y, F.linear(x.float(), w.float()))
    torch_us = bench.time(name + " F.linear", TORCH_FUSED["F.linear(x, W)"],
                          [(x, w, None) for x, w, _, _ in sets])
    if weight_bytes not in bench.shape_floors:
        bench.shape_floors[weight_bytes] = bench.attempt(name + " read floor", read_floor,
                                                          weight_bytes)
    floor = bench.shape_floors[weight_bytes]
    bench.rows.append({
        "part": "shapes", "op": "matmul", "shape": label, "dtype": DTYPE_NAMES[dtype],
        "bytes": weight_bytes, "auto_path": None if chosen is None else Path(chosen).name.lower(),
        "llmk_us": times["auto"], "paths_us": times, "error_vs_torch": error,
        "read_floor_us": floor and floor["us"],
        "peers": {"F.linear(x, W)": {"us": torch_us}},
    })
    del sets, views
    torch.cuda.empty_cache()


def part_shapes(bench):
    bench.shape_floors = {}
    for m in SHAPES_ROWS:
        for dtype in DTYPES:
            for k, n in WEIGHT_SHAPES:
                shapes_case(bench, m, k, n, dtype)


# --- part d: the MLP blocks ---------------------------------------------------------------------


def workspace(nbytes):
    """nbytes from torch's allocator as a U8 view (and the tensor that owns it)."""
    storage = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=DEVICE)
    return llmk.Tensor(storage.data_ptr(), llmk.DType.U8, (nbytes,), keepalive=storage)


def gated_sets(tokens, dtype):
    """Per set: x, gate_up [2 d_ff, d_model] (fused, vLLM's), w_down, y."""
    return [(randn(tokens, D_MODEL, dtype=dtype),
             randn(2 * D_FF, D_MODEL, dtype=dtype, scale=D_MODEL ** -0.5),
             randn(D_MODEL, D_FF, dtype=dtype, scale=D_FF ** -0.5),
             torch.empty(tokens, D_MODEL, dtype=dtype, device=DEVICE)) for _ in range(SETS)]


def eager_gated(x, gate_up, w_down, h):
    return F.linear(F.silu(F.linear(x, gate_up[:D_FF])) * F.linear(x, gate_up[D_FF:]), w_down)


def eager_gated_fused(x, gate_up, w_down, h):
    both = F.linear(x, gate_up)
    return F.linear(F.silu(both[:, :D_FF]) * both[:, D_FF:], w_down)


def bare_gemms(x, gate_up, w_down, h):
    """The three GEMMs of the MLP and nothing else (h: a [tokens, d_ff] input for the last)."""
    F.linear(x, gate_up[:D_FF])
    F.linear(x, gate_up[D_FF:])
    return F.linear(h, w_down)


GATED_PEERS = {"torch eager": eager_gated, "eager, fused gate_up": eager_gated_fused,
               "3 bare GEMMs": bare_gemms}


def mlp_row(bench, op, tokens, dtype, flops, bytes_moved, us, error, peers, tuned=None):
    gbs = None if us is None else bytes_moved / us / 1e3
    ab, rounds = tuned if tuned is not None else ({}, None)
    bench.rows.append({
        "part": "mlp", "op": op, "shape": f"{tokens}x{D_MODEL}, d_ff {D_FF}",
        "tokens": tokens, "dtype": DTYPE_NAMES[dtype], "bytes": bytes_moved, "llmk_us": us,
        "tflops": tflops(flops, us), "llmk_gbs": gbs,
        "fraction_of_copy": None if gbs is None else gbs / bench.copy_gbs,
        "error_vs_torch": error,
        "peers": {name: {"us": t, "tflops": tflops(flops, t),
                         "gbs": None if t is None else bytes_moved / t / 1e3}
                  for name, t in peers.items()},
        "ab_us": ab, "ab_rounds_us": rounds,
        "tuned_vs_heuristic": ratio(ab.get("tuned"), ab.get("heuristic")),
    })


def mlp_tuned_ab(bench, what, tokens, run, views):
    """At prefill sizes (more tokens than the GEMV can take, so every GEMM is cuBLASLt's; None
    below): the block tuned once in bench.tuned_ctx (MlpConfig(tune=True) on the first set),
    then time_ab of the two contexts. run(ctx, config, *view) is one call."""
    if tokens <= GEMV_MAX_ROWS:
        return None
    if bench.attempt(what + " (tuning)", run, bench.tuned_ctx, llmk.MlpConfig(tune=True),
                     *views[0]) is None:  # the call returns y; None is a recorded failure
        return None
    return time_ab(bench, what, lambda *v: run(bench.ctx, None, *v),
                   lambda *v: run(bench.tuned_ctx, None, *v), views)


def gated_mlp_case(bench, tokens, dtype):
    element = torch.empty((), dtype=dtype).element_size()
    flops = 6 * tokens * D_MODEL * D_FF
    bytes_moved = (3 * D_FF * D_MODEL + 2 * tokens * D_MODEL) * element
    sets = gated_sets(tokens, dtype)
    name = f"gated_mlp {tokens} {DTYPE_NAMES[dtype]}"
    x0, gate_up0, w_down0, y0 = sets[0]
    nbytes = bench.attempt(name + " workspace size", llmk.gated_mlp_workspace_size, bench.ctx,
                           as_llmk(x0), as_llmk(gate_up0[:D_FF]))
    views = []
    for x, gate_up, w_down, y in sets:
        views.append((as_llmk(x), as_llmk(gate_up[:D_FF]), as_llmk(gate_up[D_FF:]),
                      as_llmk(w_down), workspace(nbytes or 0), as_llmk(y)))
    ctx, s = bench.ctx, stream()

    def run_on(context, config, x, w_gate, w_up, w_down, work, y):
        return llmk.gated_mlp(context, config, x, w_gate, w_up, w_down, Act.SILU, work, y,
                              stream=s)

    def run(*view):
        run_on(ctx, None, *view)

    y0.fill_(float("nan"))
    bench.attempt(name + " llmk (first call)", run, *views[0])
    torch.cuda.synchronize()
    xf, gate_upf = x0.float(), gate_up0.float()
    want = F.linear(F.silu(F.linear(xf, gate_upf[:D_FF])) * F.linear(xf, gate_upf[D_FF:]),
                    w_down0.float())
    error = bench.attempt(name + " check", rel_error, y0, want)
    del xf, gate_upf, want
    us = bench.time(name + " llmk", run, views)
    torch_sets = [(x, gate_up, w_down, torch.randn(tokens, D_FF, device=DEVICE).to(dtype))
                  for x, gate_up, w_down, _ in sets]
    peers = {peer: bench.time(f"{name} {peer}", fn, torch_sets)
             for peer, fn in GATED_PEERS.items()}
    tuned = mlp_tuned_ab(bench, name + " tuned", tokens, run_on, views)
    mlp_row(bench, "gated_mlp silu", tokens, dtype, flops, bytes_moved, us, error, peers, tuned)
    del sets, views, torch_sets
    torch.cuda.empty_cache()


def ffn_case(bench, tokens, dtype, activation):
    element = torch.empty((), dtype=dtype).element_size()
    flops = 4 * tokens * D_MODEL * D_FF
    bytes_moved = (2 * D_FF * D_MODEL + D_FF + D_MODEL + 2 * tokens * D_MODEL) * element
    sets = [(randn(tokens, D_MODEL, dtype=dtype),
             randn(D_FF, D_MODEL, dtype=dtype, scale=D_MODEL ** -0.5),
             randn(D_FF, dtype=dtype, scale=0.5),
             randn(D_MODEL, D_FF, dtype=dtype, scale=D_FF ** -0.5),
             randn(D_MODEL, dtype=dtype, scale=0.5),
             torch.empty(tokens, D_MODEL, dtype=dtype, device=DEVICE)) for _ in range(SETS)]
    act_name = activation.name.lower()
    name = f"ffn {act_name} {tokens} {DTYPE_NAMES[dtype]}"
    nbytes = bench.attempt(name + " workspace size", llmk.ffn_workspace_size, bench.ctx,
                           as_llmk(sets[0][0]), as_llmk(sets[0][1]))
    views = [tuple(as_llmk(t) for t in s[:5]) + (workspace(nbytes or 0), as_llmk(s[5]))
             for s in sets]
    ctx, s = bench.ctx, stream()

    def run_on(context, config, x, w1, b1, w2, b2, work, y):
        return llmk.ffn(context, config, x, w1, b1, w2, b2, activation, work, y, stream=s)

    def run(*view):
        run_on(ctx, None, *view)

    approximate = "tanh" if activation == Act.GELU_TANH else "none"

    def eager(x, w1, b1, w2, b2, y):
        return F.linear(F.gelu(F.linear(x, w1, b1), approximate=approximate), w2, b2)

    x0, w10, b10, w20, b20, y0 = sets[0]
    y0.fill_(float("nan"))
    bench.attempt(name + " llmk (first call)", run, *views[0])
    torch.cuda.synchronize()
    want = eager(x0.float(), w10.float(), b10.float(), w20.float(), b20.float(), None)
    error = bench.attempt(name + " check", rel_error, y0, want)
    del want
    us = bench.time(name + " llmk", run, views)
    peers = {"torch eager": bench.time(name + " torch eager", eager, sets)}
    tuned = mlp_tuned_ab(bench, name + " tuned", tokens, run_on, views)
    mlp_row(bench, f"ffn {act_name}", tokens, dtype, flops, bytes_moved, us, error, peers, tuned)
    del sets, views
    torch.cuda.empty_cache()


def part_mlp(bench):
    for dtype in DTYPES:
        for tokens in MLP_TOKENS:
            gated_mlp_case(bench, tokens, dtype)
            for activation in (Act.GELU, Act.GELU_TANH):
                ffn_case(bench, tokens, dtype, activation)


# --- report -------------------------------------------------------------------------------------


def cell(value, spec):
    return "" if value is None else format(value, spec)


def table(title, header, lines):
    return [f"#### {title}", "", "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines] + [""]


def fusion_table(rows):
    lines = []
    for r in rows:
        bare = r["peers"].get("F.linear(x, W)", {}).get("us")
        peer_us = r["peers"].get(r["peer"], {}).get("us")
        lines.append([r["op"], r["shape"], r["dtype"], cell(r["llmk_us"], ".1f"),
                      cell(r["tflops"], ".0f"), cell(r["vs_llmk_plain"], ".2f"),
                      cell(r["vs_torch_bare"], ".2f"), r["peer"], cell(peer_us, ".1f"),
                      cell(ratio(peer_us, r["llmk_us"]), ".2f"), cell(bare, ".1f"),
                      cell(r["error_vs_torch"], ".1e")] + tuned_cells(r))
    return table("Fusion: prefill GEMMs with an epilogue (M x K x N)",
                 ["op", "M x K x N", "dtype", "llmk us", "TFLOP/s", "vs plain", "vs F.linear",
                  "torch peer", "peer us", "speedup", "F.linear us", "err vs torch",
                  "A/B heuristic us", "A/B tuned us", "rank", "tuned / heuristic",
                  "tuned vs tuned plain"], lines)


def tuned_cells(r):
    ab, tuning = r.get("ab_us") or {}, r.get("tuning")
    return [cell(ab.get("heuristic"), ".1f"), cell(ab.get("tuned"), ".1f"),
            "" if tuning is None else f"{tuning['chosen']} of {tuning['candidates']}",
            cell(r.get("tuned_vs_heuristic"), ".3f"), cell(r.get("vs_tuned_plain"), ".3f")]


def decode_table(rows):
    lines = []
    for r in rows:
        paths, torch_us = r["paths_us"], r["peers"]["F.linear(x, W)"]["us"]
        lines.append([r["shape"], r["dtype"], r["auto_path"] or "", cell(paths.get("auto"), ".1f"),
                      cell(paths.get("gemv"), ".1f"), cell(paths.get("cublaslt"), ".1f"),
                      cell(torch_us, ".1f"), cell(r["llmk_gbs"], ".0f"),
                      cell(None if r["fraction_of_copy"] is None
                           else 100 * r["fraction_of_copy"], ".1f"),
                      cell(r["read_floor_us"], ".1f"),
                      cell(None if r["read_floor_us"] is None or r["llmk_us"] is None
                           else 100 * r["read_floor_us"] / r["llmk_us"], ".1f"),
                      cell(ratio(torch_us, r["llmk_us"]), ".2f"),
                      cell(r["error_vs_torch"], ".1e")])
    return table("Decode: few rows through a weight (M x K x N)",
                 ["M x K x N", "dtype", "AUTO takes", "auto us", "gemv us", "cublaslt us",
                  "F.linear us", "auto GB/s", "% of copy", "read floor us", "% of floor",
                  "speedup", "err vs torch"], lines)


def back_to_back_table(rows):
    lines = []
    for r in rows:
        times, floor = r["back_to_back_us"], r["read_floor_back_to_back_us"]
        auto, cublaslt = times.get("auto"), times.get("cublaslt")
        lines.append([r["shape"], r["dtype"], r["auto_path"] or "", cell(auto, ".1f"),
                      cell(cublaslt, ".1f"), cell(times.get("F.linear"), ".1f"),
                      cell(floor, ".1f"),
                      cell(None if floor is None or auto is None else 100 * floor / auto, ".1f"),
                      cell(ratio(cublaslt, auto), ".2f"),
                      cell(ratio(times.get("F.linear"), auto), ".2f")])
    return table(f"Decode back to back: {common.BACK_TO_BACK} calls between two events, per call",
                 ["M x K x N", "dtype", "AUTO takes", "auto us", "cublaslt us", "F.linear us",
                  "read floor us", "% of floor", "vs cublaslt", "vs F.linear"], lines)


def shapes_table(rows):
    def of_floor(floor, us):
        return cell(None if floor is None or us is None else 100 * floor / us, ".0f")

    lines = []
    for r in rows:
        paths, floor = r["paths_us"], r["read_floor_us"]
        torch_us = r["peers"]["F.linear(x, W)"]["us"]
        lines.append([r["shape"], r["dtype"], r["auto_path"] or "", cell(paths.get("auto"), ".2f"),
                      cell(paths.get("gemv"), ".2f"), cell(paths.get("cublaslt"), ".2f"),
                      cell(torch_us, ".2f"), cell(floor, ".2f"), of_floor(floor, paths.get("gemv")),
                      of_floor(floor, paths.get("cublaslt")),
                      cell(ratio(paths.get("cublaslt"), paths.get("gemv")), ".3f"),
                      cell(ratio(torch_us, paths.get("auto")), ".2f"),
                      cell(r["error_vs_torch"], ".1e")])
    return table("One to eight rows across weight shapes (M x K x N)",
                 ["M x K x N", "dtype", "AUTO takes", "auto us", "gemv us", "cublaslt us",
                  "F.linear us", "read floor us", "gemv % of floor", "cublaslt % of floor",
                  "gemv speedup over cublaslt", "auto vs F.linear", "err vs torch"], lines)


def mlp_table(rows):
    lines = []
    for r in rows:
        eager = r["peers"]["torch eager"]["us"]
        bare = r["peers"].get("3 bare GEMMs", {}).get("us")
        fused = r["peers"].get("eager, fused gate_up", {}).get("us")
        lines.append([r["op"], str(r["tokens"]), r["dtype"], cell(r["llmk_us"], ".1f"),
                      cell(r["tflops"], ".0f"), cell(r["llmk_gbs"], ".0f"),
                      cell(None if r["fraction_of_copy"] is None
                           else 100 * r["fraction_of_copy"], ".1f"),
                      cell(eager, ".1f"), cell(ratio(eager, r["llmk_us"]), ".2f"),
                      cell(fused, ".1f"), cell(bare, ".1f"), cell(ratio(r["llmk_us"], bare), ".2f"),
                      cell(r["error_vs_torch"], ".1e"), cell(r["ab_us"].get("heuristic"), ".1f"),
                      cell(r["ab_us"].get("tuned"), ".1f"), cell(r["tuned_vs_heuristic"], ".3f")])
    return table(f"MLP blocks, a Llama-2-7B layer (d_model {D_MODEL}, d_ff {D_FF})",
                 ["op", "tokens", "dtype", "llmk us", "TFLOP/s", "GB/s", "% of copy",
                  "eager us", "speedup", "eager fused us", "bare GEMMs us", "vs bare GEMMs",
                  "err vs torch", "A/B heuristic us", "A/B tuned us", "tuned / heuristic"],
                 lines)


def report(args, bench, copy_gbs, copy_us):
    props = torch.cuda.get_device_properties(0)
    device = f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}"
    lines = ["### Matmul and MLP blocks", "",
             f"Device: {device}. Copy ceiling: {copy_gbs:.0f} GB/s (1 GiB, {copy_us:.0f} us).", ""]
    for part, make in (("fusion", fusion_table), ("decode", decode_table),
                       ("shapes", shapes_table), ("mlp", mlp_table)):
        rows = [r for r in bench.rows if r["part"] == part]
        if rows:
            lines += make(rows)
        if part == "decode" and rows and bench.read_floor is not None:
            floor = bench.read_floor
            lines += [f"The read floor, {floor['us']:.1f} us, is {floor['fixed_us']:.1f} us fixed "
                      f"plus the weight streamed at {floor['stream_gbs']:.0f} GB/s (from a read "
                      f"of 8x the bytes); an empty kernel timed the same way takes "
                      f"{floor['empty_us']:.1f} us.", ""]
            lines += back_to_back_table(rows)
            lines += [f"Back to back, the read floor is {floor['back_to_back_us']:.1f} us and an "
                      f"empty kernel takes {floor['empty_back_to_back_us']:.1f} us.", ""]
    stats = bench.attempt("matmul_cache_stats", llmk.matmul_cache_stats, bench.ctx)
    if stats is not None:
        lines.append(f"llmk's matmul plan cache after the run: {stats.plans} plans, "
                     f"{stats.heuristic_queries} heuristic queries, {stats.workspaces} "
                     f"workspaces.")
    if bench.failures:
        lines += ["", "Failures:"] + [f"- {failure}" for failure in bench.failures]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "copy_gbs": copy_gbs, "rows": bench.rows,
                       "read_floor": bench.read_floor,
                       "cache_stats": None if stats is None else stats._asdict(),
                       "failures": bench.failures}, f, indent=1)


def add_arguments(parser):
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)")


def main():
    args = parse_args(__doc__.splitlines()[0], add_arguments)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    torch.manual_seed(0)
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    bench = Bench(ctx, copy_gbs)
    bench.tuned_ctx = llmk.Context.cuda(0)
    runners = {"fusion": part_fusion, "decode": part_decode, "shapes": part_shapes,
               "mlp": part_mlp}
    for part in parts:
        bench.attempt(f"part {part}", runners[part], bench)
    report(args, bench, copy_gbs, copy_us)
    bench.tuned_ctx.close()
    ctx.close()
    if bench.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
