"""Scratch (not committed): embedding variants (libembvar.so) beside torch.compile's F.embedding
and a copy of y's bytes, interleaved rounds in one process, bench/common.py's timing."""
import ctypes, os, statistics, sys
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import importlib.util
spec = importlib.util.spec_from_file_location("common_t", os.path.join(os.path.dirname(__file__), "timing.py"))
timing = importlib.util.module_from_spec(spec); spec.loader.exec_module(timing)

lib = ctypes.CDLL(sys.argv[1])
lib.emb_name.restype = ctypes.c_char_p
lib.emb_run.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
nv = lib.emb_variants()
names = [lib.emb_name(v).decode() for v in range(nv)]
VOCAB, HIDDEN = 32000, 4096
ROUNDS = int(os.environ.get("ROUNDS", "5"))
compiled = torch.compile(lambda ids, table, y: F.embedding(ids, table), dynamic=False)

def variant(v):
    stream = torch.cuda.current_stream().cuda_stream
    def run(ids, table, y):
        rc = lib.emb_run(v, ids.data_ptr(), table.data_ptr(), y.data_ptr(), ids.numel(), VOCAB, HIDDEN, stream)
        assert rc == 0, rc
    return run

for tokens in [int(t) for t in os.environ.get("TOKENS", "512,1024,2048,4096,8192,16384").split(",")]:
    sets = []
    for _ in range(2):
        ids = torch.randint(0, VOCAB, (tokens,), dtype=torch.int64, device="cuda")
        table = torch.randn(VOCAB, HIDDEN, dtype=torch.bfloat16, device="cuda")
        y = torch.empty(tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")
        sets.append((ids, table, y))
    ref = F.embedding(sets[0][0], sets[0][1])
    fns = {names[v]: variant(v) for v in range(nv)}
    for name, fn in fns.items():
        sets[0][2].fill_(float("nan")); fn(*sets[0]); torch.cuda.synchronize()
        assert torch.equal(sets[0][2], ref), name
    fns["compiled F.embedding"] = compiled
    src = [torch.empty(tokens * HIDDEN, dtype=torch.bfloat16, device="cuda") for _ in range(2)]
    copy_sets = [(src[i], sets[i][2].view(-1)) for i in range(2)]
    results = {n: [] for n in list(fns) + ["memcpy y bytes"]}
    for r in range(ROUNDS):
        for name, fn in fns.items():
            results[name].append(timing.median_us(fn, sets))
        results["memcpy y bytes"].append(timing.median_us(lambda a, b: b.copy_(a), copy_sets))
    base = statistics.median(results[names[0]])
    print(f"== {tokens} ids of {VOCAB}x{HIDDEN} bf16 ({2*tokens*HIDDEN*2/1e6:.1f} MB moved)")
    for name, us in results.items():
        m = statistics.median(us)
        print(f"  {name:22s} {m:7.2f} us  [{min(us):7.2f}-{max(us):7.2f}]  base/this {base/m:.3f}")
    sys.stdout.flush()
    del sets, src, copy_sets, ref
    torch.cuda.empty_cache()
