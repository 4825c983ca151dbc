"""Rejected calls of the activation, RoPE, embedding, KV-cache, matmul, MLP, attention and AdamW ops: llmk's
status and a message naming the argument, outputs left untouched, and what the binding refuses
itself."""
import ctypes
import re

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


# --- matmul ------------------------------------------------------------------------------------

M, K, NN = 3, 8, 5


def mm_inputs(dtype=F32):
    """a [M, K], b = w.T [K, N] (nn.Linear's weight, column-major), bias [N], d [M, N] (7s)."""
    return (normal(M, K, dtype=dtype), normal(NN, K, dtype=dtype, seed=1).T,
            normal(NN, dtype=dtype, seed=2), np.full((M, NN), 7, dtype=dtype))


def test_matmul_null_config_at_the_c_level(cpu):
    """Python's None config means the defaults; C's NULL config is refused, naming it."""
    from llmk._args import tensor_arg
    from llmk._errors import check
    from llmk._library import lib

    a, b, _, d = mm_inputs()
    llmk.matmul(cpu, None, a, b, None, None, d)
    llmk_error(llmk.Status.NULL_POINTER, "config", lambda: check(lib.llmk_matmul(
        cpu.handle, None, tensor_arg(a), tensor_arg(b), None, None, tensor_arg(d), None)))


def test_matmul_uninitialized_config_at_the_c_level(cpu):
    from llmk._args import tensor_arg
    from llmk._errors import check
    from llmk._library import MatmulConfigStruct, lib

    a, b, _, d = mm_inputs()
    config = MatmulConfigStruct()  # struct_size 0: llmk_matmul_config_init was not called
    llmk_error(llmk.Status.INVALID_VALUE, "struct_size", lambda: check(lib.llmk_matmul(
        cpu.handle, ctypes.byref(config), tensor_arg(a), tensor_arg(b), None, None,
        tensor_arg(d), None)))


def test_matmul_null_data(cpu):
    a, b, bias, d = mm_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "b", lambda: llmk.matmul(
        cpu, None, a, llmk.Tensor(0, llmk.DType.F32, (K, NN), (1, K)), None, bias, d))


def test_matmul_dtype_mismatch(cpu):
    a, b, bias, d = mm_inputs()
    before = d.copy()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "b", lambda: llmk.matmul(
        cpu, None, a, b.astype(np.float16), None, bias, d))
    llmk_error(llmk.Status.DTYPE_MISMATCH, "bias", lambda: llmk.matmul(
        cpu, None, a, b, None, bias.astype(np.float16), d))
    np.testing.assert_array_equal(d, before)


def test_matmul_unsupported_dtype(cpu):
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "a", lambda: llmk.matmul(
        cpu, None, np.ones((M, K), np.int32), np.ones((K, NN), np.int32), None, None,
        np.ones((M, NN), np.int32)))


def test_matmul_shape_mismatch(cpu):
    a, b, bias, d = mm_inputs()
    llmk_error(llmk.Status.SHAPE_MISMATCH, "b", lambda: llmk.matmul(
        cpu, None, a, normal(K + 1, NN), None, None, d))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "d", lambda: llmk.matmul(
        cpu, None, a, b, None, None, np.zeros((M, NN + 1), F32)))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "bias", lambda: llmk.matmul(
        cpu, None, a, b, None, normal(NN - 1), d))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "c", lambda: llmk.matmul(
        cpu, llmk.MatmulConfig(beta=1.0), a, b, normal(M + 1, NN), None, d))


def test_matmul_rank(cpu):
    a, b, _, d = mm_inputs()
    llmk_error(llmk.Status.INVALID_NDIM, "a", lambda: llmk.matmul(
        cpu, None, normal(2, 2, M, K), b, None, None, d))


def test_matmul_layout_neither_row_nor_column_major(cpu):
    a, b, _, d = mm_inputs()
    every_other = normal(M, 2 * K)[:, ::2]  # no unit stride
    llmk_error(llmk.Status.NOT_CONTIGUOUS, "a", lambda: llmk.matmul(
        cpu, None, every_other, b, None, None, d))
    llmk_error(llmk.Status.INVALID_STRIDE, "a", lambda: llmk.matmul(
        cpu, None, a[::-1], b, None, None, d))


