# Scratch: is llmk_matmul_tune's choice stable, and is it faster in an interleaved A/B?
import statistics, sys, torch, torch.nn.functional as F
sys.path.insert(0, "bench")
import llmk, common
from common import as_llmk
Act, Path = llmk.Activation, llmk.MatmulPath
s = torch.cuda.current_stream().cuda_stream
heur, tuned = llmk.Context.cuda(0), llmk.Context.cuda(0)
cases = [(2048, 4096, 11008), (2048, 11008, 4096), (8192, 4096, 11008), (8192, 11008, 4096)]
for dtype in (torch.float16, torch.bfloat16):
    for m, k, n in cases:
        sets = [(torch.randn(m, k, device="cuda").to(dtype), (torch.randn(n, k, device="cuda") * k ** -0.5).to(dtype),
                 torch.randn(n, device="cuda").to(dtype), torch.empty(m, n, device="cuda", dtype=dtype)) for _ in range(2)]
        views = [(as_llmk(x), as_llmk(w.t()), as_llmk(b), as_llmk(y)) for x, w, b, y in sets]
        for act, bias in ((Act.IDENTITY, False), (Act.GELU_TANH, True)):
            cfg = llmk.MatmulConfig(activation=act, path=Path.CUBLASLT)
            reports = []
            for _ in range(3):
                x, wt, b, y = views[0]
                reports.append(llmk.matmul_tune(tuned, cfg, x, wt, None, b if bias else None, y, s))
            def runner(ctx):
                def run(x, wt, b, y):
                    llmk.matmul(ctx, cfg, x, wt, None, b if bias else None, y, stream=s)
                return run
            h, t = [], []
            for _ in range(4):
                h.append(common.median_us(runner(heur), views))
                t.append(common.median_us(runner(tuned), views))
            print(f"{m}x{k}x{n} {str(dtype)[6:]} {act.name:9s} reports " +
                  " ".join(f"r{r.chosen}:{r.chosen_us:.0f}/{r.first_us:.0f}" for r in reports) +
                  f" | heuristic {statistics.median(h):.1f} [{min(h):.0f}-{max(h):.0f}] tuned {statistics.median(t):.1f} [{min(t):.0f}-{max(t):.0f}]"
                  f" ratio {statistics.median(t)/statistics.median(h):.3f}", flush=True)
        del sets, views
        torch.cuda.empty_cache()
