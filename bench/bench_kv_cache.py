#!/usr/bin/env python3
"""KV-cache write benchmarks: llmk's paged and contiguous writes beside the PyTorch idioms and a
device-to-device copy, in one process on one GPU.

Timing and byte counting as bench/common.py says: bytes are k and v read, the same amount written
into the caches, and the index read (not the whole cache).

Usage: bench_kv_cache.py [--json FILE] [--markdown FILE]
"""
import torch

import llmk
from common import (DTYPE_NAMES, SETS, as_llmk, compiled, copy_ceiling, median_us, parse_args,
                    report, row)

# Llama-2-7B: 32 KV heads of 128.
HEADS, HEAD_DIM = 32, 128


class PagedCase:
    def __init__(self, tokens, page_size, num_pages, dtype):
        self.tokens, self.page_size, self.num_pages, self.dtype = (tokens, page_size, num_pages,
                                                                   dtype)

    @property
    def label(self):
        return (f"paged {self.tokens} tokens, {HEADS}x{HEAD_DIM}, {self.num_pages} pages of "
                f"{self.page_size} {DTYPE_NAMES[self.dtype]}")

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        return 4 * self.tokens * HEADS * HEAD_DIM * element + self.tokens * 8

    def make_sets(self):
        sets = []
        for _ in range(SETS):
            k = torch.randn(self.tokens, HEADS, HEAD_DIM, dtype=self.dtype, device="cuda")
            v = torch.randn_like(k)
            # Each sequence's pages scattered over the cache, as an allocator leaves them.
            pages = torch.randperm(self.num_pages, device="cuda")
            token = torch.arange(self.tokens, device="cuda")
            slots = pages[token // self.page_size] * self.page_size + token % self.page_size
            shape = (self.num_pages, self.page_size, HEADS, HEAD_DIM)
            k_cache = torch.zeros(shape, dtype=self.dtype, device="cuda")
            v_cache = torch.zeros_like(k_cache)
            sets.append((k, v, slots, k_cache, v_cache))
        return sets

    def llmk_fn(self, ctx):
        stream = torch.cuda.current_stream().cuda_stream

        def run(k, v, slots, k_cache, v_cache):
            llmk.paged_kv_cache_write(ctx, k, v, slots, k_cache, v_cache, stream=stream)
        return run


def paged_index_put(k, v, slots, k_cache, v_cache):
    k_cache.view(-1, HEADS, HEAD_DIM)[slots] = k
    v_cache.view(-1, HEADS, HEAD_DIM)[slots] = v


def paged_index_copy(k, v, slots, k_cache, v_cache):
    k_cache.view(-1, HEADS, HEAD_DIM).index_copy_(0, slots, k)
    v_cache.view(-1, HEADS, HEAD_DIM).index_copy_(0, slots, v)


class ContiguousCase:
    def __init__(self, batch, new_len, max_seq, dtype):
        self.batch, self.new_len, self.max_seq, self.dtype = batch, new_len, max_seq, dtype

    @property
    def label(self):
        return (f"contiguous {self.batch}x{self.new_len} into {self.max_seq}, "
                f"{HEADS}x{HEAD_DIM} {DTYPE_NAMES[self.dtype]}")

    def bytes_moved(self):
        element = torch.empty((), dtype=self.dtype).element_size()
        return 4 * self.batch * self.new_len * HEADS * HEAD_DIM * element + self.batch * 4

    def make_sets(self):
        sets = []
        for _ in range(SETS):
            k = torch.randn(self.batch, self.new_len, HEADS, HEAD_DIM, dtype=self.dtype,
                            device="cuda")
            v = torch.randn_like(k)
            seqlens = torch.randint(0, self.max_seq - self.new_len + 1, (self.batch,),
                                    dtype=torch.int32, device="cuda")
            shape = (self.batch, self.max_seq, HEADS, HEAD_DIM)
            k_cache = torch.zeros(shape, dtype=self.dtype, device="cuda")
            v_cache = torch.zeros_like(k_cache)
            # The slice-assignment idiom needs the lengths on the host, as Python ints.
            starts = seqlens.tolist()
            sets.append((k, v, seqlens, k_cache, v_cache, starts))
        return sets

    def llmk_fn(self, ctx):
        stream = torch.cuda.current_stream().cuda_stream

        def run(k, v, seqlens, k_cache, v_cache, starts):
            llmk.kv_cache_write(ctx, k, v, seqlens, k_cache, v_cache, stream=stream)
        return run


def contiguous_slices(k, v, seqlens, k_cache, v_cache, starts):
    n = k.shape[1]
    for b, start in enumerate(starts):
        k_cache[b, start:start + n] = k[b]
        v_cache[b, start:start + n] = v[b]


def contiguous_index_put(k, v, seqlens, k_cache, v_cache, starts):
    positions = seqlens.long()[:, None] + torch.arange(k.shape[1], device=k.device)
    batch = torch.arange(k.shape[0], device=k.device)[:, None]
    k_cache[batch, positions] = k
    v_cache[batch, positions] = v


PEERS = {
    "eager index_put": paged_index_put,
    "compiled index_put": compiled(paged_index_put),
    "eager index_copy_": paged_index_copy,
    "compiled index_copy_": compiled(paged_index_copy),
    "eager slice assignment": contiguous_slices,
    "eager index_put (device seqlens)": contiguous_index_put,
    "compiled index_put (device seqlens)": compiled(contiguous_index_put),
}

PAGED_PEERS = ["eager index_put", "compiled index_put", "eager index_copy_",
               "compiled index_copy_"]
CONTIGUOUS_PEERS = ["eager slice assignment", "eager index_put (device seqlens)",
                    "compiled index_put (device seqlens)"]

CASES = [
    (PagedCase(16384, 16, 1024, torch.bfloat16), PAGED_PEERS),
    (ContiguousCase(16, 1024, 4096, torch.bfloat16), CONTIGUOUS_PEERS),
    # Decode: one new token per sequence; launch- and latency-bound, not bandwidth.
    (PagedCase(256, 16, 4096, torch.bfloat16), ["eager index_put", "compiled index_put"]),
    (ContiguousCase(64, 1, 4096, torch.bfloat16), ["eager index_put (device seqlens)"]),
]


def check_against_torch(sets, run, reference):
    """Largest difference between the caches llmk wrote and those the PyTorch idiom wrote: a copy,
    so 0."""
    def clone(t):
        return t.clone() if isinstance(t, torch.Tensor) else t
    ours = [clone(t) for t in sets[0]]
    theirs = [clone(t) for t in sets[0]]
    run(*(as_llmk(t) if isinstance(t, torch.Tensor) else t for t in ours))
    reference(*theirs)
    torch.cuda.synchronize()
    return max((ours[i].float() - theirs[i].float()).abs().max().item() for i in (3, 4))


def main():
    args = parse_args(__doc__.splitlines()[0])
    ctx = llmk.Context.cuda(0)
    copy_gbs, copy_us = copy_ceiling()
    rows = []
    for case, peer_names in CASES:
        sets = case.make_sets()
        # llmk views built outside the timing; the host-side starts pass through unchanged.
        llmk_sets = [tuple(as_llmk(t) if isinstance(t, torch.Tensor) else t for t in s)
                     for s in sets]
        run = case.llmk_fn(ctx)
        error = check_against_torch(sets, run, PEERS[peer_names[0]])
        llmk_us = median_us(run, llmk_sets)
        peers = {name: median_us(PEERS[name], sets) for name in peer_names}
        rows.append(row(case.label, case.bytes_moved(), llmk_us, copy_gbs, peers, error))
        del sets, llmk_sets
        torch.cuda.empty_cache()
    report(args, "KV-cache writes", rows, copy_gbs, copy_us)
    ctx.close()


if __name__ == "__main__":
    main()
