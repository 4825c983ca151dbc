#!/usr/bin/env python3
"""RoPE benchmarks: llmk beside PyTorch (Hugging Face's rotate_half form, eager and compiled) and a
device-to-device copy, in one process on one GPU.

Shapes: one Llama-2-7B layer's q and k over 16384 tokens (32 q heads, head_dim 128, bf16, NeoX),
with q and k either separate contiguous tensors or slices of the fused QKV projection
[16384, 3 * 4096]; a GQA layer (32 q / 8 kv heads); and vLLM's cos/sin cache instead of
computed angles. llmk rotates in place; the peers write new tensors, as Hugging Face does. Bytes:
q and k read once and written once, plus positions (and the cache rows read) where used. Timing
and the copy ceiling as bench/common.py says.

Usage: bench_rope.py [--json FILE] [--markdown FILE]
"""
import torch

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)

THETA = 10000.0
MAX_POSITION = 16384


class Case:
    def __init__(self, tokens, q_heads, kv_heads, head_dim, dtype, fused, cache):
        self.tokens, self.q_heads, self.kv_heads, self.head_dim = tokens, q_heads, kv_heads, head_dim
        self.dtype, self.fused, self.cache = dtype, fused, cache

    @property
    def label(self):
        layout = "fused QKV slices" if self.fused else "contiguous"
        source = ", cos/sin cache" if self.cache else ""
        return (f"rope neox {self.tokens} tok {self.q_heads}q/{self.kv_heads}kv x{self.head_dim} "
                f"{DTYPE_NAMES[self.dtype]} {layout}{source}")

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        heads = self.tokens * (self.q_heads + self.kv_heads) * self.head_dim * element
        positions = self.tokens * 8
        cache_rows = self.tokens * self.head_dim * element if self.cache else 0
        return 2 * heads + positions + cache_rows


def angles(positions, head_dim):
    """[tokens, head_dim / 2] angles in float64."""
    inv_freq = THETA ** (-torch.arange(0, head_dim, 2, dtype=torch.float64,
                                       device=positions.device) / head_dim)
    return positions.double()[:, None] * inv_freq[None, :]


def make_sets(case):
    t, d = case.tokens, case.head_dim
    all_positions = torch.arange(MAX_POSITION, device="cuda")
    table = angles(all_positions, d)
    # Hugging Face's cos/sin: [max_position, head_dim], the half-angles repeated, in q's dtype.
    cos_hf = torch.cat([table.cos(), table.cos()], dim=-1).to(case.dtype)
    sin_hf = torch.cat([table.sin(), table.sin()], dim=-1).to(case.dtype)
    # vLLM's cache: [max_position, rotary_dim], row p = cos(p * f) then sin(p * f).
    cos_sin_cache = torch.cat([table.cos(), table.sin()], dim=-1).to(case.dtype)
    sets = []
    for _ in range(SETS):
        positions = torch.arange(t, device="cuda", dtype=torch.int64) % MAX_POSITION
        if case.fused:
            width = (case.q_heads + 2 * case.kv_heads) * d
            qkv = torch.randn(t, width, dtype=case.dtype, device="cuda")
            q = qkv[:, :case.q_heads * d].view(t, case.q_heads, d)
            k = qkv[:, case.q_heads * d:(case.q_heads + case.kv_heads) * d].view(
                t, case.kv_heads, d)
        else:
            q = torch.randn(t, case.q_heads, d, dtype=case.dtype, device="cuda")
            k = torch.randn(t, case.kv_heads, d, dtype=case.dtype, device="cuda")
        sets.append((q, k, positions, cos_hf, sin_hf, cos_sin_cache))
    return sets


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def hf_rope(q, k, positions, cos_hf, sin_hf, cos_sin_cache):
    """transformers' apply_rotary_pos_emb, cos and sin gathered by position."""
    cos = cos_hf[positions].unsqueeze(1)
    sin = sin_hf[positions].unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


PEERS = {"HF eager": hf_rope, "HF compiled": compiled(hf_rope)}

CASES = [
    Case(16384, 32, 32, 128, torch.bfloat16, fused=False, cache=False),
    Case(16384, 32, 32, 128, torch.bfloat16, fused=True, cache=False),
    Case(16384, 32, 8, 128, torch.bfloat16, fused=False, cache=False),
    Case(16384, 32, 8, 128, torch.bfloat16, fused=True, cache=False),
    Case(16384, 32, 32, 128, torch.bfloat16, fused=True, cache=True),
]


def llmk_fn(case, ctx):
    stream = torch.cuda.current_stream().cuda_stream
    config = llmk.RopeConfig(style=llmk.RopeStyle.NEOX, rotary_dim=0, theta=THETA)

    def run(q, k, positions, cos_hf, sin_hf, cos_sin_cache):
        llmk.rope(ctx, config, positions, q, k,
                  cos_sin_cache=cos_sin_cache if case.cache else None, stream=stream)
    return run


def reference(x, positions):
    """RoPE of x in float32 from float64 angles."""
    a = angles(positions, x.shape[-1])
    cos, sin = a.cos().float()[:, None, :], a.sin().float()[:, None, :]
    xf = x.float()
    half = x.shape[-1] // 2
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def check_against_torch(sets, run):
    """Relative error of llmk's q and k against a float32 rotation by float64 angles."""
    q0, k0, positions, cos_hf, sin_hf, cos_sin_cache = sets[0]
    q, k = q0.clone(), k0.clone()  # contiguous copies; the layout does not change the math
    run(as_llmk(q), as_llmk(k), as_llmk(positions), None, None, as_llmk(cos_sin_cache))
    torch.cuda.synchronize()
    want = torch.cat([reference(q0, positions).flatten(), reference(k0, positions).flatten()])
    got = torch.cat([q.float().flatten(), k.float().flatten()])
    return ((got - want).norm() / want.norm()).item()


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    rows = []
    for case in CASES:
        sets = make_sets(case)
        # Views built outside the timing; the two cos/sin tables of Hugging Face are not passed.
        llmk_sets = [(as_llmk(q), as_llmk(k), as_llmk(positions), None, None, as_llmk(cache))
                     for q, k, positions, _, _, cache in sets]
        run = llmk_fn(case, ctx)
        error = check_against_torch(sets, run)
        llmk_us = median_us(run, llmk_sets)
        peers = {name: median_us(fn, sets) for name, fn in PEERS.items()}
        rows.append(row(case.label, case.bytes_moved(), llmk_us, copy_gbs, peers, error))
        del sets, llmk_sets
        torch.cuda.empty_cache()
    report(args, "RoPE", rows, copy_gbs, copy_us)
    ctx.close()


if __name__ == "__main__":
    main()
