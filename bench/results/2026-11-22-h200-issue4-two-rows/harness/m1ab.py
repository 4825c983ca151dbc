import sys, torch, llmk, common
from common import as_llmk
tag = sys.argv[1]
ctx = llmk.Context.cuda(0); s = torch.cuda.current_stream().cuda_stream
for dtype in (torch.float16, torch.bfloat16):
    for k, n in ((4096, 11008), (11008, 4096), (8192, 28672), (5120, 5120)):
        sets = [(torch.randn(1, k, dtype=dtype, device="cuda"), (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
                 torch.empty(1, n, dtype=dtype, device="cuda")) for _ in range(2)]
        views = [(as_llmk(x), as_llmk(w.t()), as_llmk(y)) for x, w, y in sets]
        cfg = llmk.MatmulConfig(path=llmk.MatmulPath.GEMV)
        run = lambda x, wt, y: llmk.matmul(ctx, cfg, x, wt, None, None, y, stream=s)
        print(f"{tag} 1x{k}x{n} {str(dtype)[6:]} {min(common.median_us(run, views) for _ in range(3)):.2f}", flush=True)
    dm, dff = 4096, 11008
    sets = [(torch.randn(1, dm, dtype=dtype, device="cuda"), (torch.randn(2 * dff, dm, device="cuda") * dm ** -0.5).to(dtype),
             (torch.randn(dm, dff, device="cuda") * dff ** -0.5).to(dtype), torch.empty(1, dm, dtype=dtype, device="cuda")) for _ in range(2)]
    nb = llmk.gated_mlp_workspace_size(ctx, as_llmk(sets[0][0]), as_llmk(sets[0][1][:dff]))
    keep = [torch.empty(max(nb, 1), dtype=torch.uint8, device="cuda") for _ in sets]
    views = [(as_llmk(x), as_llmk(gu[:dff]), as_llmk(gu[dff:]), as_llmk(wd), llmk.Tensor(keep[i].data_ptr(), llmk.DType.U8, (nb,)), as_llmk(y))
             for i, (x, gu, wd, y) in enumerate(sets)]
    run = lambda *v: llmk.gated_mlp(ctx, None, *v[:4], llmk.Activation.SILU, v[4], v[5], stream=s)
    print(f"{tag} gated_mlp 1 tok {str(dtype)[6:]} {min(common.median_us(run, views) for _ in range(3)):.2f}", flush=True)
ctx.close()
