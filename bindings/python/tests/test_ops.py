"""The activation, RoPE, embedding, KV-cache, matmul, MLP, attention and AdamW ops through the Python API: enums and
configs, numpy arrays on the CPU context against float64 references, and (where torch with CUDA
is importable) torch tensors on the CUDA context against torch."""
import contextlib
import ctypes
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
    matmul = llmk.MatmulConfig(beta=0.5, allow_tf32=True, path=llmk.MatmulPath.GEMV)._struct()
    assert (matmul.alpha, matmul.beta, matmul.activation, matmul.allow_tf32, matmul.path) == (
        1.0, 0.5, llmk.Activation.IDENTITY, 1, 2)
    mlp = llmk.MlpConfig(path=llmk.MatmulPath.CUBLASLT, tune=True)._struct()
    assert (mlp.allow_tf32, mlp.path, mlp.tune) == (0, 1, 1)


def test_matmul_configs_take_the_librarys_defaults():
    matmul = llmk.MatmulConfig()._struct()
    assert (matmul.alpha, matmul.beta, matmul.activation, matmul.allow_tf32, matmul.path) == (
        1.0, 0.0, llmk.Activation.IDENTITY, 0, llmk.MatmulPath.AUTO)
    mlp = llmk.MlpConfig()._struct()
    assert (mlp.allow_tf32, mlp.path, mlp.tune) == (0, llmk.MatmulPath.AUTO, 0)


def test_attention_config_takes_the_librarys_defaults():
    config = llmk.AttentionConfig()._struct()
    assert config.struct_size == ctypes.sizeof(config)
    assert (config.scale, config.causal, config.window_left, config.window_right, config.softcap,
            config.dropout_p, config.dropout_offset, config.dropout_seed, config.kernel) == (
        0.0, 0, -1, -1, 0.0, 0.0, 0, 0, llmk.AttentionKernel.AUTO)


def test_attention_config_sets_only_what_is_given():
    config = llmk.AttentionConfig(causal=True, window_left=128, dropout_seed=2**53 - 1,
                                  dropout_offset=2**32 - 1)._struct()
    assert (config.scale, config.causal, config.window_left, config.window_right) == (0, 1, 128, -1)
    assert (config.dropout_seed, config.dropout_offset) == (2**53 - 1, 2**32 - 1)
    assert llmk.AttentionConfig(dropout_seed=2**64 - 1)._struct().dropout_seed == 2**64 - 1
    config = llmk.AttentionConfig(kernel=llmk.AttentionKernel.HOPPER, softcap=2.0)._struct()
    assert (config.kernel, config.softcap, config.causal, config.dropout_seed) == (2, 2.0, 0, 0)
    assert llmk.AttentionConfig(kernel=llmk.AttentionKernel.PORTABLE)._struct().kernel == 1


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


# --- matmul ------------------------------------------------------------------------------------


def activate(activation, x):
    return ACTIVATIONS[llmk.Activation(activation)](x)


def linear_reference(x, w, bias=None, activation=llmk.Activation.IDENTITY):
    """activation(x @ w.T + bias) in float64: nn.Linear, then the activation."""
    y = np.asarray(x, F64) @ np.asarray(w, F64).T
    return activate(activation, y if bias is None else y + np.asarray(bias, F64))


@pytest.mark.parametrize("activation", list(llmk.Activation), ids=lambda a: a.name)
def test_matmul_is_nn_linear_with_an_epilogue(cpu, activation):
    x, w, bias = normal(5, 24), normal(40, 24, seed=1), normal(40, seed=2)
    out = np.full((5, 40), np.nan, np.float32)
    config = llmk.MatmulConfig(activation=activation)
    # B = w.T: the [K, N] view of the [N, K] weight, column-major; nothing is copied.
    assert llmk.matmul(cpu, config, x, w.T, None, bias, out) is out
    np.testing.assert_allclose(out, linear_reference(x, w, bias, activation), rtol=1e-5,
                               atol=1e-5)


def test_matmul_layouts_and_leading_dimensions(cpu):
    m, k, n = 7, 19, 11
    a_storage, b_storage = normal(k, m + 3), normal(n, k + 5, seed=1)
    a = a_storage[:, :m].T        # column-major [m, k], leading dimension m + 3
    b = b_storage[:, :k].T        # column-major [k, n], leading dimension k + 5
    out_storage = np.full((m, n + 4), np.nan, np.float32)
    out = out_storage[:, :n]      # row-major, leading dimension n + 4
    llmk.matmul(cpu, None, a, b, None, None, out)
    np.testing.assert_allclose(out, a.astype(F64) @ b, rtol=1e-5, atol=1e-5)
    assert np.isnan(out_storage[:, n:]).all(), "the gaps between out's rows were written"
    # A column-major out: [m, n] with strides (1, m).
    out_t = np.full((n, m), np.nan, np.float32)
    llmk.matmul(cpu, None, a, b, None, None, out_t.T)
    np.testing.assert_allclose(out_t.T, a.astype(F64) @ b, rtol=1e-5, atol=1e-5)


def test_matmul_alpha_beta_in_place(cpu):
    a, b, c = normal(4, 9), normal(9, 6, seed=1), normal(4, 6, seed=2)
    expected = 0.5 * (a.astype(F64) @ b) - 1.0 * c
    config = llmk.MatmulConfig(alpha=0.5, beta=-1.0)
    llmk.matmul(cpu, config, a, b, c, None, c)  # out is exactly c
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_matmul_batched_with_a_shared_weight(cpu):
    batch, m, k, n = 3, 4, 8, 5
    a, w = normal(batch, m, k), normal(n, k, seed=1)
    out = np.empty((batch, m, n), np.float32)
    llmk.matmul(cpu, None, a, w.T, None, None, out)  # rank-2 b: one weight for every product
    np.testing.assert_allclose(out, a.astype(F64) @ w.T.astype(F64), rtol=1e-5, atol=1e-5)


def test_matmul_f16_and_bf16(cpu):
    x, w = normal(3, 64, dtype=np.float16), normal(16, 64, dtype=np.float16, seed=1)
    out = np.empty((3, 16), np.float16)
    llmk.matmul(cpu, llmk.MatmulConfig(activation=llmk.Activation.SILU), x, w.T, None, None, out)
    np.testing.assert_allclose(out, linear_reference(x, w, None, llmk.Activation.SILU),
                               rtol=2**-10, atol=1e-3)

    def bf16(bits):
        return llmk.Tensor.from_numpy(bits, dtype=llmk.DType.BF16)

    x_bits, w_bits = bf16_bits(normal(3, 64)), bf16_bits(normal(16, 64, seed=1))
    bias_bits = bf16_bits(normal(16, seed=2))
    out_bits = np.empty((3, 16), np.uint16)
    llmk.matmul(cpu, None, bf16(x_bits), bf16(w_bits.T), None, bf16(bias_bits), bf16(out_bits))
    expected = linear_reference(bf16_values(x_bits), bf16_values(w_bits), bf16_values(bias_bits))
    np.testing.assert_allclose(bf16_values(out_bits), expected, rtol=2**-7, atol=1e-2)


