"""Rejected calls of the activation, RoPE, embedding, KV-cache and AdamW ops: llmk's status and a
message naming the argument, outputs left untouched, and what the binding refuses itself."""
import numpy as np
import pytest

import llmk
from test_errors import llmk_error

F32 = np.float32


def normal(*shape, dtype=F32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def null(role_dtype, *shape):
    """A view whose data pointer is NULL: the nearest thing to C's NULL tensor that Python has
    (None means "no tensor" for the optional roles)."""
    return llmk.Tensor(0, role_dtype, shape)


def read_only(array):
    array.flags.writeable = False
    return array


# --- bias_activation and gated_activation ------------------------------------------------------

ROWS, N = 3, 8
GELU, SILU = llmk.Activation.GELU, llmk.Activation.SILU


def test_bias_activation_null_data(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "x", lambda: llmk.bias_activation(
        cpu, null(llmk.DType.F32, ROWS, N), normal(N), GELU, normal(ROWS, N)))


def test_bias_activation_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "bias", lambda: llmk.bias_activation(
        cpu, normal(ROWS, N), normal(N, dtype=np.float16), GELU, normal(ROWS, N)))


def test_bias_activation_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "bias", lambda: llmk.bias_activation(
        cpu, normal(ROWS, N), normal(N - 1), GELU, normal(ROWS, N)))


def test_bias_activation_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "x", lambda: llmk.bias_activation(
        cpu, normal(ROWS, N)[::-1], None, SILU, normal(ROWS, N)))


def test_activation_out_of_range(cpu):
    out = normal(ROWS, N)
    before = out.copy()
    llmk_error(llmk.Status.INVALID_VALUE, "activation", lambda: llmk.bias_activation(
        cpu, normal(ROWS, N), None, 99, out))
    np.testing.assert_array_equal(out, before)


def test_gated_activation_null_data(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "up", lambda: llmk.gated_activation(
        cpu, normal(ROWS, N), null(llmk.DType.F32, ROWS, N), SILU, normal(ROWS, N)))


def test_gated_activation_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "up", lambda: llmk.gated_activation(
        cpu, normal(ROWS, N), normal(ROWS, N, dtype=np.float16), SILU, normal(ROWS, N)))


def test_gated_activation_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "up", lambda: llmk.gated_activation(
        cpu, normal(ROWS, N), normal(ROWS, N + 1), SILU, normal(ROWS, N)))


def test_gated_activation_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "gate", lambda: llmk.gated_activation(
        cpu, normal(ROWS, N)[::-1], normal(ROWS, N), SILU, normal(ROWS, N)))


def test_gated_activation_overlapping_output(cpu):
    fused = normal(ROWS, 2 * N)
    llmk_error(llmk.Status.OVERLAP, "y", lambda: llmk.gated_activation(
        cpu, fused[:, :N], fused[:, N:], SILU, fused[:, 1:N + 1]))


# --- rope --------------------------------------------------------------------------------------

TOKENS, HEADS, HEAD_DIM = 4, 2, 8


def positions(dtype=np.int32):
    return np.arange(TOKENS, dtype=dtype)


def heads(heads=HEADS, dtype=F32, seed=0):
    return normal(TOKENS, heads, HEAD_DIM, dtype=dtype, seed=seed)


def test_rope_null_positions(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "positions", lambda: llmk.rope(
        cpu, None, null(llmk.DType.I32, TOKENS), heads(), heads(1)))


def test_rope_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "k", lambda: llmk.rope(
        cpu, None, positions(), heads(), heads(1, dtype=np.float16)))


def test_rope_positions_dtype(cpu):
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "positions", lambda: llmk.rope(
        cpu, None, positions(np.float32), heads(), None))


def test_rope_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "positions", lambda: llmk.rope(
        cpu, None, np.arange(TOKENS + 1, dtype=np.int32), heads(), heads(1)))


def test_rope_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "q", lambda: llmk.rope(
        cpu, None, positions(), heads()[::-1], None))


def test_rope_odd_rotary_dim(cpu):
    llmk_error(llmk.Status.INVALID_VALUE, "rotary_dim", lambda: llmk.rope(
        cpu, llmk.RopeConfig(rotary_dim=HEAD_DIM - 1), positions(), heads(), None))


