"""Scratch: M = 3 and 4 on QuadWarp (4 W rows per warp, 128 B per row per load), with and without
the L2::256B hint, against MmaWarp (the shipped tile) and cuBLASLt; forced splits at a few shapes."""
import os, sys
import torch
import llmk
import common
from common import as_llmk
SHAPES = [(4096, 11008), (11008, 4096), (5120, 5120), (5120, 13824), (13824, 5120), (8192, 28672),
          (28672, 8192), (3072, 8192), (2048, 8192), (8192, 2048), (4096, 4096), (1024, 4096),
          (18944, 3584), (9216, 2304)]
SPLITS = {(4096, 11008), (5120, 5120), (8192, 2048), (13824, 5120), (28672, 8192)}
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
l2 = torch.cuda.get_device_properties(0).L2_cache_size
def timed(views, quad=None, split=None, path=llmk.MatmulPath.GEMV):
    for key, val in (("SCRATCH_QUAD", quad), ("SCRATCH_PAIR_SPLIT", split)):
        os.environ.pop(key, None)
        if val is not None:
            os.environ[key] = val
    cfg = llmk.MatmulConfig(path=path)
    def run(x, wt, y):
        llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
    us = common.median_us(run, views)
    os.environ.pop("SCRATCH_QUAD", None); os.environ.pop("SCRATCH_PAIR_SPLIT", None)
    return us
for m in (4, 3):
    for dtype in (torch.bfloat16, torch.float16):
        for k, n in SHAPES:
            nsets = max(2, -(-2 * l2 // (n * k * 2)) + 1)
            sets = [(torch.randn(m, k, dtype=dtype, device="cuda"),
                     (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
                     torch.empty(m, n, dtype=dtype, device="cuda")) for _ in range(nsets)]
            views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
            # correctness of the quad tile against torch
            x, w, y = sets[0]
            for quad in ((None, "pf") if m == 3 else (None,)):
                y.fill_(float("nan"))
                os.environ.pop("SCRATCH_QUAD", None)
                if quad: os.environ["SCRATCH_QUAD"] = quad
                llmk.matmul(ctx, llmk.MatmulConfig(path=llmk.MatmulPath.GEMV), as_llmk(x), as_llmk(w.t()), None, None, as_llmk(y), stream=s)
                torch.cuda.synchronize()
                want = torch.nn.functional.linear(x.float(), w.float())
                err = ((y.float() - want).norm() / want.norm()).item()
                assert err < 1e-2, (m, k, n, quad, err)
            os.environ.pop("SCRATCH_QUAD", None)
            cells = []
            for r in range(2):
                row = {"quad": timed(views), "mma": timed(views, "off"),
                       "cublaslt": timed(views, path=llmk.MatmulPath.CUBLASLT)}
                if m == 3:
                    row["quad-pf"] = timed(views, "pf")
                if r == 0 and (k, n) in SPLITS:
                    for sp in ("1", "2", "4", "8"):
                        row["s" + sp] = timed(views, split=sp)
                cells.append(row)
            best = {key: min(c[key] for c in cells if key in c) for key in {kk for c in cells for kk in c}}
            print(f"{m}x{k}x{n:<6d} {str(dtype)[6:]:8s} " + "  ".join(f"{kk} {v:6.2f}" for kk, v in best.items())
                  + f"  | quad vs cublaslt {best['cublaslt']/best['quad']:.3f} vs mma {best['mma']/best['quad']:.3f}", flush=True)
            del sets, views
ctx.close()
