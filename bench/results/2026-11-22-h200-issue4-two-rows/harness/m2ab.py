"""Scratch: the two-row GEMV, tail element by element (v1) or vectorized (v2), forced GEMV at the
shapes AUTO takes at two rows, forced splits at two weak ones, cuBLASLt beside."""
import os, sys
import torch
import llmk
import common
from common import as_llmk
tag = sys.argv[1]
SHAPES = [(4096, 11008), (11008, 4096), (5120, 5120), (5120, 13824), (13824, 5120), (3072, 8192),
          (1024, 4096), (18944, 3584), (9216, 2304), (2048, 8192), (8192, 2048), (2176, 8192),
          (4099, 11008), (28672, 8192)]
SPLITS = {(9216, 2304): ["1", "2", "4", "8"], (2176, 8192): ["1", "2", "4"]}
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
l2 = torch.cuda.get_device_properties(0).L2_cache_size
for dtype in (torch.bfloat16, torch.float16):
    for k, n in SHAPES:
        kp = (k + 7) // 8 * 8
        nsets = max(2, -(-2 * l2 // (n * k * 2)) + 1)
        sets = [(torch.randn(2, kp, dtype=dtype, device="cuda")[:, :k],
                 (torch.randn(n, kp, device="cuda") * k ** -0.5).to(dtype)[:, :k],
                 torch.empty(2, n, dtype=dtype, device="cuda")) for _ in range(nsets)]
        views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
        labels = ["gemv"] + SPLITS.get((k, n), []) + (["cublaslt"] if tag == "v2" else [])
        out = []
        for label in labels:
            os.environ.pop("SCRATCH_PAIR_SPLIT", None)
            if label.isdigit():
                os.environ["SCRATCH_PAIR_SPLIT"] = label
            path = llmk.MatmulPath.CUBLASLT if label == "cublaslt" else llmk.MatmulPath.GEMV
            cfg = llmk.MatmulConfig(path=path)
            def run(x, wt, y, cfg=cfg):
                llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
            out.append(f"{label} {common.median_us(run, views):6.2f}")
        os.environ.pop("SCRATCH_PAIR_SPLIT", None)
        print(f"{tag} {str(dtype)[6:]:8s} 2x{k}x{n:<6d} " + "  ".join(out), flush=True)
        del sets, views
ctx.close()