def test_matmul_path_for(cpu):
    x, w = normal(1, 64), normal(32, 64, seed=1)
    out = np.empty((1, 32), np.float32)
    paths = {path: llmk.matmul_path_for(cpu, llmk.MatmulConfig(path=path), x, w.T, None, None,
                                        out) for path in llmk.MatmulPath}
    assert paths[llmk.MatmulPath.CUBLASLT] is llmk.MatmulPath.CUBLASLT
    assert paths[llmk.MatmulPath.GEMV] is llmk.MatmulPath.GEMV
    assert paths[llmk.MatmulPath.AUTO] in (llmk.MatmulPath.CUBLASLT, llmk.MatmulPath.GEMV)
    # A row-major B is not the GEMV's layout: AUTO takes cuBLASLt.
    row_major_b = np.ascontiguousarray(w.T)
    assert llmk.matmul_path_for(cpu, None, x, row_major_b, None, None,
                                out) is llmk.MatmulPath.CUBLASLT
    # 64 rows are no decode: cuBLASLt.
    assert llmk.matmul_path_for(cpu, None, normal(64, 64), w.T, None, None,
                                np.empty((64, 32), np.float32)) is llmk.MatmulPath.CUBLASLT


def test_matmul_cache_stats_on_the_cpu(cpu):
    llmk.matmul(cpu, None, normal(2, 3), normal(3, 4), None, None, np.empty((2, 4), np.float32))
    stats = llmk.matmul_cache_stats(cpu)
    assert stats == (0, 0, 0) and stats.plans == 0 and isinstance(stats, llmk.MatmulCacheStats)


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", list(llmk.Activation), ids=lambda a: a.name)
def test_matmul_tune_on_the_cpu_is_matmul(cpu, activation, dtype):
    """Nothing to tune on a CPU context: out bit for bit as matmul's, and all zeros measured."""
    x, w = normal(5, 24, dtype=dtype), normal(40, 24, dtype=dtype, seed=1)
    bias, c = normal(40, dtype=dtype, seed=2), normal(5, 40, dtype=dtype, seed=3)
    config = llmk.MatmulConfig(alpha=0.5, beta=-1.0, activation=activation)
    expected = llmk.matmul(cpu, config, x, w.T, c, bias, np.full((5, 40), np.nan, dtype))
    out = np.full((5, 40), np.nan, dtype)
    tuning = llmk.matmul_tune(cpu, config, x, w.T, c, bias, out)
    np.testing.assert_array_equal(out, expected)
    assert isinstance(tuning, llmk.MatmulTuning) and tuning == (0, 0, 0.0, 0.0)
    assert tuning.candidates == 0 and tuning.chosen_us == 0.0
    # In place (out is exactly c), as matmul: c read once, not accumulated into.
    tuning = llmk.matmul_tune(cpu, config, x, w.T, c, bias, c)
    np.testing.assert_array_equal(c, expected)
    assert tuning == (0, 0, 0.0, 0.0)
    # Defaults (config None), no c or bias; the CPU context caches no plans.
    a, b = normal(3, 7, dtype=dtype), normal(7, 4, dtype=dtype, seed=1)
    out = np.empty((3, 4), dtype)
    assert llmk.matmul_tune(cpu, None, a, b, None, None, out) == (0, 0, 0.0, 0.0)
    np.testing.assert_array_equal(out, llmk.matmul(cpu, None, a, b, None, None,
                                                   np.empty_like(out)))
    assert llmk.matmul_cache_stats(cpu) == (0, 0, 0)


# --- ffn and gated_mlp -------------------------------------------------------------------------


def aligned_bytes(nbytes, alignment=64):
    """A numpy byte array of nbytes whose data is aligned (llmk wants 16 bytes for workspaces)."""
    storage = np.empty(nbytes + alignment, np.uint8)
    start = -storage.ctypes.data % alignment
    return storage[start:start + nbytes]


def ffn_reference(x, w1, b1, w2, b2, activation, round_to=None):
    """activation(x w1^T + b1) w2^T + b2 in float64, the intermediate rounded to `round_to`."""
    hidden = linear_reference(x, w1, b1, activation)
    if round_to is not None:
        hidden = hidden.astype(round_to).astype(F64)
    return linear_reference(hidden, w2, b2)


def gated_mlp_reference(x, w_gate, w_up, w_down, activation, round_to=None):
    gate, up = linear_reference(x, w_gate), linear_reference(x, w_up)
    if round_to is not None:
        gate, up = gate.astype(round_to).astype(F64), up.astype(round_to).astype(F64)
    hidden = activate(activation, gate) * up
    if round_to is not None:
        hidden = hidden.astype(round_to).astype(F64)
    return linear_reference(hidden, w_down)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_ffn(cpu, with_bias):
    tokens, d_model, d_ff = 5, 24, 64
    x = normal(tokens, d_model)
    w1, w2 = normal(d_ff, d_model, seed=1) / 4, normal(d_model, d_ff, seed=2) / 8
    b1, b2 = (normal(d_ff, seed=3), normal(d_model, seed=4)) if with_bias else (None, None)
    nbytes = llmk.ffn_workspace_size(cpu, x, w1)
    assert nbytes >= tokens * d_ff * 4
    out = np.full((tokens, d_model), np.nan, np.float32)
    assert llmk.ffn(cpu, None, x, w1, b1, w2, b2, llmk.Activation.GELU, aligned_bytes(nbytes),
                    out) is out
    np.testing.assert_allclose(out, ffn_reference(x, w1, b1, w2, b2, llmk.Activation.GELU),
                               rtol=1e-5, atol=1e-5)