def test_rope_position_outside_the_cache(cpu):
    q, k = heads(), heads(1)
    q_before, k_before = q.copy(), k.copy()
    cache = np.zeros((TOKENS - 1, HEAD_DIM), dtype=F32)  # positions 0 .. TOKENS-2
    llmk_error(llmk.Status.INVALID_VALUE, "positions", lambda: llmk.rope(
        cpu, None, positions(), q, k, cos_sin_cache=cache))
    np.testing.assert_array_equal(q, q_before)
    np.testing.assert_array_equal(k, k_before)


def test_rope_read_only_k(cpu):
    with pytest.raises(ValueError, match="k is read-only"):
        llmk.rope(cpu, None, positions(), heads(), read_only(heads(1)))


# --- embedding ---------------------------------------------------------------------------------

VOCAB, HIDDEN = 10, 8


def ids(values=(1, 0, 9), dtype=np.int32):
    return np.array(values, dtype=dtype)


def table(dtype=F32):
    return normal(VOCAB, HIDDEN, dtype=dtype)


def rows(count=3, dtype=F32, hidden=HIDDEN):
    return np.full((count, hidden), 7, dtype=dtype)


def test_embedding_null_table(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "table", lambda: llmk.embedding(
        cpu, ids(), null(llmk.DType.F32, VOCAB, HIDDEN), rows()))


def test_embedding_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "y", lambda: llmk.embedding(
        cpu, ids(), table(), rows(dtype=np.float16)))


def test_embedding_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "y", lambda: llmk.embedding(
        cpu, ids(), table(), rows(hidden=HIDDEN - 1)))


def test_embedding_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "table", lambda: llmk.embedding(
        cpu, ids(), table()[::-1], rows()))


@pytest.mark.parametrize("bad_id", [VOCAB, -1])
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_embedding_id_out_of_range(cpu, bad_id, id_dtype):
    out = rows()
    # llmk.h: the message names the token.
    error = llmk_error(llmk.Status.INVALID_VALUE, "token 1", lambda: llmk.embedding(
        cpu, ids((0, bad_id, 1), id_dtype), table(), out))
    assert f"id {bad_id}" in error.message
    assert (out == 7).all(), "a refused call wrote y"


# --- kv_cache_write and paged_kv_cache_write ---------------------------------------------------

BATCH, NEW, MAX_SEQ, KV_HEADS, DIM = 2, 3, 8, 2, 4


def new_kv(dtype=F32, seed=0, leading=(BATCH, NEW)):
    return normal(*leading, KV_HEADS, DIM, dtype=dtype, seed=seed)


def cache(dtype=F32, leading=(BATCH, MAX_SEQ), dim=DIM):
    return np.zeros((*leading, KV_HEADS, dim), dtype=dtype)


def seqlens(values=(0, 5), dtype=np.int32):
    return np.array(values, dtype=dtype)


def test_kv_cache_write_null_v(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "v", lambda: llmk.kv_cache_write(
        cpu, new_kv(), null(llmk.DType.F32, BATCH, NEW, KV_HEADS, DIM), seqlens(), cache(),
        cache()))


def test_kv_cache_write_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "v_cache", lambda: llmk.kv_cache_write(
        cpu, new_kv(), new_kv(seed=1), seqlens(), cache(), cache(np.float16)))


def test_kv_cache_write_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "k_cache", lambda: llmk.kv_cache_write(
        cpu, new_kv(), new_kv(seed=1), seqlens(), cache(dim=DIM + 2), cache(dim=DIM + 2)))


def test_kv_cache_write_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "k", lambda: llmk.kv_cache_write(
        cpu, new_kv()[::-1], new_kv(seed=1), seqlens(), cache(), cache()))


@pytest.mark.parametrize("bad_length", [MAX_SEQ - NEW + 1, -1])
def test_kv_cache_write_seqlen_out_of_range(cpu, bad_length):
    k_cache, v_cache = cache(), cache()
    llmk_error(llmk.Status.INVALID_VALUE, "cache_seqlens", lambda: llmk.kv_cache_write(
        cpu, new_kv(), new_kv(seed=1), seqlens((0, bad_length), np.int64), k_cache, v_cache))
    assert not k_cache.any() and not v_cache.any(), "a refused call wrote a cache"


