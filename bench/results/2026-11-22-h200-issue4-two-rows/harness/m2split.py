"""Scratch: the two-row GEMV's warps per tile forced (SCRATCH_PAIR_SPLIT in a scratch build) against
the launcher's choice and cuBLASLt, bf16 and f16, two interleaved rounds."""
import os, statistics
import torch
import llmk
import common
from common import as_llmk
SHAPES = [(5120, 5120), (3072, 8192), (4096, 11008), (11008, 4096), (13824, 5120), (5120, 13824),
          (8192, 28672), (2048, 8192), (4096, 4096), (28672, 8192), (8192, 2048)]
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
for dtype in (torch.bfloat16, torch.float16):
    for k, n in SHAPES:
        sets = [(torch.randn(2, k, dtype=dtype, device="cuda"),
                 (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
                 torch.empty(2, n, dtype=dtype, device="cuda")) for _ in range(2)]
        views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
        res = {}
        for rnd in range(2):
            for label in ["auto-split", "1", "2", "4", "8", "cublaslt"]:
                os.environ.pop("SCRATCH_PAIR_SPLIT", None)
                path = llmk.MatmulPath.CUBLASLT if label == "cublaslt" else llmk.MatmulPath.GEMV
                if label not in ("auto-split", "cublaslt"):
                    os.environ["SCRATCH_PAIR_SPLIT"] = label
                cfg = llmk.MatmulConfig(path=path)
                def run(x, wt, y, cfg=cfg):
                    llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
                res.setdefault(label, []).append(common.median_us(run, views))
        os.environ.pop("SCRATCH_PAIR_SPLIT", None)
        cells = "  ".join(f"{l} {min(v):6.2f}" for l, v in res.items())
        print(f"{str(dtype)[6:]:8s} 2x{k}x{n:<6d} {cells}", flush=True)
        del sets, views
ctx.close()
