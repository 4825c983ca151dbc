"""Scratch: gated_mlp (SwiGLU) at two tokens: the fused two-row gate/up GEMV (path GEMV: every GEMM
on the GEMV) against AUTO (gate/up on cuBLASLt + silu_and_mul, down on the GEMV) and all cuBLASLt."""
import torch, torch.nn.functional as F
import llmk, common
from common import as_llmk
ctx = llmk.Context.cuda(0)
s = torch.cuda.current_stream().cuda_stream
P = llmk.MatmulPath
for dm, dff in ((4096, 11008), (5120, 13824), (8192, 28672), (3584, 18944)):
  for t in (3, 4):
    for dtype in (torch.bfloat16, torch.float16):
        pass
        sets = [(torch.randn(t, dm, dtype=dtype, device="cuda"),
                 (torch.randn(2 * dff, dm, device="cuda") * dm ** -0.5).to(dtype),
                 (torch.randn(dm, dff, device="cuda") * dff ** -0.5).to(dtype),
                 torch.empty(t, dm, dtype=dtype, device="cuda")) for _ in range(2)]
        nbytes = llmk.gated_mlp_workspace_size(ctx, as_llmk(sets[0][0]), as_llmk(sets[0][1][:dff]))
        views = [(as_llmk(x), as_llmk(gu[:dff]), as_llmk(gu[dff:]), as_llmk(wd),
                  llmk.Tensor(torch.empty(max(nbytes, 1), dtype=torch.uint8, device="cuda").data_ptr(), llmk.DType.U8, (nbytes,)) , as_llmk(y))
                 for x, gu, wd, y in sets]
        keep = [torch.empty(max(nbytes, 1), dtype=torch.uint8, device="cuda") for _ in sets]
        views = [v[:4] + (llmk.Tensor(keep[i].data_ptr(), llmk.DType.U8, (nbytes,)),) + v[5:] for i, v in enumerate(views)]
        x, gu, wd, y = sets[0]
        want = F.linear(F.silu(F.linear(x.float(), gu[:dff].float())) * F.linear(x.float(), gu[dff:].float()), wd.float())
        out = []
        for path in (P.AUTO, P.GEMV, P.CUBLASLT):
            cfg = llmk.MlpConfig(path=path)
            def run(*v, cfg=cfg):
                llmk.gated_mlp(ctx, cfg, *v[:4], llmk.Activation.SILU, v[4], v[5], stream=s)
            y.fill_(float("nan")); run(*views[0]); torch.cuda.synchronize()
            err = ((y.float() - want).norm() / want.norm()).item()
            us = min(common.median_us(run, views) for _ in range(2))
            out.append(f"{path.name.lower()} {us:7.2f} (err {err:.1e})")
        print(f"gated_mlp {t} tok d_model {dm} d_ff {dff} {str(dtype)[6:]:8s} " + "  ".join(out), flush=True)
        del sets, views, keep
ctx.close()