PAGES, PAGE_SIZE, TOKENS_PAGED = 3, 4, 5


def slots(values=(0, 5, -1, 11, 2), dtype=np.int32):
    return np.array(values, dtype=dtype)


def paged_kv(dtype=F32, seed=0):
    return new_kv(dtype, seed, leading=(TOKENS_PAGED,))


def paged_cache(dtype=F32, dim=DIM):
    return cache(dtype, leading=(PAGES, PAGE_SIZE), dim=dim)


def test_paged_kv_cache_write_null_slot_mapping(cpu):
    llmk_error(llmk.Status.NULL_POINTER, "slot_mapping", lambda: llmk.paged_kv_cache_write(
        cpu, paged_kv(), paged_kv(seed=1), null(llmk.DType.I64, TOKENS_PAGED), paged_cache(),
        paged_cache()))


def test_paged_kv_cache_write_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "v", lambda: llmk.paged_kv_cache_write(
        cpu, paged_kv(), paged_kv(np.float16, seed=1), slots(), paged_cache(), paged_cache()))


def test_paged_kv_cache_write_shape_mismatch(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "slot_mapping", lambda: llmk.paged_kv_cache_write(
        cpu, paged_kv(), paged_kv(seed=1), slots((0, 1, 2)), paged_cache(), paged_cache()))


def test_paged_kv_cache_write_negative_stride(cpu):
    llmk_error(llmk.Status.INVALID_STRIDE, "v_cache", lambda: llmk.paged_kv_cache_write(
        cpu, paged_kv(), paged_kv(seed=1), slots(), paged_cache(), paged_cache()[::-1]))


@pytest.mark.parametrize("slot_dtype", [np.int32, np.int64])
def test_paged_kv_cache_write_slot_out_of_range(cpu, slot_dtype):
    k_cache, v_cache = paged_cache(), paged_cache()
    llmk_error(llmk.Status.INVALID_VALUE, "slot_mapping", lambda: llmk.paged_kv_cache_write(
        cpu, paged_kv(), paged_kv(seed=1), slots((0, 1, PAGES * PAGE_SIZE, 2, 3), slot_dtype),
        k_cache, v_cache))
    assert not k_cache.any() and not v_cache.any(), "a refused call wrote a cache"


def test_kv_caches_read_only(cpu):
    with pytest.raises(ValueError, match="v_cache is read-only"):
        llmk.paged_kv_cache_write(cpu, paged_kv(), paged_kv(seed=1), slots(), paged_cache(),
                                  read_only(paged_cache()))


# --- adamw_step --------------------------------------------------------------------------------


def adamw_state(shape=(3, 8), grad_dtype=F32):
    """param, grad, exp_avg, exp_avg_sq."""
    return (normal(*shape), normal(*shape, dtype=grad_dtype, seed=1), np.zeros(shape, F32),
            np.zeros(shape, F32))


def test_adamw_null_grad(cpu):
    param, _, exp_avg, exp_avg_sq = adamw_state()
    llmk_error(llmk.Status.NULL_POINTER, "grad", lambda: llmk.adamw_step(
        cpu, None, param, null(llmk.DType.F32, *param.shape), exp_avg, exp_avg_sq))


def test_adamw_state_dtype(cpu):
    # The state is F32 whatever grad's dtype: a 16-bit exp_avg_sq is a dtype adamw_step does not
    # take, not a mismatch between two tensors that could both be right.
    param, grad, exp_avg, exp_avg_sq = adamw_state()
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "exp_avg_sq", lambda: llmk.adamw_step(
        cpu, None, param, grad, exp_avg, exp_avg_sq.astype(np.float16)))


def test_adamw_shape_mismatch(cpu):
    param, grad, exp_avg, _ = adamw_state()
    llmk_error(llmk.Status.SHAPE_MISMATCH, "exp_avg_sq", lambda: llmk.adamw_step(
        cpu, None, param, grad, exp_avg, np.zeros((3, 9), F32)))