def test_ffn_workspace_forms(cpu):
    """A DeviceBuffer, a numpy array, and a raw pointer as a U8 Tensor are one workspace."""
    x, w1, w2 = normal(3, 16), normal(32, 16, seed=1), normal(16, 32, seed=2)
    nbytes = llmk.ffn_workspace_size(cpu, x, w1)
    expected = ffn_reference(x, w1, None, w2, None, llmk.Activation.RELU)
    with llmk.DeviceBuffer(cpu, nbytes) as buffer:
        raw = aligned_bytes(nbytes)
        for workspace in (buffer, aligned_bytes(nbytes), aligned_bytes(nbytes).view(np.float32),
                          llmk.Tensor(raw.ctypes.data, llmk.DType.U8, (nbytes,))):
            out = np.full((3, 16), np.nan, np.float32)
            llmk.ffn(cpu, llmk.MlpConfig(), x, w1, None, w2, None, llmk.Activation.RELU,
                     workspace, out)
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", [llmk.Activation.SILU, llmk.Activation.GELU_TANH],
                         ids=lambda a: a.name)
@pytest.mark.parametrize("tokens", [1, 7])
def test_gated_mlp_on_a_fused_gate_up_weight(cpu, activation, tokens):
    d_model, d_ff = 32, 48
    x = normal(tokens, d_model)
    gate_up = normal(2 * d_ff, d_model, seed=1) / 4  # vLLM's fused [gate; up] weight
    w_gate, w_up = gate_up[:d_ff], gate_up[d_ff:]
    w_down = normal(d_model, d_ff, seed=2) / 8
    nbytes = llmk.gated_mlp_workspace_size(cpu, x, w_gate)
    out = np.full((tokens, d_model), np.nan, np.float32)
    assert llmk.gated_mlp(cpu, None, x, w_gate, w_up, w_down, activation, aligned_bytes(nbytes),
                          out) is out
    np.testing.assert_allclose(out, gated_mlp_reference(x, w_gate, w_up, w_down, activation),
                               rtol=1e-5, atol=1e-5)


def test_mlp_tune_on_the_cpu_changes_nothing(cpu):
    """There is nothing to tune on a CPU context: tune=True gives the untuned call's bits."""
    tokens, d_model, d_ff = 5, 32, 48
    x, w1, w2 = normal(tokens, d_model), normal(d_ff, d_model, seed=1), normal(d_model, d_ff, seed=2)
    w_up = normal(d_ff, d_model, seed=3)
    for run, workspace_size in (
            (lambda config, out: llmk.ffn(cpu, config, x, w1, None, w2, None,
                                          llmk.Activation.GELU, workspace, out),
             llmk.ffn_workspace_size),
            (lambda config, out: llmk.gated_mlp(cpu, config, x, w1, w_up, w2,
                                                llmk.Activation.SILU, workspace, out),
             llmk.gated_mlp_workspace_size)):
        workspace = aligned_bytes(workspace_size(cpu, x, w1))
        plain, tuned = (np.full((tokens, d_model), np.nan, np.float32) for _ in range(2))
        run(llmk.MlpConfig(), plain)
        run(llmk.MlpConfig(tune=True), tuned)
        np.testing.assert_array_equal(tuned, plain)


def test_gated_mlp_f16_rounds_the_intermediate(cpu):
    tokens, d_model, d_ff = 6, 64, 96
    x = normal(tokens, d_model, dtype=np.float16)
    w_gate = (normal(d_ff, d_model, seed=1) / 8).astype(np.float16)
    w_up = (normal(d_ff, d_model, seed=2) / 8).astype(np.float16)
    w_down = (normal(d_model, d_ff, seed=3) / 8).astype(np.float16)
    nbytes = llmk.gated_mlp_workspace_size(cpu, x, w_gate)
    out = np.full((tokens, d_model), np.nan, np.float16)
    llmk.gated_mlp(cpu, llmk.MlpConfig(path=llmk.MatmulPath.CUBLASLT), x, w_gate, w_up, w_down,
                   llmk.Activation.SILU, aligned_bytes(nbytes), out)
    expected = gated_mlp_reference(x, w_gate, w_up, w_down, llmk.Activation.SILU, np.float16)
    np.testing.assert_allclose(out, expected, rtol=2**-9, atol=2e-3)


# --- attention ---------------------------------------------------------------------------------


def aligned_empty(shape, dtype, alignment=64):
    """An uninitialized C-order array whose data starts on `alignment` bytes (attention wants 16)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    storage = np.empty(nbytes + alignment, np.uint8)
    start = -storage.ctypes.data % alignment
    return storage[start:start + nbytes].view(dtype).reshape(shape)


def aligned_normal(*shape, dtype=np.float16, seed=0, scale=1.0):
    out = aligned_empty(shape, dtype)
    out[...] = scale * normal(*shape, seed=seed)
    return out


def attention_reference(q, k, v, scale=None, causal=False, window_left=-1, window_right=-1,
                        softcap=0.0):
    """llmk.h's attention of one sequence in float64: q [q_len, H, D], k and v [kv_len, KH, D];
    returns out [q_len, H, D] and lse [H, q_len] (-inf, with out 0, where no key is visible)."""
    q, k, v = (np.asarray(t, F64) for t in (q, k, v))
    q_len, heads, head_dim = q.shape
    kv_len, kv_heads, _ = k.shape
    scale = 1 / math.sqrt(head_dim) if scale is None else scale
    if causal:
        window_right = 0
    out, lse = np.zeros(q.shape), np.full((heads, q_len), -np.inf)
    position = np.arange(q_len)[:, None] + kv_len - q_len
    key = np.arange(kv_len)[None, :]
    visible = np.ones((q_len, kv_len), bool)
    if window_right >= 0:
        visible &= key <= position + window_right
    if window_left >= 0:
        visible &= key >= position - window_left
    for h in range(heads):
        kh = h // (heads // kv_heads)
        scores = scale * q[:, h] @ k[:, kh].T
        if softcap > 0:
            scores = softcap * np.tanh(scores / softcap)
        scores = np.where(visible, scores, -np.inf)
        for i in range(q_len):
            if not visible[i].any():
                continue
            top = scores[i].max()
            weights = np.exp(scores[i] - top)
            lse[h, i] = top + math.log(weights.sum())
            out[i, h] = weights / weights.sum() @ v[:, kh]
    return out, lse


# f16 outputs: twice the rounding of the result (as the vectors' rule), plus a small floor.
ATTENTION_RTOL, ATTENTION_ATOL = 2.0 ** -10, 1e-4


@pytest.mark.parametrize("options", [
    {}, {"causal": True}, {"window_left": 2, "window_right": 1}, {"softcap": 2.0, "scale": 0.3},
], ids=["full", "causal", "window", "softcap"])
def test_attention_matches_a_float64_reference(cpu, options):
    batch, q_len, kv_len, heads, kv_heads, head_dim = 2, 5, 7, 4, 2, 64
    q = aligned_normal(batch, q_len, heads, head_dim, seed=1)
    k = aligned_normal(batch, kv_len, kv_heads, head_dim, seed=2)
    v = aligned_normal(batch, kv_len, kv_heads, head_dim, seed=3)
    out = aligned_empty(q.shape, np.float16)
    lse = np.full((batch, heads, q_len), np.nan, np.float32)
    assert llmk.attention(cpu, llmk.AttentionConfig(**options), q, k, v, out, lse) is out
    for b in range(batch):
        want, want_lse = attention_reference(q[b], k[b], v[b], **options)
        np.testing.assert_allclose(out[b], want, rtol=ATTENTION_RTOL, atol=ATTENTION_ATOL)
        np.testing.assert_allclose(lse[b], want_lse, rtol=1e-5)


@pytest.mark.parametrize("options", [{}, {"softcap": 2.0}, {"dropout_p": 0.25, "dropout_seed": 5}],
                         ids=["plain", "softcap", "dropout"])
@pytest.mark.parametrize("head_dim", [64, 96])
def test_attention_kernel_is_ignored_on_the_cpu(cpu, options, head_dim):
    """Every AttentionKernel, HOPPER included where a GPU would refuse it (head_dim 96, soft-cap,
    dropout), is accepted on a CPU context and gives AUTO's result bit for bit."""
    q = aligned_normal(1, 5, 2, head_dim, seed=1)
    k, v = (aligned_normal(1, 7, 1, head_dim, seed=seed) for seed in (2, 3))

    def run(kernel):
        out = aligned_empty(q.shape, np.float16)
        lse = np.full((1, 2, 5), np.nan, np.float32)
        llmk.attention(cpu, llmk.AttentionConfig(causal=True, kernel=kernel, **options), q, k, v,
                       out, lse)
        return out, lse

    auto_out, auto_lse = run(llmk.AttentionKernel.AUTO)
    assert not np.isnan(auto_out).any()
    for kernel in (llmk.AttentionKernel.PORTABLE, llmk.AttentionKernel.HOPPER):
        out, lse = run(kernel)
        np.testing.assert_array_equal(out, auto_out)
        np.testing.assert_array_equal(lse, auto_lse)