def test_matmul_bias_with_a_column_major_out(cpu):
    a, b, bias, _ = mm_inputs()
    d_t = np.zeros((NN, M), F32)
    llmk_error(llmk.Status.UNSUPPORTED, "bias", lambda: llmk.matmul(
        cpu, None, a, b, None, bias, d_t.T))


def test_matmul_beta_without_c(cpu):
    a, b, _, d = mm_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "c", lambda: llmk.matmul(
        cpu, llmk.MatmulConfig(beta=0.5), a, b, None, None, d))


def test_matmul_out_overlaps_an_input(cpu):
    square = normal(K, K)
    llmk_error(llmk.Status.OVERLAP, "d", lambda: llmk.matmul(
        cpu, None, square, normal(K, K, seed=1), None, None, square))


@pytest.mark.parametrize("field, value", [("activation", 99), ("path", 7), ("path", -1),
                                          ("alpha", float("nan")), ("beta", float("inf"))])
def test_matmul_config_out_of_range(cpu, field, value):
    a, b, bias, d = mm_inputs()
    before = d.copy()
    llmk_error(llmk.Status.INVALID_VALUE, field, lambda: llmk.matmul(
        cpu, llmk.MatmulConfig(**{field: value}), a, b, None, bias, d))
    np.testing.assert_array_equal(d, before)


def test_matmul_path_for_forced_gemv_it_cannot_take(cpu):
    a, _, _, d = mm_inputs()
    row_major_b = normal(K, NN)
    error = llmk_error(llmk.Status.UNSUPPORTED, "GEMV", lambda: llmk.matmul_path_for(
        cpu, llmk.MatmulConfig(path=llmk.MatmulPath.GEMV), a, row_major_b, None, None, d))
    assert "column-major" in error.message
    llmk_error(llmk.Status.INVALID_VALUE, "path", lambda: llmk.matmul_path_for(
        cpu, llmk.MatmulConfig(path=3), a, row_major_b, None, None, d))


def test_matmul_read_only_out(cpu):
    a, b, bias, d = mm_inputs()
    with pytest.raises(ValueError, match="out is read-only"):
        llmk.matmul(cpu, None, a, b, None, bias, read_only(d))


def test_matmul_config_fields_the_binding_refuses(cpu):
    a, b, bias, d = mm_inputs()
    with pytest.raises(OverflowError, match="allow_tf32"):
        llmk.matmul(cpu, llmk.MatmulConfig(allow_tf32=1 << 31), a, b, None, bias, d)
    with pytest.raises(TypeError):
        llmk.matmul(cpu, llmk.MatmulConfig(path="gemv"), a, b, None, bias, d)
    with pytest.raises(ValueError):
        llmk.matmul(cpu, llmk.MatmulConfig(alpha="one"), a, b, None, bias, d)


# Calls matmul refuses, as (status, argument named, the arguments after ctx) of mm_inputs().
MATMUL_REFUSALS = {
    "b_dtype": lambda a, b, bias, d: (
        llmk.Status.DTYPE_MISMATCH, "b", (None, a, b.astype(np.float16), None, bias, d)),
    "bias_dtype": lambda a, b, bias, d: (
        llmk.Status.DTYPE_MISMATCH, "bias", (None, a, b, None, bias.astype(np.float16), d)),
    "beta_without_c": lambda a, b, bias, d: (
        llmk.Status.NULL_POINTER, "c", (llmk.MatmulConfig(beta=0.5), a, b, None, None, d)),
    "bias_shape": lambda a, b, bias, d: (
        llmk.Status.SHAPE_MISMATCH, "bias", (None, a, b, None, normal(NN - 1), d)),
    "activation": lambda a, b, bias, d: (
        llmk.Status.INVALID_VALUE, "activation",
        (llmk.MatmulConfig(activation=99), a, b, None, bias, d)),
    "overlap": lambda a, b, bias, d: (
        llmk.Status.OVERLAP, "d", (None, a, b, None, None, a[:, :NN])),
}


@pytest.mark.parametrize("case", MATMUL_REFUSALS)
def test_matmul_tune_refuses_what_matmul_refuses(cpu, case):
    status, argument, args = MATMUL_REFUSALS[case](*mm_inputs())
    out = args[-1]
    before = out.copy()
    messages = [llmk_error(status, argument, lambda: op(cpu, *args)).message
                for op in (llmk.matmul, llmk.matmul_tune)]
    # The same detail, give or take the op's name in front of it.
    assert len({re.sub(r"^matmul(_tune)?: ", "", message) for message in messages}) == 1, messages
    np.testing.assert_array_equal(out, before)


