"""Scratch (not committed): does a peer gain from writing the same output buffer every iteration?
Each kernel timed writing into the sets' rotating outputs and into one fixed output, bench timing."""
import ctypes, os, statistics, sys
import torch
import torch.nn.functional as F
import importlib.util
spec = importlib.util.spec_from_file_location("t", os.path.join(os.path.dirname(__file__), "timing.py"))
timing = importlib.util.module_from_spec(spec); spec.loader.exec_module(timing)

lib = ctypes.CDLL(sys.argv[1])
lib.emb_run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
lib.silu_and_mul_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
ROUNDS = 5
VOCAB, HIDDEN = 32000, 4096
c = lambda f: torch.compile(f, dynamic=False)

def emb_variant(v):
    def run(ids, table, y):
        assert lib.emb_run(v, ids.data_ptr(), table.data_ptr(), y.data_ptr(), ids.numel(), VOCAB,
                           HIDDEN, torch.cuda.current_stream().cuda_stream) == 0
    return run

def fixed(sets, y):
    return [s[:-1] + (y,) for s in sets]

def table(title, fns, rot, fix):
    res = {}
    for r in range(ROUNDS):
        for name, (fn, kinds) in fns.items():
            for kind in kinds:
                res.setdefault((name, kind), []).append(timing.median_us(fn, rot if kind == "rotating y" else fix))
    print(f"== {title}")
    for (name, kind), us in res.items():
        print(f"  {name:34s} {kind:10s} {statistics.median(us):8.2f} us  [{min(us):.2f}-{max(us):.2f}]")
    sys.stdout.flush()

emb_alloc = c(lambda ids, t, y: F.embedding(ids, t))
emb_into = c(lambda ids, t, y: y.copy_(F.embedding(ids, t)))
for tokens in (2048, 4096, 16384):
    rot = []
    for _ in range(2):
        rot.append((torch.randint(0, VOCAB, (tokens,), device="cuda"),
                    torch.randn(VOCAB, HIDDEN, dtype=torch.bfloat16, device="cuda"),
                    torch.empty(tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")))
    fix = fixed(rot, torch.empty(tokens, HIDDEN, dtype=torch.bfloat16, device="cuda"))
    ref = F.embedding(rot[0][0], rot[0][1])
    emb_into(*rot[0]); assert torch.equal(rot[0][2], ref)
    src = [torch.empty(tokens * HIDDEN, dtype=torch.bfloat16, device="cuda") for _ in range(2)]
    crot = [(src[i], rot[i][2].view(-1)) for i in range(2)]
    cfix = [(src[i], fix[0][2].view(-1)) for i in range(2)]
    both = ["rotating y", "fixed y"]
    table(f"embedding {tokens} of {VOCAB}x{HIDDEN} bf16", {
        "llmk src (256x2)": (emb_variant(0), both),
        "t128p2": (emb_variant(2), both),
        "compiled F.embedding (allocates)": (emb_alloc, ["rotating y"]),
        "compiled y.copy_(F.embedding)": (emb_into, both),
    }, rot, fix)
    table(f"memcpy of y's bytes ({tokens})", {"copy_": (lambda a, b: b.copy_(a), both)}, crot, cfix)
    del rot, fix, src, crot, cfix, ref
    torch.cuda.empty_cache()

N = 2752
silu_alloc = c(lambda x, y: F.silu(x[..., :N]) * x[..., N:])
silu_into = c(lambda x, y: y.copy_(F.silu(x[..., :N]) * x[..., N:]))
def llmk_silu(x, y):
    assert lib.silu_and_mul_run(x.data_ptr(), y.data_ptr(), x.shape[0], N, torch.cuda.current_stream().cuda_stream) == 0
rot = [(torch.randn(16384, 2 * N, dtype=torch.bfloat16, device="cuda"),
        torch.empty(16384, N, dtype=torch.bfloat16, device="cuda")) for _ in range(2)]
fix = fixed(rot, torch.empty(16384, N, dtype=torch.bfloat16, device="cuda"))
llmk_silu(*rot[0]); ref = silu_alloc(*rot[0])
print("silu max diff llmk vs compiled", (rot[0][1].float() - ref.float()).abs().max().item())
silu_into(*rot[1]); assert torch.equal(rot[1][1], silu_alloc(*rot[1]))
both = ["rotating y", "fixed y"]
table("silu_and_mul 16384 x 5504 bf16", {
    "llmk src": (llmk_silu, both),
    "compiled silu * up (allocates)": (silu_alloc, ["rotating y"]),
    "compiled y.copy_(silu * up)": (silu_into, both),
}, rot, fix)
