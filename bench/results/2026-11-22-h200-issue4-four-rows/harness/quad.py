"""Scratch: M = 3-16 on QuadWarp (SCRATCH_TILE=1: 4 W rows per warp; 2: 8, in two row sets) with
forced splits (SCRATCH_SPLIT), against MmaWarp (the shipped tile) and cuBLASLt; errors first."""
import os, sys
import torch
import torch.nn.functional as F
import llmk
import common
from common import as_llmk
SHAPES = [(4096, 11008), (11008, 4096), (5120, 5120), (5120, 13824), (13824, 5120), (8192, 28672),
          (28672, 8192), (3072, 8192), (2048, 8192), (8192, 2048), (4096, 4096), (1024, 4096),
          (18944, 3584), (9216, 2304)]
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
l2 = torch.cuda.get_device_properties(0).L2_cache_size

def configure(tile=None, split=None):
    for key, val in (("SCRATCH_TILE", tile), ("SCRATCH_SPLIT", split)):
        os.environ.pop(key, None)
        if val is not None:
            os.environ[key] = val

def call(views, path=llmk.MatmulPath.GEMV):
    cfg = llmk.MatmulConfig(path=path)
    def run(x, wt, y):
        llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
    return run

if "errors" in sys.argv:
    worst = 0.0
    for dtype in (torch.bfloat16, torch.float16):
        for m in (3, 4, 5, 8, 9, 13, 16):
            for k, n in ((4099, 1003), (130, 77), (4096, 11008), (5120, 257), (37, 9)):
                kp = (k + 7) // 8 * 8 + 8  # padded rows: strides past k, 16-byte aligned
                x = torch.randn(m, kp, dtype=dtype, device="cuda")[:, :k]
                w = (torch.randn(n, kp, device="cuda") * k ** -0.5).to(dtype)[:, :k]
                want = F.linear(x.float(), w.float())
                for tile in ("1", "2"):
                    for split in (None, "1", "2", "4", "8"):
                        configure(tile, split)
                        y = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
                        call(None)(as_llmk(x), as_llmk(w.t()), as_llmk(y))
                        torch.cuda.synchronize()
                        err = ((y.float() - want).norm() / want.norm()).item()
                        worst = max(worst, err) if err == err else float("inf")
                        if not err < 1e-2:
                            print(f"BAD {dtype} m={m} k={k} n={n} tile={tile} split={split} err={err}")
    configure()
    print(f"errors: worst relative error {worst:.2e}", flush=True)

ms = [int(a) for a in sys.argv[1:] if a.isdigit()] or [4, 8, 16]
dtypes = [torch.float16] if "f16" in sys.argv else [torch.bfloat16]
for dtype in dtypes:
    for m in ms:
        for k, n in SHAPES:
            nsets = max(2, -(-2 * l2 // (n * k * 2)) + 1)
            sets = [(torch.randn(m, k, dtype=dtype, device="cuda"),
                     (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
                     torch.empty(m, n, dtype=dtype, device="cuda")) for _ in range(nsets)]
            views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
            cells = []
            configure()
            cells.append(("cublaslt", common.median_us(call(views, llmk.MatmulPath.CUBLASLT), views)))
            cells.append(("mma", common.median_us(call(views), views)))
            for tile in ("1", "2"):
                for split in (None, "1", "2", "4", "8"):
                    configure(tile, split)
                    cells.append((f"q{tile}s{split or 'a'}", common.median_us(call(views), views)))
            configure()
            cub = cells[0][1]
            best = min(cells[1:], key=lambda c: c[1])
            print(f"{str(dtype)[6:]:8s} {m}x{k}x{n:<6d} " + " ".join(f"{l} {u:6.2f}" for l, u in cells)
                  + f" | best {best[0]} {cub / best[1]:.3f}x cublaslt", flush=True)
            del sets, views
ctx.close()