def test_matmul_tune_refuses_what_the_binding_refuses(cpu):
    a, b, bias, d = mm_inputs()
    with pytest.raises(ValueError, match="out is read-only"):
        llmk.matmul_tune(cpu, None, a, b, None, bias, read_only(d))
    with pytest.raises(OverflowError, match="allow_tf32"):
        llmk.matmul_tune(cpu, llmk.MatmulConfig(allow_tf32=1 << 31), a, b, None, bias, d)
    with pytest.raises(TypeError):
        llmk.matmul_tune(cpu, llmk.MatmulConfig(path="gemv"), a, b, None, bias, d)


def test_matmul_tune_tuning_struct_at_the_c_level(cpu):
    """The C call takes a NULL tuning, refuses a struct_size too small for any llmk_matmul_tuning,
    and writes back only the fields that fit in struct_size."""
    from llmk._args import tensor_arg
    from llmk._errors import check
    from llmk._library import MatmulTuningStruct, lib

    a, b, bias, d = mm_inputs()
    expected = llmk.matmul(cpu, None, a, b, None, bias, d.copy())

    def tune(tuning):
        check(lib.llmk_matmul_tune(cpu.handle, ctypes.byref(llmk.MatmulConfig()._struct()),
                                   tensor_arg(a), tensor_arg(b), None, tensor_arg(bias),
                                   tensor_arg(d), None, tuning))

    tune(None)
    np.testing.assert_array_equal(d, expected)
    d[:] = 7
    unset = MatmulTuningStruct()  # struct_size 0
    llmk_error(llmk.Status.INVALID_VALUE, "struct_size", lambda: tune(ctypes.byref(unset)))
    np.testing.assert_array_equal(d, 7)
    # A caller whose header ended after candidates: chosen is not written.
    older = MatmulTuningStruct(struct_size=MatmulTuningStruct.chosen.offset, candidates=-1,
                               chosen=-1)
    tune(ctypes.byref(older))
    np.testing.assert_array_equal(d, expected)
    assert (older.struct_size, older.candidates, older.chosen) == (
        MatmulTuningStruct.chosen.offset, 0, -1)


# --- ffn and gated_mlp -------------------------------------------------------------------------

TOKENS_MLP, D_MODEL, D_FF = 3, 8, 16


def aligned_bytes(nbytes, offset=0, alignment=64):
    """A numpy byte array of nbytes starting `offset` bytes past an aligned address."""
    storage = np.empty(nbytes + alignment + offset, np.uint8)
    start = -storage.ctypes.data % alignment + offset
    return storage[start:start + nbytes]


def ffn_inputs(dtype=F32):
    """x, w1, b1, w2, b2, y (7s)."""
    return (normal(TOKENS_MLP, D_MODEL, dtype=dtype), normal(D_FF, D_MODEL, dtype=dtype, seed=1),
            normal(D_FF, dtype=dtype, seed=2), normal(D_MODEL, D_FF, dtype=dtype, seed=3),
            normal(D_MODEL, dtype=dtype, seed=4), np.full((TOKENS_MLP, D_MODEL), 7, dtype=dtype))


def gated_inputs(dtype=F32):
    """x, w_gate, w_up, w_down, y (7s)."""
    return (normal(TOKENS_MLP, D_MODEL, dtype=dtype),
            normal(D_FF, D_MODEL, dtype=dtype, seed=1), normal(D_FF, D_MODEL, dtype=dtype, seed=2),
            normal(D_MODEL, D_FF, dtype=dtype, seed=3),
            np.full((TOKENS_MLP, D_MODEL), 7, dtype=dtype))


def ffn_workspace(cpu, x, w1, **kwargs):
    return aligned_bytes(llmk.ffn_workspace_size(cpu, x, w1), **kwargs)


def gated_workspace(cpu, x, w_gate, **kwargs):
    return aligned_bytes(llmk.gated_mlp_workspace_size(cpu, x, w_gate), **kwargs)


GELU_TANH = llmk.Activation.GELU_TANH


