"""Scratch: M = 5-8 on the library under LLMK_LIBRARY (tag: 'mma' = MmaWarp, the shipped tile;
'wide' = QuadWarp with two W row pairs per quarter, 16 W rows per warp, 128 B per row per load),
forced splits (SCRATCH_SPLIT) on the wide build, cuBLASLt beside; 'leftover': three and four rows
at k with much left past the last 256-element group, GEMV against cuBLASLt."""
import os, sys
import torch
import torch.nn.functional as F
import llmk
import common
from common import as_llmk
SHAPES = [(4096, 11008), (11008, 4096), (5120, 5120), (5120, 13824), (13824, 5120), (8192, 28672),
          (28672, 8192), (3072, 8192), (2048, 8192), (8192, 2048), (4096, 4096), (1024, 4096),
          (18944, 3584), (9216, 2304)]
LEFTOVER = [(k, n) for k in (200, 480, 1000, 2216, 4296, 5320) for n in (4096, 11008)]
tag = sys.argv[1]
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
l2 = torch.cuda.get_device_properties(0).L2_cache_size

def timed(views, split=None, path=llmk.MatmulPath.GEMV):
    os.environ.pop("SCRATCH_SPLIT", None)
    if split is not None:
        os.environ["SCRATCH_SPLIT"] = split
    cfg = llmk.MatmulConfig(path=path)
    def run(x, wt, y):
        llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
    us = common.median_us(run, views)
    os.environ.pop("SCRATCH_SPLIT", None)
    return us

def sets_for(m, k, n, dtype):
    nsets = max(2, -(-2 * l2 // (n * k * 2)) + 1)
    sets = [(torch.randn(m, k, dtype=dtype, device="cuda"),
             (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
             torch.empty(m, n, dtype=dtype, device="cuda")) for _ in range(nsets)]
    return sets, [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]

def error(sets, views):
    x, w, y = sets[0]
    y.fill_(float("nan"))
    xv, wv, yv = views[0]
    llmk.matmul(ctx, llmk.MatmulConfig(path=llmk.MatmulPath.GEMV), xv, wv, None, None, yv, stream=s)
    torch.cuda.synchronize()
    want = F.linear(x.float(), w.float())
    return ((y.float() - want).norm() / want.norm()).item()

if tag == "leftover":
    for dtype in (torch.bfloat16, torch.float16):
        for m in (3, 4):
            for k, n in LEFTOVER:
                sets, views = sets_for(m, k, n, dtype)
                g = timed(views); c = timed(views, path=llmk.MatmulPath.CUBLASLT)
                print(f"leftover {str(dtype)[6:]:8s} {m}x{k}x{n:<6d} gemv {g:7.2f} cublaslt {c:7.2f} | {c / g:.3f}x err {error(sets, views):.1e}", flush=True)
                del sets, views
    sys.exit(0)

splits = [None, "1", "2", "4", "8"] if tag == "wide3" else [None]
for dtype in (torch.bfloat16, torch.float16):
    for m in (5, 8):
        for k, n in SHAPES:
            sets, views = sets_for(m, k, n, dtype)
            cells = [("cublaslt", timed(views, path=llmk.MatmulPath.CUBLASLT))]
            cells += [(f"{tag}-s{sp or 'a'}", timed(views, sp)) for sp in splits]
            best = min(cells[1:], key=lambda c: c[1])
            print(f"{tag} {str(dtype)[6:]:8s} {m}x{k}x{n:<6d} " + " ".join(f"{l} {u:6.2f}" for l, u in cells)
                  + f" | {tag} {cells[0][1] / cells[1][1]:.3f}x best {best[0]} {cells[0][1] / best[1]:.3f}x cublaslt err {error(sets, views):.1e}", flush=True)
            del sets, views
ctx.close()