def test_attention_on_a_fused_qkv_buffer_in_bf16(cpu):
    """q, k and v as head slices of one [batch, tokens, q_heads + 2 kv_heads, head_dim] buffer of
    bf16 bits, and no lse: views, no copies."""
    batch, tokens, heads, kv_heads, head_dim = 1, 6, 2, 1, 128
    values = normal(batch, tokens, heads + 2 * kv_heads, head_dim, seed=4)
    qkv = aligned_empty(values.shape, np.uint16)
    qkv[...] = bf16_bits(values)
    exact = bf16_values(qkv).astype(F64)

    def view(first, count):
        return llmk.Tensor.from_numpy(qkv[:, :, first:first + count], dtype=llmk.DType.BF16)

    out = aligned_empty((batch, tokens, heads, head_dim), np.uint16)
    llmk.attention(cpu, llmk.AttentionConfig(causal=True), view(0, heads),
                   view(heads, kv_heads), view(heads + kv_heads, kv_heads),
                   llmk.Tensor.from_numpy(out, dtype=llmk.DType.BF16))
    want, _ = attention_reference(exact[0, :, :heads], exact[0, :, heads:heads + kv_heads],
                                  exact[0, :, heads + kv_heads:], causal=True)
    np.testing.assert_allclose(bf16_values(out[0]), want, rtol=2.0 ** -7, atol=1e-4)


def test_causal_queries_without_keys_get_zero_and_minus_infinity(cpu):
    # Bottom-right alignment: with 4 queries and 2 keys, queries 0 and 1 see no key.
    q, k, v = (aligned_normal(1, n, 1, 64, seed=seed) for n, seed in ((4, 5), (2, 6), (2, 7)))
    out = aligned_empty(q.shape, np.float16)
    lse = np.zeros((1, 1, 4), np.float32)
    llmk.attention(cpu, llmk.AttentionConfig(causal=True), q, k, v, out, lse)
    assert (out[0, :2] == 0).all()
    assert (lse[0, 0, :2] == -np.inf).all() and np.isfinite(lse[0, 0, 2:]).all()
    want, want_lse = attention_reference(q[0], k[0], v[0], causal=True)
    np.testing.assert_allclose(out[0], want, rtol=ATTENTION_RTOL, atol=ATTENTION_ATOL)
    np.testing.assert_allclose(lse[0], want_lse, rtol=1e-5)


def test_attention_varlen_matches_each_sequence_alone(cpu):
    """Three packed sequences, the second with no keys; lse in flash-attention's [heads, total_q]
    layout, here a transposed view."""
    q_lens, kv_lens, heads, kv_heads, head_dim = (3, 2, 4), (5, 0, 4), 2, 1, 96
    cu_q = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(kv_lens)]).astype(np.int32)
    q = aligned_normal(cu_q[-1], heads, head_dim, seed=8)
    k = aligned_normal(cu_k[-1], kv_heads, head_dim, seed=9)
    v = aligned_normal(cu_k[-1], kv_heads, head_dim, seed=10)
    out = aligned_empty(q.shape, np.float16)
    lse_storage = np.full((cu_q[-1], heads), np.nan, np.float32)
    config = llmk.AttentionConfig(causal=True)
    assert llmk.attention_varlen(cpu, config, q, k, v, cu_q, cu_k, max(q_lens), out,
                                 lse_storage.T) is out
    lse = lse_storage.T
    for s in range(len(q_lens)):
        rows, keys = slice(cu_q[s], cu_q[s + 1]), slice(cu_k[s], cu_k[s + 1])
        want, want_lse = attention_reference(q[rows], k[keys], v[keys], causal=True)
        np.testing.assert_allclose(out[rows], want, rtol=ATTENTION_RTOL, atol=ATTENTION_ATOL)
        np.testing.assert_allclose(lse[:, rows], want_lse, rtol=1e-5)
    assert (out[cu_q[1]:cu_q[2]] == 0).all() and (lse[:, cu_q[1]:cu_q[2]] == -np.inf).all()


