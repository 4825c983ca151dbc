#!/usr/bin/env python3
"""AdamW benchmark: llmk beside torch.optim.AdamW (fused, foreach and torch.compile'd) and a
device-to-device copy, in one process on one GPU, on one flat buffer of 50M f32 parameters.

Timing and byte counting as bench/common.py says: a step reads param, grad, exp_avg and
exp_avg_sq and writes param, exp_avg and exp_avg_sq, 28 bytes per parameter with f32 grads and 26
with bf16 grads. torch's optimizers take grads of the parameter's dtype only, so with bf16 grads
their rows include the upcast into an f32 grad buffer that a mixed-precision loop runs; llmk reads
the bf16 grad as it is.

Error column: after 5 steps from the same parameters, zero moments and the same gradients, llmk
against torch.optim.AdamW(foreach=False, fused=False) (torch's single-tensor reference) on the GPU:
the largest of max |p - p_torch| / (|p_torch| + lr) over the parameters and
max |v - v_torch| / v_torch over exp_avg_sq. Both compute in f32 in the same order of operations,
so they agree to f32 rounding; the script exits with status 1 if the error exceeds ERROR_BOUND,
the vectors' f32 tolerance (1e-5 per step) times the 5 steps.

Usage: bench_adamw.py [--json FILE] [--markdown FILE]
"""
import sys

import torch

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)

PARAMS = 50_000_000
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 1e-2
CHECK_STEPS = 5
ERROR_BOUND = CHECK_STEPS * 1e-5
GRAD_SCALE = 1e-2

PEERS = ["AdamW(fused)", "AdamW(foreach)", "compiled AdamW(foreach)"]


def config(step):
    return llmk.AdamWConfig(lr=LR, beta1=BETAS[0], beta2=BETAS[1], eps=EPS,
                            weight_decay=WEIGHT_DECAY, step=step)


def bytes_moved(grad_dtype):
    grad_bytes = torch.empty((), dtype=grad_dtype).element_size()
    return PARAMS * (6 * 4 + grad_bytes)


def make_sets(grad_dtype):
    sets = []
    for _ in range(SETS):
        param = torch.randn(PARAMS, device="cuda")
        grad = (GRAD_SCALE * torch.randn(PARAMS, device="cuda")).to(grad_dtype)
        exp_avg = GRAD_SCALE * 0.3 * torch.randn(PARAMS, device="cuda")
        exp_avg_sq = GRAD_SCALE ** 2 * torch.rand(PARAMS, device="cuda")
        sets.append((param, grad, exp_avg, exp_avg_sq))
    return sets


def torch_step(peer, param, grad):
    """One step of `peer` on `param` with `grad` (upcast into an f32 .grad first if 16-bit), as a
    function of no arguments. The optimizer keeps its own moments."""
    if grad.dtype == torch.float32:
        param.grad = grad
        upcast = None
    else:
        param.grad = torch.empty_like(param)
        upcast = param.grad
    options = {"fused": True} if peer == "AdamW(fused)" else {"foreach": True}
    optimizer = torch.optim.AdamW([param], lr=LR, betas=BETAS, eps=EPS,
                                  weight_decay=WEIGHT_DECAY, **options)
    if peer.startswith("compiled"):
        def eager_step():
            optimizer.step()
        step = compiled(eager_step)
    else:
        step = optimizer.step

    def run():
        if upcast is not None:
            upcast.copy_(grad)
        step()
    return run


def check_against_torch(ctx, grad_dtype, stream):
    """The error column: CHECK_STEPS steps of llmk and of torch's single-tensor AdamW."""
    generator = torch.Generator(device="cuda").manual_seed(0)
    param = torch.randn(PARAMS, device="cuda", generator=generator)
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    reference = param.clone()
    optimizer = torch.optim.AdamW([reference], lr=LR, betas=BETAS, eps=EPS,
                                  weight_decay=WEIGHT_DECAY, foreach=False, fused=False)
    for step in range(1, CHECK_STEPS + 1):
        grad = GRAD_SCALE * torch.randn(PARAMS, device="cuda", generator=generator)
        grad = grad.to(grad_dtype)
        llmk.adamw_step(ctx, config(step), as_llmk(param), as_llmk(grad), as_llmk(exp_avg),
                        as_llmk(exp_avg_sq), stream=stream)
        reference.grad = grad.float()
        optimizer.step()
    torch.cuda.synchronize()
    reference_sq = optimizer.state[reference]["exp_avg_sq"]
    param_error = ((param - reference).abs() / (reference.abs() + LR)).max().item()
    sq_error = ((exp_avg_sq - reference_sq).abs() / reference_sq).max().item()
    return max(param_error, sq_error)


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    stream = torch.cuda.current_stream().cuda_stream
    copy_gbs, copy_us = copy_ceiling()
    rows, failures = [], []
    for grad_dtype in [torch.float32, torch.bfloat16]:
        label = f"adamw 50M f32 params, {DTYPE_NAMES[grad_dtype]} grads"
        error = check_against_torch(ctx, grad_dtype, stream)
        torch.cuda.empty_cache()
        if not error <= ERROR_BOUND:
            failures.append(f"{label}: error {error:.2e} vs torch exceeds {ERROR_BOUND:.0e}")

        sets = make_sets(grad_dtype)
        step_config = config(10)
        llmk_sets = [tuple(as_llmk(t) for t in s) for s in sets]  # views built outside the timing

        def run(param, grad, exp_avg, exp_avg_sq):
            llmk.adamw_step(ctx, step_config, param, grad, exp_avg, exp_avg_sq, stream=stream)

        llmk_us = median_us(run, llmk_sets)
        peers = {}
        for peer in PEERS:
            steps = [(torch_step(peer, param, grad),) for param, grad, _, _ in sets]
            name = peer if grad_dtype == torch.float32 else f"upcast + {peer}"
            peers[name] = median_us(lambda step: step(), steps)
            del steps
            for param, _, _, _ in sets:
                param.grad = None
            torch.cuda.empty_cache()
        rows.append(row(label, bytes_moved(grad_dtype), llmk_us, copy_gbs, peers, error))
        del sets, llmk_sets
        torch.cuda.empty_cache()
    report(args, "AdamW", rows, copy_gbs, copy_us)
    ctx.close()
    for failure in failures:
        print(failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