def test_mlp_null_config_at_the_c_level(cpu):
    from llmk._args import tensor_arg
    from llmk._errors import check
    from llmk._library import lib

    x, w1, b1, w2, b2, y = ffn_inputs()
    workspace = ffn_workspace(cpu, x, w1)
    llmk.ffn(cpu, None, x, w1, b1, w2, b2, GELU, workspace, y)
    llmk_error(llmk.Status.NULL_POINTER, "config", lambda: check(lib.llmk_ffn(
        cpu.handle, None, tensor_arg(x), tensor_arg(w1), tensor_arg(b1), tensor_arg(w2),
        tensor_arg(b2), GELU, workspace.ctypes.data, workspace.nbytes, tensor_arg(y), None)))


def test_workspace_size_queries_check_their_arguments(cpu):
    x, w1, *_ = ffn_inputs()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "w1", lambda: llmk.ffn_workspace_size(
        cpu, x, w1.astype(np.float16)))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "w_gate", lambda: llmk.gated_mlp_workspace_size(
        cpu, x, normal(D_FF, D_MODEL + 1)))
    llmk_error(llmk.Status.NULL_POINTER, "x", lambda: llmk.gated_mlp_workspace_size(
        cpu, null(llmk.DType.F32, TOKENS_MLP, D_MODEL), w1))


def test_ffn_null_data(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "w2", lambda: llmk.ffn(
        cpu, None, x, w1, b1, null(llmk.DType.F32, D_MODEL, D_FF), b2, GELU,
        ffn_workspace(cpu, x, w1), y))


def test_ffn_dtype_mismatch(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "w2", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2.astype(np.float16), b2, GELU, ffn_workspace(cpu, x, w1), y))
    llmk_error(llmk.Status.DTYPE_MISMATCH, "b1", lambda: llmk.ffn(
        cpu, None, x, w1, b1.astype(np.float16), w2, b2, GELU, ffn_workspace(cpu, x, w1), y))
    assert (y == 7).all(), "a refused call wrote y"


def test_ffn_shape_mismatch(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    workspace = ffn_workspace(cpu, x, w1)
    llmk_error(llmk.Status.SHAPE_MISMATCH, "w2", lambda: llmk.ffn(
        cpu, None, x, w1, b1, normal(D_MODEL, D_FF + 1), b2, GELU, workspace, y))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "b2", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, normal(D_MODEL + 1), GELU, workspace, y))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "y", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, GELU, workspace, np.zeros((TOKENS_MLP + 1, D_MODEL), F32)))


def test_ffn_bad_activation_and_path(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    workspace = ffn_workspace(cpu, x, w1)
    llmk_error(llmk.Status.INVALID_VALUE, "activation", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, 99, workspace, y))
    llmk_error(llmk.Status.INVALID_VALUE, "path", lambda: llmk.ffn(
        cpu, llmk.MlpConfig(path=5), x, w1, b1, w2, b2, GELU, workspace, y))
    with pytest.raises(OverflowError, match="tune"):
        llmk.ffn(cpu, llmk.MlpConfig(tune=1 << 31), x, w1, b1, w2, b2, GELU, workspace, y)
    assert (y == 7).all(), "a refused call wrote y"


def test_ffn_workspace_too_small(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    nbytes = llmk.ffn_workspace_size(cpu, x, w1)
    error = llmk_error(llmk.Status.INVALID_VALUE, "workspace_bytes", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, GELU, aligned_bytes(nbytes - 1), y))
    assert str(nbytes) in error.message
    assert (y == 7).all(), "a refused call wrote y"


def test_ffn_workspace_missing(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "workspace", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, GELU, None, y))


def test_ffn_workspace_misaligned(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    llmk_error(llmk.Status.MISALIGNED, "workspace", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, GELU, ffn_workspace(cpu, x, w1, offset=4), y))


def test_ffn_workspace_overlaps_a_tensor(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    nbytes = llmk.ffn_workspace_size(cpu, x, w1)
    # y's buffer, as bytes, is the workspace too.
    storage = aligned_bytes(nbytes + y.nbytes)
    y_in_storage = storage[:y.nbytes].view(F32).reshape(y.shape)
    llmk_error(llmk.Status.OVERLAP, "workspace", lambda: llmk.ffn(
        cpu, None, x, w1, b1, w2, b2, GELU, storage, y_in_storage))


def test_ffn_workspaces_the_binding_refuses(cpu):
    x, w1, b1, w2, b2, y = ffn_inputs()
    workspace = ffn_workspace(cpu, x, w1)
    with pytest.raises(ValueError, match="workspace is read-only"):
        llmk.ffn(cpu, None, x, w1, b1, w2, b2, GELU, read_only(workspace), y)
    strided = aligned_bytes(2 * workspace.nbytes).view(F32)[::2]
    with pytest.raises(ValueError, match="workspace must be contiguous"):
        llmk.ffn(cpu, None, x, w1, b1, w2, b2, GELU, strided, y)
    with pytest.raises(TypeError):
        llmk.ffn(cpu, None, x, w1, b1, w2, b2, GELU, workspace.ctypes.data, y)  # a bare int


def test_gated_mlp_null_data(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "w_up", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, null(llmk.DType.F32, D_FF, D_MODEL), w_down, SILU,
        gated_workspace(cpu, x, w_gate), y))