def test_attention_dropout_is_a_function_of_seed_and_offset(cpu):
    q, k, v = (aligned_normal(1, 8, 2, 64, seed=seed) for seed in (11, 12, 13))
    lse_without = np.zeros((1, 2, 8), np.float32)
    without = llmk.attention(cpu, None, q, k, v, aligned_empty(q.shape, np.float16), lse_without)

    def run(**options):
        lse = np.zeros((1, 2, 8), np.float32)
        out = llmk.attention(cpu, llmk.AttentionConfig(dropout_p=0.5, **options), q, k, v,
                             aligned_empty(q.shape, np.float16), lse)
        np.testing.assert_array_equal(lse, lse_without)  # lse is that of the scores
        return out

    first = run(dropout_seed=2**40 + 3, dropout_offset=1)
    np.testing.assert_array_equal(first, run(dropout_seed=2**40 + 3, dropout_offset=1))
    assert not np.array_equal(first, run(dropout_seed=2**40 + 3, dropout_offset=2))
    assert not np.array_equal(first, run(dropout_seed=4, dropout_offset=1))
    assert not np.array_equal(first, without)


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


# --- matmul and the MLP blocks against torch on CUDA -------------------------------------------

# The floor of the error rule below, per dtype: a few ulps of the O(1) outputs these tests make.
ERROR_FLOOR = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}


def assert_as_close_as_torch(torch, got, torch_result, reference, dtype_name, what):
    """The flash-attention rule: llmk's largest error against the float64 reference is at most
    about twice torch's, doing the same computation in the same precision (plus a small floor)."""
    llmk_error = (got.double() - reference).abs().max().item()
    torch_error = (torch_result.double() - reference).abs().max().item()
    assert llmk_error <= 2 * torch_error + ERROR_FLOOR[dtype_name], (
        f"{what}: llmk's error {llmk_error:.3g}, torch's {torch_error:.3g}")


TORCH_ACTIVATIONS = {
    llmk.Activation.IDENTITY: lambda F, x: x,
    llmk.Activation.GELU: lambda F, x: F.gelu(x),
    llmk.Activation.GELU_TANH: lambda F, x: F.gelu(x, approximate="tanh"),
    llmk.Activation.SILU: lambda F, x: F.silu(x),
    llmk.Activation.RELU: lambda F, x: F.relu(x),
}


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("activation", [llmk.Activation.IDENTITY, llmk.Activation.GELU_TANH,
                                        llmk.Activation.GELU], ids=lambda a: a.name)
@pytest.mark.parametrize("m", [1, 8, 130])
def test_matmul_matches_f_linear_on_cuda(cuda, torch, dtype_name, activation, m):
    F = torch.nn.functional
    dtype = getattr(torch, dtype_name)
    k, n = 512, 384
    generator = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(m, k, device="cuda", generator=generator).to(dtype)
    w = (torch.randn(n, k, device="cuda", generator=generator) / k ** 0.5).to(dtype)
    bias = torch.randn(n, device="cuda", generator=generator).to(dtype)
    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    stream = torch.cuda.current_stream()
    # nn.Linear's layout: B is w.t(), the column-major [k, n] view of the weight.
    llmk.matmul(cuda, llmk.MatmulConfig(activation=activation), torch_view(torch, x),
                torch_view(torch, w.t()), None, torch_view(torch, bias), torch_view(torch, out),
                stream=stream.cuda_stream)
    act = TORCH_ACTIVATIONS[activation]
    expected = act(F, F.linear(x, w, bias))
    reference = act(F, F.linear(x.double(), w.double(), bias.double()))
    stream.synchronize()
    assert_as_close_as_torch(torch, out, expected, reference, dtype_name, "F.linear")


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_matmul_matches_torch_matmul_layouts_on_cuda(cuda, torch, dtype_name):
    dtype = getattr(torch, dtype_name)
    batch, m, k, n = 3, 33, 96, 80
    generator = torch.Generator(device="cuda").manual_seed(3)
    a = torch.randn(batch, m, k, device="cuda", generator=generator).to(dtype)
    b = (torch.randn(k, n, device="cuda", generator=generator) / k ** 0.5).to(dtype)  # row-major
    c = torch.randn(batch, m, n, device="cuda", generator=generator).to(dtype)
    stream = torch.cuda.current_stream()
    # A batch over a shared row-major B, with beta * C added in place.
    expected = 0.5 * torch.matmul(a, b) + c
    reference = 0.5 * torch.matmul(a.double(), b.double()) + c.double()
    llmk.matmul(cuda, llmk.MatmulConfig(alpha=0.5, beta=1.0), torch_view(torch, a),
                torch_view(torch, b), torch_view(torch, c), None, torch_view(torch, c),
                stream=stream.cuda_stream)
    stream.synchronize()
    assert_as_close_as_torch(torch, c, expected, reference, dtype_name, "batched, in place")
    # Column-major A (a transposed view) into a column-major out (the transpose of a buffer).
    a_t = torch.randn(k, m, device="cuda", generator=generator).to(dtype)
    out_t = torch.full((n, m), float("nan"), dtype=dtype, device="cuda")
    llmk.matmul(cuda, None, torch_view(torch, a_t.t()), torch_view(torch, b), None, None,
                torch_view(torch, out_t.t()), stream=stream.cuda_stream)
    stream.synchronize()
    assert_as_close_as_torch(torch, out_t.t(), torch.matmul(a_t.t(), b),
                             torch.matmul(a_t.t().double(), b.double()), dtype_name,
                             "column-major")


def test_matmul_paths_agree_on_cuda(cuda, torch):
    """Decode-sized: the GEMV and cuBLASLt, forced, and the path AUTO reports."""
    generator = torch.Generator(device="cuda").manual_seed(4)
    x = torch.randn(4, 1024, device="cuda", generator=generator).half()
    w = (torch.randn(768, 1024, device="cuda", generator=generator) / 32).half()
    reference = torch.nn.functional.linear(x.double(), w.double())
    expected = torch.nn.functional.linear(x, w)
    stream = torch.cuda.current_stream()
    views = (torch_view(torch, x), torch_view(torch, w.t()), None, None)
    for path in llmk.MatmulPath:
        out = torch.full((4, 768), float("nan"), dtype=torch.float16, device="cuda")
        config = llmk.MatmulConfig(path=path)
        chosen = llmk.matmul_path_for(cuda, config, *views, torch_view(torch, out))
        assert chosen in (llmk.MatmulPath.CUBLASLT, llmk.MatmulPath.GEMV)
        if path != llmk.MatmulPath.AUTO:
            assert chosen is path
        llmk.matmul(cuda, config, *views, torch_view(torch, out), stream=stream.cuda_stream)
        stream.synchronize()
        assert_as_close_as_torch(torch, out, expected, reference, "float16", path.name)


