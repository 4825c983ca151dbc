"""The activation, RoPE, embedding, KV-cache and AdamW ops through the Python API: enums and
configs, numpy arrays on the CPU context against float64 references, and (where torch with CUDA
is importable) torch tensors on the CUDA context against torch."""
import math

import numpy as np
import pytest

import llmk

F64 = np.float64


def normal(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def bf16_bits(values):
    """float32 values rounded (to nearest even) to bf16, as their bit patterns."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# --- enums and configs -------------------------------------------------------------------------


def test_configs_take_the_librarys_defaults():
    rope = llmk.RopeConfig()._struct()
    assert (rope.style, rope.rotary_dim, rope.theta, rope.llama3_factor) == (
        llmk.RopeStyle.NEOX, 0, 10000.0, 0.0)
    adamw = llmk.AdamWConfig()._struct()
    assert (adamw.lr, adamw.beta1, adamw.beta2, adamw.eps, adamw.weight_decay, adamw.step) == (
        1e-3, 0.9, 0.999, 1e-8, 1e-2, 1)


def test_configs_set_only_what_is_given():
    rope = llmk.RopeConfig(style=llmk.RopeStyle.GPTJ, rotary_dim=64, llama3_factor=8)._struct()
    assert (rope.style, rope.rotary_dim, rope.theta, rope.llama3_factor) == (1, 64, 10000.0, 8.0)
    adamw = llmk.AdamWConfig(lr=0.5, step=7)._struct()
    assert (adamw.lr, adamw.beta1, adamw.step) == (0.5, 0.9, 7)


# --- activations -------------------------------------------------------------------------------

_erf = np.vectorize(math.erf)
ACTIVATIONS = {
    llmk.Activation.IDENTITY: lambda x: x,
    llmk.Activation.GELU: lambda x: x / 2 * (1 + _erf(x / math.sqrt(2))),
    llmk.Activation.GELU_TANH: lambda x: x / 2 * (
        1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    llmk.Activation.SILU: lambda x: x / (1 + np.exp(-x)),
    llmk.Activation.RELU: lambda x: np.maximum(x, 0),
}


@pytest.mark.parametrize("activation", list(llmk.Activation), ids=lambda a: a.name)
def test_bias_activation(cpu, activation):
    x, bias = normal(3, 40), normal(40, seed=1)
    out = np.empty_like(x)
    assert llmk.bias_activation(cpu, x, bias, activation, out) is out
    expected = ACTIVATIONS[activation](x.astype(F64) + bias)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    llmk.bias_activation(cpu, x, None, activation, x)  # in place, no bias
    np.testing.assert_allclose(x, ACTIVATIONS[activation](normal(3, 40).astype(F64)),
                               rtol=1e-5, atol=1e-6)


def test_swiglu_on_a_fused_gate_up_buffer(cpu):
    n = 24
    fused = normal(5, 2 * n, dtype=np.float16)  # [gate | up], as vLLM's silu_and_mul takes it
    gate, up = fused[:, :n], fused[:, n:]
    out = llmk.gated_activation(cpu, gate, up, llmk.Activation.SILU, np.empty((5, n), np.float16))
    expected = ACTIVATIONS[llmk.Activation.SILU](gate.astype(F64)) * up
    np.testing.assert_allclose(out, expected, rtol=2**-10, atol=1e-5)


# --- rope --------------------------------------------------------------------------------------


def inverse_frequencies(rotary_dim, config):
    """Pair i's frequency, with Llama 3.1's scaling when config.llama3_factor is set."""
    theta = 10000.0 if config.theta is None else config.theta
    frequencies = theta ** (-np.arange(0, rotary_dim, 2, dtype=F64) / rotary_dim)
    if not config.llama3_factor:
        return frequencies
    wavelength = 2 * math.pi / frequencies
    length = config.llama3_original_max_position
    low, high = config.llama3_low_freq_factor, config.llama3_high_freq_factor
    smooth = (length / wavelength - low) / (high - low)
    blended = (1 - smooth) * frequencies / config.llama3_factor + smooth * frequencies
    return np.where(wavelength < length / high, frequencies,
                    np.where(wavelength > length / low, frequencies / config.llama3_factor,
                             blended))


def rotate_half(x):
    """Hugging Face Llama's rotate_half: [x1 | x2] -> [-x2 | x1]."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotate_every_two(x):
    """Hugging Face GPT-J's rotate_every_two: pairs (x0, x1) -> (-x1, x0)."""
    return np.stack([-x[..., 1::2], x[..., ::2]], axis=-1).reshape(x.shape)


def rope_reference(x, positions, config, head_dim):
    """Hugging Face's apply_rotary_pos_emb in float64, on the first rotary_dim dimensions.
    x: [tokens, heads, head_dim]."""
    rotary_dim = config.rotary_dim or head_dim
    angles = np.asarray(positions, F64)[:, None] * inverse_frequencies(rotary_dim, config)
    x = np.array(x, dtype=F64)
    rotary = x[..., :rotary_dim]
    if config.style == llmk.RopeStyle.GPTJ:
        angles, rotate = np.repeat(angles, 2, axis=-1), rotate_every_two
    else:
        angles, rotate = np.concatenate([angles, angles], axis=-1), rotate_half
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    x[..., :rotary_dim] = rotary * cos + rotate(rotary) * sin
    return x


ROPE_CONFIGS = {
    "default": llmk.RopeConfig(),
    "gptj_partial": llmk.RopeConfig(style=llmk.RopeStyle.GPTJ, rotary_dim=32, theta=500000.0),
    "llama3": llmk.RopeConfig(theta=500000.0, llama3_factor=8.0, llama3_low_freq_factor=1.0,
                              llama3_high_freq_factor=4.0, llama3_original_max_position=8192),
}


@pytest.mark.parametrize("name", ROPE_CONFIGS)
def test_rope_on_a_fused_qkv_buffer(cpu, name):
    config = ROPE_CONFIGS[name]
    tokens, q_heads, kv_heads, head_dim = 5, 4, 2, 64
    qkv = normal(tokens, (q_heads + 2 * kv_heads) * head_dim)
    q = qkv[:, :q_heads * head_dim].reshape(tokens, q_heads, head_dim)
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].reshape(
        tokens, kv_heads, head_dim)
    v_before = qkv[:, (q_heads + kv_heads) * head_dim:].copy()
    # Every other element: a strided positions view; negative and large positions included.
    positions = np.array([0, 99, 9, 99, -3, 99, 20000, 99, 4095, 99], np.int64)[::2]
    expected_q, expected_k = (rope_reference(t, positions, config, head_dim) for t in (q, k))
    assert np.shares_memory(q, qkv) and np.shares_memory(k, qkv)  # views, not copies
    llmk.rope(cpu, None if name == "default" else config, positions, q, k)
    np.testing.assert_allclose(q, expected_q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(k, expected_k, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(qkv[:, (q_heads + kv_heads) * head_dim:], v_before)


def test_rope_of_q_alone_with_a_cos_sin_cache(cpu):
    tokens, heads, head_dim, max_position = 3, 2, 16, 12
    angles = np.arange(max_position, dtype=F64)[:, None] * inverse_frequencies(
        head_dim, llmk.RopeConfig())
    cache = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)
    q = normal(tokens, heads, head_dim)
    positions = np.array([11, 0, 5], np.int32)
    expected = rope_reference(q, positions, llmk.RopeConfig(), head_dim)
    llmk.rope(cpu, None, positions, q, None, cos_sin_cache=cache)
    np.testing.assert_allclose(q, expected, rtol=1e-5, atol=1e-5)


# --- embedding and KV caches -------------------------------------------------------------------


def test_embedding(cpu):
    table = normal(50, 16, dtype=np.float16)
    ids = np.array([3, 0, 49, 3, 7, 1], np.int64)[::2]
    out = np.empty((3, 16), np.float16)
    assert llmk.embedding(cpu, ids, table, out) is out
    np.testing.assert_array_equal(out, table[ids])


def test_kv_cache_write(cpu):
    batch, new, max_seq, heads, dim = 2, 3, 8, 2, 4
    k, v = normal(batch, new, heads, dim), normal(batch, new, heads, dim, seed=1)
    k_cache, v_cache = (np.zeros((batch, max_seq, heads, dim), np.float32) for _ in range(2))
    lengths = np.array([0, 5], np.int32)
    llmk.kv_cache_write(cpu, k, v, lengths, k_cache, v_cache)
    expected_k, expected_v = np.zeros_like(k_cache), np.zeros_like(v_cache)
    for b, length in enumerate(lengths):
        expected_k[b, length:length + new], expected_v[b, length:length + new] = k[b], v[b]
    np.testing.assert_array_equal(k_cache, expected_k)
    np.testing.assert_array_equal(v_cache, expected_v)


def test_paged_kv_cache_write_skips_negative_slots(cpu):
    tokens, pages, page_size, heads, dim = 4, 3, 4, 2, 8
    k, v = normal(tokens, heads, dim), normal(tokens, heads, dim, seed=1)
    k_cache, v_cache = (np.zeros((pages, page_size, heads, dim), np.float32) for _ in range(2))
    slots = np.array([9, -1, 0, 6], np.int64)
    llmk.paged_kv_cache_write(cpu, k, v, slots, k_cache, v_cache)
    expected_k, expected_v = np.zeros_like(k_cache), np.zeros_like(v_cache)
    for t, slot in enumerate(slots):
        if slot >= 0:
            expected_k[slot // page_size, slot % page_size] = k[t]
            expected_v[slot // page_size, slot % page_size] = v[t]
    np.testing.assert_array_equal(k_cache, expected_k)
    np.testing.assert_array_equal(v_cache, expected_v)


# --- adamw_step --------------------------------------------------------------------------------

# Larger than torch's defaults, so that a term missing from the update (weight decay, a bias
# correction) moves the result far beyond the tolerance.
ADAMW = dict(lr=1e-2, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1)


def adamw_reference(param, grads, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2):
    """torch.optim.AdamW (single-tensor path, zero initial state) in float64, one step per grad;
    returns param, exp_avg, exp_avg_sq."""
    param = param.astype(F64)
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        grad = grad.astype(F64)
        param = param * (1 - lr * weight_decay)
        exp_avg = beta1 * exp_avg + (1 - beta1) * grad
        exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
        denominator = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** step) + eps
        param = param - lr / (1 - beta1 ** step) * exp_avg / denominator
    return param, exp_avg, exp_avg_sq


@pytest.mark.parametrize("grad_dtype", ["f32", "f16", "bf16"])
def test_adamw_steps_match_torchs_formula(cpu, grad_dtype):
    steps, rows, n = 5, 4, 33
    storage = normal(rows, 40)
    param = storage[:, :n]  # rows 40 elements apart: a strided leading dimension
    initial = param.copy()
    exp_avg, exp_avg_sq = np.zeros((rows, n), np.float32), np.zeros((rows, n), np.float32)
    grads, grad_values = [], []
    for step in range(steps):
        grad = normal(rows, n, seed=step + 1)
        if grad_dtype == "f16":
            grad = grad.astype(np.float16)
            grads.append(grad)
            grad_values.append(grad)
        elif grad_dtype == "bf16":
            bits = bf16_bits(grad)
            grads.append(llmk.Tensor.from_numpy(bits, dtype=llmk.DType.BF16))
            grad_values.append(bf16_values(bits))
        else:
            grads.append(grad)
            grad_values.append(grad)
    for step, grad in enumerate(grads, start=1):
        llmk.adamw_step(cpu, llmk.AdamWConfig(step=step, **ADAMW), param, grad, exp_avg,
                        exp_avg_sq)
    expected = adamw_reference(initial, grad_values, **ADAMW)
    for name, got, want in zip(("param", "exp_avg", "exp_avg_sq"),
                               (param, exp_avg, exp_avg_sq), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(storage[:, n:], normal(rows, 40)[:, n:])  # gaps untouched


def test_adamw_default_config_is_torchs_first_step(cpu):
    param, grad = normal(2, 16), normal(2, 16, seed=1)
    initial = param.copy()
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    llmk.adamw_step(cpu, None, param, grad, exp_avg, exp_avg_sq)
    expected = adamw_reference(initial, [grad])
    for got, want in zip((param, exp_avg, exp_avg_sq), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# --- against torch on CUDA ---------------------------------------------------------------------


@pytest.fixture
def torch(cuda):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def torch_view(torch, t):
    """An llmk view of a torch tensor, keeping it alive (torch's __cuda_array_interface__
    refuses bf16)."""
    dtypes = {torch.float32: llmk.DType.F32, torch.float16: llmk.DType.F16,
              torch.bfloat16: llmk.DType.BF16, torch.int32: llmk.DType.I32,
              torch.int64: llmk.DType.I64}
    return llmk.Tensor(t.data_ptr(), dtypes[t.dtype], tuple(t.shape), tuple(t.stride()),
                       keepalive=t)


def test_adamw_matches_torch_on_cuda(cuda, torch):
    generator = torch.Generator(device="cuda").manual_seed(0)
    param = torch.randn(64, 1000, device="cuda", generator=generator)
    reference = param.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([reference], lr=ADAMW["lr"],
                                  betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                                  weight_decay=ADAMW["weight_decay"], foreach=False, fused=False)
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    stream = torch.cuda.current_stream()
    for step in range(1, 6):
        grad = torch.randn(param.shape, device="cuda", generator=generator)
        reference.grad = grad.clone()
        optimizer.step()
        llmk.adamw_step(cuda, llmk.AdamWConfig(step=step, **ADAMW), param, grad, exp_avg,
                        exp_avg_sq, stream=stream.cuda_stream)
    stream.synchronize()
    state = optimizer.state[reference]
    torch.testing.assert_close(param, reference.detach(), rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(exp_avg, state["exp_avg"], rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(exp_avg_sq, state["exp_avg_sq"], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("dtype_name, rtol", [("float32", 1e-5), ("bfloat16", 2**-7)])
@pytest.mark.parametrize("with_cache", [False, True], ids=["computed", "cached"])
def test_rope_matches_rotate_half_on_cuda(cuda, torch, dtype_name, rtol, with_cache):
    dtype = getattr(torch, dtype_name)
    tokens, q_heads, kv_heads, head_dim, max_position = 7, 8, 2, 128, 4096
    generator = torch.Generator(device="cuda").manual_seed(1)
    qkv = torch.randn(tokens, (q_heads + 2 * kv_heads) * head_dim, device="cuda",
                      generator=generator).to(dtype)
    q = qkv[:, :q_heads * head_dim].unflatten(-1, (q_heads, head_dim))
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].unflatten(
        -1, (kv_heads, head_dim))
    positions = torch.randint(0, max_position, (tokens,), device="cuda", generator=generator)
    config = llmk.RopeConfig(theta=500000.0)
    expected_q, expected_k = (rope_reference(t.float().cpu().numpy(), positions.cpu().numpy(),
                                             config, head_dim) for t in (q, k))
    cache = None
    if with_cache:
        angles = torch.arange(max_position, dtype=torch.float64, device="cuda")[:, None] * \
            torch.from_numpy(inverse_frequencies(head_dim, config)).cuda()
        cache = torch_view(torch, torch.cat([angles.cos(), angles.sin()], -1).float())
    stream = torch.cuda.current_stream()
    llmk.rope(cuda, config, torch_view(torch, positions), torch_view(torch, q),
              torch_view(torch, k), cos_sin_cache=cache, stream=stream.cuda_stream)
    stream.synchronize()
    for got, want in ((q, expected_q), (k, expected_k)):
        np.testing.assert_allclose(got.float().cpu().numpy(), want, rtol=rtol, atol=1e-5)