def test_gated_mlp_dtype_mismatch(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "w_down", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down.astype(np.float16), SILU,
        gated_workspace(cpu, x, w_gate), y))
    llmk_error(llmk.Status.DTYPE_MISMATCH, "y", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down, SILU, gated_workspace(cpu, x, w_gate),
        y.astype(np.float16)))


def test_gated_mlp_shape_mismatch(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    workspace = gated_workspace(cpu, x, w_gate)
    llmk_error(llmk.Status.SHAPE_MISMATCH, "w_up", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, normal(D_FF + 1, D_MODEL), w_down, SILU, workspace, y))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "w_down", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down.T.copy(), SILU, workspace, y))
    assert (y == 7).all(), "a refused call wrote y"


def test_gated_mlp_bad_activation(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    llmk_error(llmk.Status.INVALID_VALUE, "activation", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down, -1, gated_workspace(cpu, x, w_gate), y))


def test_gated_mlp_workspace_of_ffns_size_is_too_small(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    too_small = aligned_bytes(llmk.ffn_workspace_size(cpu, x, w_gate))  # [gate] without [up]
    llmk_error(llmk.Status.INVALID_VALUE, "workspace_bytes", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down, SILU, too_small, y))
    assert (y == 7).all(), "a refused call wrote y"


def test_gated_mlp_output_overlaps_x(cpu):
    x, w_gate, w_up, w_down, _ = gated_inputs()
    llmk_error(llmk.Status.OVERLAP, "y", lambda: llmk.gated_mlp(
        cpu, None, x, w_gate, w_up, w_down, SILU, gated_workspace(cpu, x, w_gate), x))


def test_gated_mlp_non_contiguous_weight_rows(cpu):
    x, w_gate, w_up, w_down, y = gated_inputs()
    llmk_error(llmk.Status.NOT_CONTIGUOUS, "w_gate", lambda: llmk.gated_mlp(
        cpu, None, x, np.asfortranarray(w_gate), w_up, w_down, SILU,
        gated_workspace(cpu, x, w_gate), y))


# --- attention and attention_varlen ------------------------------------------------------------

A_BATCH, Q_LEN, KV_LEN, Q_HEADS, A_KV_HEADS, A_HEAD_DIM = 2, 3, 5, 4, 2, 64
F16 = np.float16