def test_matmul_plans_are_cached_on_cuda(cuda, torch):
    assert llmk.matmul_cache_stats(cuda) == (0, 0, 0)
    config = llmk.MatmulConfig(path=llmk.MatmulPath.CUBLASLT)
    stream = torch.cuda.current_stream()

    def run(m):
        a = torch.randn(m, 64, device="cuda", dtype=torch.float16)
        b = torch.randn(64, 32, device="cuda", dtype=torch.float16)
        d = torch.empty(m, 32, device="cuda", dtype=torch.float16)
        llmk.matmul(cuda, config, torch_view(torch, a), torch_view(torch, b), None, None,
                    torch_view(torch, d), stream=stream.cuda_stream)
        stream.synchronize()

    run(48)
    assert llmk.matmul_cache_stats(cuda) == (1, 1, 1)
    run(48)  # the same shape again: no new plan, no heuristic query, no workspace
    assert llmk.matmul_cache_stats(cuda) == (1, 1, 1)
    run(96)  # a new shape: one more plan, on the same stream's workspace
    stats = llmk.matmul_cache_stats(cuda)
    assert (stats.plans, stats.heuristic_queries, stats.workspaces) == (2, 2, 1)


# --- matmul_tune on CUDA, against the CPU context ----------------------------------------------
# DeviceBuffers and numpy only: these run wherever there is a GPU, with torch or without.

TUNE_ACTIVATIONS = [llmk.Activation.GELU_TANH,  # fused into cuBLASLt's epilogue
                    llmk.Activation.GELU]       # one more pass over out after the tuned GEMM


def f16_on_device(ctx, buffers, array, shape=None, strides=None):
    """A copy of the f16 `array` in a DeviceBuffer of ctx, closed with `buffers` (an ExitStack):
    the buffer, and its view of `shape` and `strides` (by default the array's, C order)."""
    buffer = buffers.enter_context(llmk.DeviceBuffer(ctx, array.nbytes))
    buffer.copy_from_host(array)
    return buffer, buffer.tensor(llmk.DType.F16, array.shape if shape is None else shape, strides)


def linear_f16(ctx, buffers, m, k, n):
    """nn.Linear in f16, with O(1) outputs: x [m, k], b = w^T (the column-major [k, n] view of the
    weight w [n, k]) and bias [n], as numpy arrays and as views of their copies on ctx's device."""
    x = normal(m, k, dtype=np.float16, seed=20)
    w = (normal(n, k, seed=21) / k ** 0.5).astype(np.float16)
    bias = normal(n, dtype=np.float16, seed=22)
    views = (f16_on_device(ctx, buffers, x)[1], f16_on_device(ctx, buffers, w, (k, n), (1, k))[1],
             f16_on_device(ctx, buffers, bias)[1])
    return (x, w.T, bias), views


def assert_as_close_as_the_cpu(got, cpu_result, reference, what):
    """assert_as_close_as_torch's rule for f16, with the CPU context's result (each element
    rounded once from a float64 sum) in place of torch's."""
    error = np.abs(got.astype(F64) - reference).max()
    cpu_error = np.abs(cpu_result.astype(F64) - reference).max()
    assert error <= 2 * cpu_error + ERROR_FLOOR["float16"], (
        f"{what}: llmk's error on CUDA {error:.3g}, on the CPU {cpu_error:.3g}")


@pytest.mark.parametrize("activation", TUNE_ACTIVATIONS, ids=lambda a: a.name)
def test_matmul_tune_on_cuda(cpu, cuda, activation):
    m, k, n = 256, 512, 768
    config = llmk.MatmulConfig(activation=activation)
    with contextlib.ExitStack() as buffers:
        (x, b, bias), (x_d, b_d, bias_d) = linear_f16(cuda, buffers, m, k, n)
        expected = llmk.matmul(cpu, config, x, b, None, bias, np.empty((m, n), np.float16))
        reference = activate(activation, x.astype(F64) @ b.astype(F64) + bias)
        out_buffer, out = f16_on_device(cuda, buffers, np.full((m, n), np.nan, np.float16))
        assert llmk.matmul_path_for(cuda, config, x_d, b_d, None, bias_d,
                                    out) is llmk.MatmulPath.CUBLASLT

        tuning = llmk.matmul_tune(cuda, config, x_d, b_d, None, bias_d, out)
        assert isinstance(tuning, llmk.MatmulTuning)
        assert_as_close_as_the_cpu(out_buffer.copy_to_host(np.empty((m, n), np.float16)),
                                   expected, reference, f"tuned, {activation.name}")
        assert 1 <= tuning.candidates <= 8 and 0 <= tuning.chosen < 8, tuning
        # The heuristic's first stays unless another is faster.
        assert 0 < tuning.chosen_us <= tuning.first_us, tuning
        if tuning.chosen == 0:
            assert tuning.chosen_us == tuning.first_us, tuning
        tuned = llmk.matmul_cache_stats(cuda)
        assert tuned.plans == 1, tuned

        # matmul with the same arguments runs the pinned algorithm: no new plan or query.
        out_buffer.copy_from_host(np.full((m, n), np.nan, np.float16))
        llmk.matmul(cuda, config, x_d, b_d, None, bias_d, out)
        assert llmk.matmul_cache_stats(cuda) == tuned
        assert_as_close_as_the_cpu(out_buffer.copy_to_host(np.empty((m, n), np.float16)),
                                   expected, reference, f"matmul after tuning, {activation.name}")


@pytest.mark.parametrize("activation", TUNE_ACTIVATIONS, ids=lambda a: a.name)
def test_matmul_tune_in_place_on_cuda(cpu, cuda, activation):
    """out is c, with beta 1: the timed calls must not accumulate into out, which ends up as
    one matmul's."""
    m, k, n = 256, 512, 768
    config = llmk.MatmulConfig(beta=1.0, activation=activation)
    with contextlib.ExitStack() as buffers:
        (x, b, bias), (x_d, b_d, bias_d) = linear_f16(cuda, buffers, m, k, n)
        c = normal(m, n, dtype=np.float16, seed=23)
        expected = llmk.matmul(cpu, config, x, b, c, bias, np.empty((m, n), np.float16))
        reference = activate(activation, x.astype(F64) @ b.astype(F64) + c + bias)
        c_buffer, c_d = f16_on_device(cuda, buffers, c)
        tuning = llmk.matmul_tune(cuda, config, x_d, b_d, c_d, bias_d, c_d)
        assert tuning.candidates >= 1 and 0 < tuning.chosen_us <= tuning.first_us, tuning
        assert_as_close_as_the_cpu(c_buffer.copy_to_host(np.empty((m, n), np.float16)),
                                   expected, reference, f"tuned in place, {activation.name}")


