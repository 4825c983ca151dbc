"""Scratch: compile the tied peers once so TORCH_LOGS=output_code prints Inductor's kernels."""
import torch, torch.nn.functional as F
c = lambda f: torch.compile(f, dynamic=False)
emb = c(lambda ids, t: F.embedding(ids, t))
for n in (2048, 16384):
    emb(torch.randint(0, 32000, (n,), device="cuda"), torch.randn(32000, 4096, dtype=torch.bfloat16, device="cuda"))
x = torch.randn(16384, 5504, dtype=torch.bfloat16, device="cuda")
silu = c(lambda x: F.silu(x[..., :2752]) * x[..., 2752:])
silu(x)
def put(k, v, seqlens, kc, vc):
    positions = seqlens.long()[:, None] + torch.arange(k.shape[1], device=k.device)
    batch = torch.arange(k.shape[0], device=k.device)[:, None]
    kc[batch, positions] = k
    vc[batch, positions] = v
k = torch.randn(16, 1024, 32, 128, dtype=torch.bfloat16, device="cuda")
kc = torch.zeros(16, 4096, 32, 128, dtype=torch.bfloat16, device="cuda")
c(put)(k, k.clone(), torch.randint(0, 3000, (16,), dtype=torch.int32, device="cuda"), kc, kc.clone())
torch.cuda.synchronize()