def aligned(shape, dtype=F16, fill=None, seed=0, offset=0):
    """An array whose data starts `offset` elements past 64-byte alignment (attention wants its
    data pointers on 16 bytes): normal values, or `fill`."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    storage = aligned_bytes((count + offset) * dtype.itemsize).view(dtype)[offset:]
    array = storage.reshape(shape)
    array[...] = normal(*shape, seed=seed) if fill is None else fill
    return array


def attention_inputs(dtype=F16, q_len=Q_LEN, head_dim=A_HEAD_DIM):
    """q, k, v, o (7s) and lse (7s) of a padded batch."""
    return (aligned((A_BATCH, q_len, Q_HEADS, head_dim), dtype, seed=1),
            aligned((A_BATCH, KV_LEN, A_KV_HEADS, head_dim), dtype, seed=2),
            aligned((A_BATCH, KV_LEN, A_KV_HEADS, head_dim), dtype, seed=3),
            aligned((A_BATCH, q_len, Q_HEADS, head_dim), dtype, fill=7),
            np.full((A_BATCH, Q_HEADS, q_len), 7, np.float32))


def bf16_view(array):
    """The bits of an f16 array read as bf16: the same shape, another dtype."""
    return llmk.Tensor.from_numpy(array.view(np.uint16), dtype=llmk.DType.BF16)


def untouched(*arrays):
    return all((array == 7).all() for array in arrays)


def test_attention_valid_call_writes_its_outputs(cpu):
    q, k, v, o, lse = attention_inputs()
    llmk.attention(cpu, None, q, k, v, o, lse)
    assert not untouched(o) and not untouched(lse)


def test_attention_null_data(cpu):
    _, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "q", lambda: llmk.attention(
        cpu, None, null(llmk.DType.F16, A_BATCH, Q_LEN, Q_HEADS, A_HEAD_DIM), k, v, o, lse))
    assert untouched(o, lse)


def test_attention_unsupported_dtype(cpu):
    q, k, v, o, lse = attention_inputs(np.float32)
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "q", lambda: llmk.attention(cpu, None, q, k, v, o))


def test_attention_dtype_mismatch(cpu):
    q, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "v", lambda: llmk.attention(
        cpu, None, q, k, bf16_view(v), o, lse))
    llmk_error(llmk.Status.DTYPE_MISMATCH, "o", lambda: llmk.attention(
        cpu, None, q, k, v, bf16_view(o), lse))
    assert untouched(o, lse)


def test_attention_lse_dtype(cpu):
    q, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "lse", lambda: llmk.attention(
        cpu, None, q, k, v, o, aligned(lse.shape, F16, fill=7)))
    assert untouched(o, lse)


def test_attention_shape_mismatch(cpu):
    q, k, v, o, lse = attention_inputs()
    short_v = v[:, :KV_LEN - 1]
    llmk_error(llmk.Status.SHAPE_MISMATCH, "v", lambda: llmk.attention(
        cpu, None, q, k, short_v, o, lse))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "o", lambda: llmk.attention(
        cpu, None, q, k, v, o[:, :Q_LEN - 1], lse))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "lse", lambda: llmk.attention(
        cpu, None, q, k, v, o, lse[:, :, :Q_LEN - 1]))
    assert untouched(o, lse)


def test_attention_negative_stride(cpu):
    q, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.INVALID_STRIDE, "k", lambda: llmk.attention(
        cpu, None, q, k[::-1], v, o, lse))
    assert untouched(o, lse)


def test_attention_head_dim_it_does_not_take(cpu):
    q, k, v, o, lse = attention_inputs(head_dim=32)
    with pytest.raises(llmk.LlmkError) as info:
        llmk.attention(cpu, None, q, k, v, o, lse)
    assert info.value.status is llmk.Status.UNSUPPORTED, info.value
    assert info.value.message.startswith("attention: "), info.value.message
    assert untouched(o, lse)


def test_attention_misaligned_views(cpu):
    q, k, v, o, lse = attention_inputs()
    # q's data 2 bytes past 16-byte alignment (aligned to its elements, as every view must be).
    shifted = aligned(q.shape, offset=1, seed=1)
    llmk_error(llmk.Status.MISALIGNED, "q", lambda: llmk.attention(
        cpu, None, shifted, k, v, o, lse))
    # k's rows 4 elements apart beyond head_dim * kv_heads: a stride that is no multiple of 8.
    padded = aligned((A_BATCH, KV_LEN, A_KV_HEADS * A_HEAD_DIM + 4), seed=2)
    k_rows = padded[:, :, :A_KV_HEADS * A_HEAD_DIM].reshape(A_BATCH, KV_LEN, A_KV_HEADS,
                                                            A_HEAD_DIM)
    assert k_rows.strides[1] // 2 % 8 != 0
    llmk_error(llmk.Status.MISALIGNED, "k", lambda: llmk.attention(
        cpu, None, q, k_rows, v, o, lse))
    assert untouched(o, lse)


def test_attention_outputs_overlapping(cpu):
    q, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.OVERLAP, "o", lambda: llmk.attention(cpu, None, q, k, v, q, lse))
    # lse in the first bytes of o's memory.
    lse_in_o = o.reshape(-1).view(np.float32)[:lse.size].reshape(lse.shape)
    llmk_error(llmk.Status.OVERLAP, "lse", lambda: llmk.attention(
        cpu, None, q, k, v, o, lse_in_o))
    assert untouched(o)


@pytest.mark.parametrize("field, value", [
    ("scale", -1.0), ("scale", float("nan")), ("softcap", -1.0), ("softcap", float("inf")),
    ("dropout_p", 1.0), ("dropout_p", -0.1), ("window_left", -2), ("window_right", -5),
    ("kernel", 7), ("kernel", -1)])
def test_attention_config_out_of_range(cpu, field, value):
    q, k, v, o, lse = attention_inputs()
    llmk_error(llmk.Status.INVALID_VALUE, field, lambda: llmk.attention(
        cpu, llmk.AttentionConfig(**{field: value}), q, k, v, o, lse))
    assert untouched(o, lse)


def test_attention_null_and_uninitialized_config_at_the_c_level(cpu):
    from llmk._args import tensor_arg
    from llmk._errors import check
    from llmk._library import AttentionConfigStruct, lib

    q, k, v, o, _ = attention_inputs()
    args = [tensor_arg(t) for t in (q, k, v, o)]
    llmk_error(llmk.Status.NULL_POINTER, "config", lambda: check(lib.llmk_attention(
        cpu.handle, None, *args, None, None)))
    config = AttentionConfigStruct()  # struct_size 0: llmk_attention_config_init was not called
    llmk_error(llmk.Status.INVALID_VALUE, "struct_size", lambda: check(lib.llmk_attention(
        cpu.handle, ctypes.byref(config), *args, None, None)))
    assert untouched(o)


def test_attention_arguments_the_binding_refuses(cpu):
    q, k, v, o, lse = attention_inputs()
    for field, value in [("dropout_seed", -1), ("dropout_seed", 1 << 64),
                         ("dropout_offset", 1 << 32), ("window_left", 1 << 31)]:
        with pytest.raises(OverflowError, match=field):
            llmk.attention(cpu, llmk.AttentionConfig(**{field: value}), q, k, v, o, lse)
    with pytest.raises(TypeError):
        llmk.attention(cpu, llmk.AttentionConfig(window_right=0.5), q, k, v, o, lse)
    with pytest.raises(TypeError):
        llmk.attention(cpu, llmk.AttentionConfig(kernel="hopper"), q, k, v, o, lse)
    with pytest.raises(ValueError, match="out is read-only"):
        llmk.attention(cpu, None, q, k, v, read_only(o.copy()), lse)
    with pytest.raises(ValueError, match="lse is read-only"):
        llmk.attention(cpu, None, q, k, v, o, read_only(lse.copy()))
    assert untouched(o, lse)


# Three packed sequences: 3, 1 and 2 queries over 4, 0 and 3 keys.
CU_Q, CU_K = (0, 3, 4, 6), (0, 4, 4, 7)


def varlen_inputs(dtype=F16):
    """q, k, v, o (7s) and lse (7s) of the packed sequences of CU_Q and CU_K."""
    total_q, total_k = CU_Q[-1], CU_K[-1]
    return (aligned((total_q, Q_HEADS, A_HEAD_DIM), dtype, seed=4),
            aligned((total_k, A_KV_HEADS, A_HEAD_DIM), dtype, seed=5),
            aligned((total_k, A_KV_HEADS, A_HEAD_DIM), dtype, seed=6),
            aligned((total_q, Q_HEADS, A_HEAD_DIM), dtype, fill=7),
            np.full((Q_HEADS, total_q), 7, np.float32))


def cu(values, dtype=np.int32):
    return np.array(values, dtype=dtype)


def test_attention_varlen_valid_call_writes_its_outputs(cpu):
    q, k, v, o, lse = varlen_inputs()
    llmk.attention_varlen(cpu, llmk.AttentionConfig(causal=True), q, k, v, cu(CU_Q), cu(CU_K), 3,
                          o, lse)
    assert not untouched(o) and not untouched(lse)
    assert (lse[:, 3] == -np.inf).all()  # the sequence with no keys


def test_attention_varlen_null_data(cpu):
    q, k, v, o, lse = varlen_inputs()
    llmk_error(llmk.Status.NULL_POINTER, "cu_seqlens_k", lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(CU_Q), null(llmk.DType.I32, len(CU_K)), 3, o, lse))
    assert untouched(o, lse)


def test_attention_varlen_dtype_and_shape_of_cu_seqlens(cpu):
    q, k, v, o, lse = varlen_inputs()
    llmk_error(llmk.Status.UNSUPPORTED_DTYPE, "cu_seqlens_q", lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(CU_Q, np.int64), cu(CU_K), 3, o, lse))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "cu_seqlens_k", lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(CU_Q), cu(CU_K[:-1]), 3, o, lse))
    llmk_error(llmk.Status.SHAPE_MISMATCH, "lse", lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(CU_Q), cu(CU_K), 3, o, lse[:, :-1]))
    assert untouched(o, lse)


@pytest.mark.parametrize("role, cu_q, cu_k", [
    ("cu_seqlens_q", (0, 3, 2, 6), CU_K),   # decreasing
    ("cu_seqlens_q", (1, 3, 4, 6), CU_K),   # not from 0
    ("cu_seqlens_q", (0, 3, 4, 7), CU_K),   # beyond total_q
    ("cu_seqlens_k", CU_Q, (0, 4, 8, 7)),   # beyond total_k, and decreasing
    ("cu_seqlens_k", CU_Q, (0, 5, 4, 7)),   # decreasing
], ids=["q_decreasing", "q_not_from_0", "q_beyond_total", "k_beyond_total", "k_decreasing"])
def test_attention_varlen_bad_offsets(cpu, role, cu_q, cu_k):
    q, k, v, o, lse = varlen_inputs()
    llmk_error(llmk.Status.INVALID_VALUE, role, lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(cu_q), cu(cu_k), 3, o, lse))
    assert untouched(o, lse), "a refused call wrote o or lse"


def test_attention_varlen_max_seqlen_q(cpu):
    q, k, v, o, lse = varlen_inputs()
    # The first sequence has 3 queries: 2 is too few.
    with pytest.raises(llmk.LlmkError) as info:
        llmk.attention_varlen(cpu, None, q, k, v, cu(CU_Q), cu(CU_K), 2, o, lse)
    assert info.value.status is llmk.Status.INVALID_VALUE, info.value
    assert re.search(r"\b(max_seqlen_q|cu_seqlens_q)\b", info.value.message), info.value.message
    llmk_error(llmk.Status.INVALID_VALUE, "max_seqlen_q", lambda: llmk.attention_varlen(
        cpu, None, q, k, v, cu(CU_Q), cu(CU_K), 0, o, lse))
    with pytest.raises(OverflowError, match="max_seqlen_q"):
        llmk.attention_varlen(cpu, None, q, k, v, cu(CU_Q), cu(CU_K), 1 << 63, o, lse)
    assert untouched(o, lse)


def test_attention_varlen_config_and_read_only_lse(cpu):
    q, k, v, o, lse = varlen_inputs()
    llmk_error(llmk.Status.INVALID_VALUE, "softcap", lambda: llmk.attention_varlen(
        cpu, llmk.AttentionConfig(softcap=-2.0), q, k, v, cu(CU_Q), cu(CU_K), 3, o, lse))
    error = llmk_error(llmk.Status.INVALID_VALUE, "kernel", lambda: llmk.attention_varlen(
        cpu, llmk.AttentionConfig(kernel=3), q, k, v, cu(CU_Q), cu(CU_K), 3, o, lse))
    assert "config->kernel" in error.message, error.message
    with pytest.raises(ValueError, match="lse is read-only"):
        llmk.attention_varlen(cpu, None, q, k, v, cu(CU_Q), cu(CU_K), 3, o,
                              read_only(lse.copy()))
    assert untouched(o, lse)


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
    "matmul": (("a", "b", "bias", "d"), lambda ctx: llmk.matmul(
        ctx, None, *mm_inputs()[:2], None, *mm_inputs()[2:])),
    "matmul_tune": (("a", "b", "bias", "d"), lambda ctx: llmk.matmul_tune(
        ctx, None, *mm_inputs()[:2], None, *mm_inputs()[2:])),
    # The workspace is host memory too; ample, so that no size query is needed on CUDA.
    "ffn": (("x", "w1", "b1", "w2", "b2", "y", "workspace"), lambda ctx: llmk.ffn(
        ctx, None, *ffn_inputs()[:5], GELU, aligned_bytes(1 << 16), ffn_inputs()[5])),
    "gated_mlp": (("x", "w_gate", "w_up", "w_down", "y", "workspace"), lambda ctx: llmk.gated_mlp(
        ctx, None, *gated_inputs()[:4], SILU, aligned_bytes(1 << 16), gated_inputs()[4])),
    "attention": (("q", "k", "v", "o", "lse"), lambda ctx: llmk.attention(
        ctx, None, *attention_inputs())),
    "attention_varlen": (("q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "o", "lse"), lambda ctx:
                         llmk.attention_varlen(ctx, None, *varlen_inputs()[:3], cu(CU_Q),
                                               cu(CU_K), 3, *varlen_inputs()[3:])),
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