def test_matmul_tune_on_the_gemv_on_cuda(cpu, cuda):
    """Where the call takes llmk's GEMV there is nothing to tune: it is matmul, and reports 0."""
    m, k, n = 4, 512, 768
    config = llmk.MatmulConfig(activation=llmk.Activation.GELU_TANH, path=llmk.MatmulPath.GEMV)
    with contextlib.ExitStack() as buffers:
        (x, b, bias), (x_d, b_d, bias_d) = linear_f16(cuda, buffers, m, k, n)
        expected = llmk.matmul(cpu, config, x, b, None, bias, np.empty((m, n), np.float16))
        reference = activate(config.activation, x.astype(F64) @ b.astype(F64) + bias)
        out_buffer, out = f16_on_device(cuda, buffers, np.full((m, n), np.nan, np.float16))
        assert llmk.matmul_path_for(cuda, config, x_d, b_d, None, bias_d,
                                    out) is llmk.MatmulPath.GEMV
        assert llmk.matmul_tune(cuda, config, x_d, b_d, None, bias_d, out) == (0, 0, 0.0, 0.0)
        assert llmk.matmul_cache_stats(cuda) == (0, 0, 0)
        assert_as_close_as_the_cpu(out_buffer.copy_to_host(np.empty((m, n), np.float16)),
                                   expected, reference, "GEMV")


@pytest.mark.parametrize("gated", [False, True], ids=["ffn", "gated_mlp"])
def test_mlp_tune_on_cuda(cpu, cuda, gated):
    """tune=True pins each cuBLASLt GEMM of the block: the tuned call, on a fresh context, makes
    the plans (how many depends on which GEMMs share a key: gate and up may, or be one GEMM where
    their buffers happen to be adjacent), and untuned calls afterwards add no plan and no query,
    and give the tuned call's bits."""
    tokens, d_model, d_ff = 96, 256, 384
    activation = llmk.Activation.SILU if gated else llmk.Activation.GELU_TANH
    x = normal(tokens, d_model, dtype=np.float16, seed=30)
    w_in, w_up = ((normal(d_ff, d_model, seed=s) / d_model ** 0.5).astype(np.float16)
                  for s in (31, 32))
    w_out = (normal(d_model, d_ff, seed=33) / d_ff ** 0.5).astype(np.float16)
    with contextlib.ExitStack() as buffers:
        x_d, w_in_d, w_up_d, w_out_d = (f16_on_device(cuda, buffers, a)[1]
                                        for a in (x, w_in, w_up, w_out))
        out_buffer, out = f16_on_device(cuda, buffers,
                                        np.full((tokens, d_model), np.nan, np.float16))
        workspace_size = llmk.gated_mlp_workspace_size if gated else llmk.ffn_workspace_size
        workspace = buffers.enter_context(
            llmk.DeviceBuffer(cuda, workspace_size(cuda, x_d, w_in_d)))

        def run(ctx, config, *tensors):
            if gated:
                return llmk.gated_mlp(ctx, config, *tensors[:4], activation, *tensors[4:])
            return llmk.ffn(ctx, config, tensors[0], tensors[1], None, tensors[3], None,
                            activation, *tensors[4:])

        def result():
            return out_buffer.copy_to_host(np.empty((tokens, d_model), np.float16))

        run(cuda, llmk.MlpConfig(tune=True), x_d, w_in_d, w_up_d, w_out_d, workspace, out)
        tuned, stats = result(), llmk.matmul_cache_stats(cuda)
        assert 1 <= stats.plans <= stats.heuristic_queries, stats
        for _ in range(2):
            out_buffer.copy_from_host(np.full((tokens, d_model), np.nan, np.float16))
            run(cuda, llmk.MlpConfig(), x_d, w_in_d, w_up_d, w_out_d, workspace, out)
            np.testing.assert_array_equal(result(), tuned)
        assert llmk.matmul_cache_stats(cuda) == stats

        cpu_workspace = aligned_bytes(workspace_size(cpu, x, w_in))
        expected = run(cpu, None, x, w_in, w_up, w_out, cpu_workspace,
                       np.empty((tokens, d_model), np.float16))
        reference = (gated_mlp_reference(x, w_in, w_up, w_out, activation, np.float16) if gated
                     else ffn_reference(x, w_in, None, w_out, None, activation, np.float16))
        assert_as_close_as_the_cpu(tuned, expected, reference, "tuned block")


def torch_workspace(torch, ctx, nbytes):
    """A workspace of nbytes from torch's allocator (256-byte aligned), as a U8 view."""
    storage = torch.empty(max(nbytes, 1), dtype=torch.uint8, device="cuda")
    return llmk.Tensor(storage.data_ptr(), llmk.DType.U8, (nbytes,), keepalive=storage)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("tokens", [1, 37])
@pytest.mark.parametrize("activation", [llmk.Activation.GELU, llmk.Activation.GELU_TANH],
                         ids=lambda a: a.name)