def test_adamw_negative_stride(cpu):
    param, grad, exp_avg, exp_avg_sq = adamw_state()
    llmk_error(llmk.Status.INVALID_STRIDE, "grad", lambda: llmk.adamw_step(
        cpu, None, param, grad[::-1], exp_avg, exp_avg_sq))


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("beta1", 1.0), ("beta2", -0.5),
                                          ("eps", 0.0), ("weight_decay", -0.1), ("step", 0)])
def test_adamw_config_out_of_range(cpu, field, value):
    param, grad, exp_avg, exp_avg_sq = adamw_state()
    before = param.copy()
    llmk_error(llmk.Status.INVALID_VALUE, field, lambda: llmk.adamw_step(
        cpu, llmk.AdamWConfig(**{field: value}), param, grad, exp_avg, exp_avg_sq))
    np.testing.assert_array_equal(param, before)


def test_adamw_read_only_state(cpu):
    param, grad, exp_avg, exp_avg_sq = adamw_state()
    with pytest.raises(ValueError, match="exp_avg is read-only"):
        llmk.adamw_step(cpu, None, param, grad, read_only(exp_avg), exp_avg_sq)


# --- host memory on a CUDA context -------------------------------------------------------------

VALID_HOST_CALLS = {
    "bias_activation": (("x", "bias", "y"), lambda ctx: llmk.bias_activation(
        ctx, normal(ROWS, N), normal(N), GELU, normal(ROWS, N))),
    "gated_activation": (("gate", "up", "y"), lambda ctx: llmk.gated_activation(
        ctx, normal(ROWS, N), normal(ROWS, N), SILU, normal(ROWS, N))),
    "rope": (("positions", "q", "k"), lambda ctx: llmk.rope(
        ctx, None, positions(), heads(), heads(1))),
    "embedding": (("ids", "table", "y"), lambda ctx: llmk.embedding(ctx, ids(), table(), rows())),
    "kv_cache_write": (("k", "v", "cache_seqlens", "k_cache", "v_cache"), lambda ctx:
                       llmk.kv_cache_write(ctx, new_kv(), new_kv(), seqlens(), cache(), cache())),
    "paged_kv_cache_write": (("k", "v", "slot_mapping", "k_cache", "v_cache"), lambda ctx:
                             llmk.paged_kv_cache_write(ctx, paged_kv(), paged_kv(), slots(),
                                                       paged_cache(), paged_cache())),
    "adamw_step": (("param", "grad", "exp_avg", "exp_avg_sq"), lambda ctx: llmk.adamw_step(
        ctx, None, *adamw_state())),
}


@pytest.mark.parametrize("op", VALID_HOST_CALLS)
def test_host_memory_on_cuda_context(cuda, op):
    roles, call = VALID_HOST_CALLS[op]
    with pytest.raises(llmk.LlmkError) as info:
        call(cuda)
    assert info.value.status is llmk.Status.WRONG_MEMORY_SPACE, info.value
    assert any(f"{role}.data" in info.value.message for role in roles), info.value.message


def test_the_same_calls_succeed_on_the_cpu(cpu):
    for _, call in VALID_HOST_CALLS.values():
        call(cpu)


# --- config fields the binding refuses before calling llmk ------------------------------------


def test_config_integer_fields_refuse_what_c_cannot_hold(cpu):
    param, grad, exp_avg, exp_avg_sq = adamw_state()
    with pytest.raises(OverflowError, match="step"):
        llmk.adamw_step(cpu, llmk.AdamWConfig(step=1 << 63), param, grad, exp_avg, exp_avg_sq)
    with pytest.raises(OverflowError, match="rotary_dim"):
        llmk.rope(cpu, llmk.RopeConfig(rotary_dim=1 << 32), positions(), heads(), None)
    with pytest.raises(TypeError):
        llmk.rope(cpu, llmk.RopeConfig(rotary_dim=4.0), positions(), heads(), None)


def test_enum_arguments_must_be_integers(cpu):
    with pytest.raises(TypeError):
        llmk.bias_activation(cpu, normal(ROWS, N), None, "gelu", normal(ROWS, N))
