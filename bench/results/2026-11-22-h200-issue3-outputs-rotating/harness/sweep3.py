"""Scratch: (A) compiled peers timed with their outputs rotating (results held) against the bench's
current timing; (B) gated SiLU block shapes."""
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
lib.silu_variant_run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
lib.silu_name.restype = ctypes.c_char_p
ROUNDS = 5
VOCAB, HIDDEN = 32000, 4096
c = lambda f: torch.compile(f, dynamic=False)
stream = lambda: torch.cuda.current_stream().cuda_stream

def report(title, fns, sets):
    res = {}
    for r in range(ROUNDS):
        for name, (fn, timer) in fns.items():
            res.setdefault(name, []).append(timer(fn, sets))
    print(f"== {title}")
    first = statistics.median(next(iter(res.values())))
    for name, us in res.items():
        m = statistics.median(us)
        print(f"  {name:44s} {m:8.2f} us  [{min(us):.2f}-{max(us):.2f}]  first/this {first/m:.3f}")
    sys.stdout.flush()

emb = c(lambda ids, t, y: F.embedding(ids, t))
def emb_variant(v):
    def run(ids, table, y):
        assert lib.emb_run(v, ids.data_ptr(), table.data_ptr(), y.data_ptr(), ids.numel(), VOCAB, HIDDEN, stream()) == 0
    return run
for tokens in (2048, 16384):
    sets = [(torch.randint(0, VOCAB, (tokens,), device="cuda"),
             torch.randn(VOCAB, HIDDEN, dtype=torch.bfloat16, device="cuda"),
             torch.empty(tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")) for _ in range(2)]
    report(f"embedding {tokens} of {VOCAB}x{HIDDEN} bf16", {
        "llmk src (256x2)": (emb_variant(0), timing.median_us),
        "t128p2": (emb_variant(2), timing.median_us),
        "compiled F.embedding, bench timing": (emb, timing.median_us),
        "compiled F.embedding, outputs rotating": (emb, timing.median_us_held),
        "eager F.embedding, outputs rotating": (lambda i, t, y: F.embedding(i, t), timing.median_us_held),
    }, sets)
    del sets; torch.cuda.empty_cache()

for n in (2752, 5504):
    silu = c(lambda x, y: F.silu(x[..., :n]) * x[..., n:])
    sets = [(torch.randn(16384, 2 * n, dtype=torch.bfloat16, device="cuda"),
             torch.empty(16384, n, dtype=torch.bfloat16, device="cuda")) for _ in range(2)]
    ref = silu(*sets[0])
    def src(x, y):
        assert lib.silu_and_mul_run(x.data_ptr(), y.data_ptr(), x.shape[0], n, stream()) == 0
    fns = {"llmk src (128x1)": (src, timing.median_us)}
    for v in range(lib.silu_variants()):
        def run(x, y, v=v):
            assert lib.silu_variant_run(v, x.data_ptr(), y.data_ptr(), x.shape[0], n, stream()) == 0
        sets[0][1].fill_(float("nan")); run(*sets[0]); torch.cuda.synchronize()
        assert torch.equal(sets[0][1], ref), v
        fns[lib.silu_name(v).decode()] = (run, timing.median_us)
    fns["compiled silu * up, bench timing"] = (silu, timing.median_us)
    fns["compiled silu * up, outputs rotating"] = (silu, timing.median_us_held)
    report(f"silu_and_mul 16384 x {2*n} bf16", fns, sets)
    del sets, ref; torch.cuda.empty_cache()