def test_ffn_matches_torch_eager_on_cuda(cuda, torch, dtype_name, tokens, activation):
    F = torch.nn.functional
    dtype = getattr(torch, dtype_name)
    d_model, d_ff = 256, 1024
    generator = torch.Generator(device="cuda").manual_seed(5)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, device="cuda", generator=generator)).to(dtype)

    x = randn(tokens, d_model)
    w1, b1 = randn(d_ff, d_model, scale=d_model ** -0.5), randn(d_ff, scale=0.5)
    w2, b2 = randn(d_model, d_ff, scale=d_ff ** -0.5), randn(d_model, scale=0.5)
    out = torch.full((tokens, d_model), float("nan"), dtype=dtype, device="cuda")
    views = [torch_view(torch, t) for t in (x, w1, b1, w2, b2)]
    # The workspace straight from torch, through __cuda_array_interface__ (uint8: U8).
    workspace = torch.empty(llmk.ffn_workspace_size(cuda, views[0], views[1]),
                            dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream()
    llmk.ffn(cuda, None, *views, activation, workspace, torch_view(torch, out),
             stream=stream.cuda_stream)
    act = TORCH_ACTIVATIONS[activation]
    expected = F.linear(act(F, F.linear(x, w1, b1)), w2, b2)
    reference = F.linear(act(F, F.linear(x.double(), w1.double(), b1.double())), w2.double(),
                         b2.double())
    stream.synchronize()
    assert_as_close_as_torch(torch, out, expected, reference, dtype_name, "ffn")


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("tokens", [1, 5, 64])
@pytest.mark.parametrize("fused", [True, False], ids=["fused_gate_up", "separate"])
def test_gated_mlp_matches_torch_eager_on_cuda(cuda, torch, dtype_name, tokens, fused):
    F = torch.nn.functional
    dtype = getattr(torch, dtype_name)
    d_model, d_ff = 256, 688
    generator = torch.Generator(device="cuda").manual_seed(6)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, device="cuda", generator=generator)).to(dtype)

    x = randn(tokens, d_model)
    if fused:
        gate_up = randn(2 * d_ff, d_model, scale=d_model ** -0.5)  # vLLM's [gate; up] weight
        w_gate, w_up = gate_up[:d_ff], gate_up[d_ff:]
    else:
        w_gate, w_up = (randn(d_ff, d_model, scale=d_model ** -0.5) for _ in range(2))
    w_down = randn(d_model, d_ff, scale=d_ff ** -0.5)
    out = torch.full((tokens, d_model), float("nan"), dtype=dtype, device="cuda")
    views = [torch_view(torch, t) for t in (x, w_gate, w_up, w_down)]
    workspace = torch_workspace(torch, cuda,
                                llmk.gated_mlp_workspace_size(cuda, views[0], views[1]))
    stream = torch.cuda.current_stream()
    llmk.gated_mlp(cuda, None, *views, llmk.Activation.SILU, workspace, torch_view(torch, out),
                   stream=stream.cuda_stream)
    expected = F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)
    xd = x.double()
    reference = F.linear(F.silu(F.linear(xd, w_gate.double())) * F.linear(xd, w_up.double()),
                         w_down.double())
    stream.synchronize()
    assert_as_close_as_torch(torch, out, expected, reference, dtype_name, "gated_mlp")


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_sdpa_on_cuda(cuda, torch, dtype_name, causal):
    """llmk's attention against torch's scaled_dot_product_attention (q_len == kv_len, where
    torch's top-left causal mask is llmk's bottom-right one), padded and packed."""
    F = torch.nn.functional
    dtype = getattr(torch, dtype_name)
    batch, tokens, heads, kv_heads, head_dim = 2, 77, 8, 2, 128
    generator = torch.Generator(device="cuda").manual_seed(7)
    q, k, v = (torch.randn(batch, tokens, n, head_dim, device="cuda", generator=generator)
               .to(dtype) for n in (heads, kv_heads, kv_heads))

    def sdpa(q, k, v):  # BSHD in, BSHD out; K and V repeated per query head
        group = heads // kv_heads
        q, k, v = (t.transpose(1, 2) for t in (q, k.repeat_interleave(group, 2),
                                               v.repeat_interleave(group, 2)))
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2)

    expected = sdpa(q, k, v)
    reference = sdpa(q.double(), k.double(), v.double())
    stream = torch.cuda.current_stream()
    config = llmk.AttentionConfig(causal=causal)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((batch, heads, tokens), float("nan"), device="cuda")
    llmk.attention(cuda, config, torch_view(torch, q), torch_view(torch, k), torch_view(torch, v),
                   torch_view(torch, out), torch_view(torch, lse), stream=stream.cuda_stream)
    # The same batch packed: [batch * tokens, heads, head_dim] views of the same memory.
    packed = torch.full_like(q, float("nan"))
    cu_seqlens = torch.arange(0, (batch + 1) * tokens, tokens, dtype=torch.int32, device="cuda")
    flat = [torch_view(torch, t.reshape(batch * tokens, -1, head_dim)) for t in (q, k, v, packed)]
    llmk.attention_varlen(cuda, config, *flat[:3], torch_view(torch, cu_seqlens),
                          torch_view(torch, cu_seqlens), tokens, flat[3],
                          stream=stream.cuda_stream)
    stream.synchronize()
    assert_as_close_as_torch(torch, out, expected, reference, dtype_name, "attention")
    assert_as_close_as_torch(torch, packed, expected, reference, dtype_name, "attention_varlen")
    scores = torch.einsum("bqhd,bkhd->bhqk", q.double(),
                          k.double().repeat_interleave(heads // kv_heads, 2)) / head_dim ** 0.5
    if causal:
        scores = scores.masked_fill(torch.ones(tokens, tokens, dtype=torch.bool,
                                               device="cuda").triu(1), float("-inf"))
    torch.testing.assert_close(lse.double(), torch.logsumexp(scores, -1), rtol=1e-5, atol=1e-5)


def test_attention_kernels_on_cuda(cuda, torch):
    """PORTABLE and AUTO against sdpa; HOPPER too where this GPU and library can run it (an sm_90
    GPU, a library built for sm_90a), else Status.UNSUPPORTED naming the kernel. HOPPER refuses
    a soft-cap and a head_dim of 96 on every GPU."""
    F = torch.nn.functional
    batch, tokens, heads, head_dim = 2, 77, 4, 128
    generator = torch.Generator(device="cuda").manual_seed(8)
    q, k, v = (torch.randn(batch, tokens, heads, head_dim, device="cuda", generator=generator)
               .half() for _ in range(3))

    def sdpa(q, k, v):
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)

    expected, reference = sdpa(q, k, v), sdpa(q.double(), k.double(), v.double())
    stream = torch.cuda.current_stream()

    def run(kernel, q=q, k=k, v=v, **options):
        out = torch.full_like(q, float("nan"))
        llmk.attention(cuda, llmk.AttentionConfig(causal=True, kernel=kernel, **options),
                       torch_view(torch, q), torch_view(torch, k), torch_view(torch, v),
                       torch_view(torch, out), stream=stream.cuda_stream)
        stream.synchronize()
        return out

    for kernel in llmk.AttentionKernel:
        try:
            out = run(kernel)
        except llmk.LlmkError as error:
            assert kernel is llmk.AttentionKernel.HOPPER, error
            assert error.status is llmk.Status.UNSUPPORTED and "kernel" in error.message, error
            continue
        assert_as_close_as_torch(torch, out, expected, reference, "float16", kernel.name)
    hopper = llmk.AttentionKernel.HOPPER
    for call in (lambda: run(hopper, softcap=30.0),
                 lambda: run(hopper, *(t[..., :96].contiguous() for t in (q, k, v)))):
        with pytest.raises(llmk.LlmkError) as info:
            call()
        assert info.value.status is llmk.Status.UNSUPPORTED, info.value
