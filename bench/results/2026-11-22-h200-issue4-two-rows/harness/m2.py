"""Scratch: M = 2 forced GEMV against forced cuBLASLt across weight shapes (the library under
LLMK_LIBRARY), bench timing (single call) and back to back; rel error vs torch f32."""
import os, statistics, sys
import torch
import torch.nn.functional as F
import llmk
import common
from common import as_llmk
tag = sys.argv[1]
SHAPES = [(4096, 11008), (11008, 4096), (4096, 4096), (5120, 5120), (5120, 13824), (13824, 5120),
          (8192, 28672), (28672, 8192), (3072, 8192), (2048, 8192), (8192, 2048), (1536, 6144),
          (4099, 11008)]
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
for dtype in (torch.float16, torch.bfloat16):
    for k, n in SHAPES:
        m = 2
        kp = (k + 7) // 8 * 8
        sets = []
        for _ in range(2):
            xs = torch.randn(m, kp, dtype=dtype, device="cuda")[:, :k]
            ws = (torch.randn(n, kp, device="cuda") * k ** -0.5).to(dtype)[:, :k]
            sets.append((xs, ws, torch.empty(m, n, dtype=dtype, device="cuda")))
        views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
        out = []
        for path in (llmk.MatmulPath.GEMV, llmk.MatmulPath.CUBLASLT):
            cfg = llmk.MatmulConfig(path=path)
            def run(x, wt, y, cfg=cfg):
                llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
            x, w, y = sets[0]
            y.fill_(float("nan")); run(*views[0]); torch.cuda.synchronize()
            want = F.linear(x.float(), w.float())
            err = ((y.float() - want).norm() / want.norm()).item()
            single = common.median_us(run, views)
            b2b = common.back_to_back_us(run, views)
            out.append((single, b2b, err))
        (g1, g2, ge), (c1, c2, ce) = out
        print(f"{tag} {str(dtype)[6:]:8s} 2x{k}x{n:<6d} gemv {g1:7.2f} b2b {g2:7.2f} | cublaslt {c1:7.2f} b2b {c2:7.2f} | "
              f"single {c1/g1:.3f}x b2b {c2/g2:.3f}x | err {ge:.1e} {ce:.1e}", flush=True)
        del sets, views
ctx.close()
