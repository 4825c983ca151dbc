"""Rejected calls: llmk's status and a message naming the argument, outputs left untouched, and the
arguments the binding refuses itself before calling llmk."""
import pickle
import re

import numpy as np
import pytest

import llmk

HIDDEN = 8


def rows(count=2, dtype=np.float32, fill=None):
    if fill is not None:
        return np.full((count, HIDDEN), fill, dtype=dtype)
    return np.random.default_rng(count).standard_normal((count, HIDDEN)).astype(dtype)


def weight(dtype=np.float32, hidden=HIDDEN):
    return np.ones(hidden, dtype=dtype)


def llmk_error(status, argument, call):
    """Runs call, which must fail with `status` and a message that names `argument`."""
    with pytest.raises(llmk.LlmkError) as info:
        call()
    error = info.value
    assert error.status is status, error
    assert re.search(rf"\b{re.escape(argument)}\b", error.message), error.message
    assert status.name in str(error) and error.message in str(error)
    return error


def test_null_data_pointer(cpu):
    null_weight = llmk.Tensor(0, llmk.DType.F32, (HIDDEN,))
    error = llmk_error(llmk.Status.NULL_POINTER, "weight",
                       lambda: llmk.rms_norm(cpu, rows(), null_weight, 1e-6, rows()))
    assert "weight.data" in error.message


def test_dtype_mismatch(cpu):
    llmk_error(llmk.Status.DTYPE_MISMATCH, "weight",
               lambda: llmk.rms_norm(cpu, rows(), weight(np.float16), 1e-6, rows()))


def test_shape_mismatch_of_weight(cpu):
    llmk_error(llmk.Status.SHAPE_MISMATCH, "weight",
               lambda: llmk.rms_norm(cpu, rows(), weight(hidden=HIDDEN - 1), 1e-6, rows()))


def test_shape_mismatch_of_output(cpu):
    # llmk's messages call the output by its C name, y.
    llmk_error(llmk.Status.SHAPE_MISMATCH, "y",
               lambda: llmk.rms_norm(cpu, rows(2), weight(), 1e-6, rows(3)))


def test_negative_stride_reaches_llmk(cpu):
    reversed_rows = rows(3)[::-1]
    assert llmk.Tensor.from_numpy(reversed_rows).strides == (-HIDDEN, 1)  # no silent copy
    error = llmk_error(llmk.Status.INVALID_STRIDE, "x",
                       lambda: llmk.rms_norm(cpu, reversed_rows, weight(), 1e-6, rows(3)))
    assert "negative stride" in error.message


def test_overlapping_output(cpu):
    buffer = rows(4)
    llmk_error(llmk.Status.OVERLAP, "y",
               lambda: llmk.rms_norm(cpu, buffer[:3], weight(), 1e-6, buffer[1:]))


def test_invalid_eps(cpu):
    llmk_error(llmk.Status.INVALID_VALUE, "eps",
               lambda: llmk.rms_norm(cpu, rows(), weight(), -1.0, rows()))


def test_rejected_call_leaves_outputs_untouched(cpu):
    x, residual, out = rows(), rows(fill=3.0), rows(fill=7.0)
    residual_before, out_before = residual.copy(), out.copy()
    llmk_error(llmk.Status.SHAPE_MISMATCH, "weight", lambda: llmk.add_rms_norm(
        cpu, x, residual, weight(hidden=HIDDEN + 1), 1e-6, out))
    np.testing.assert_array_equal(residual, residual_before)
    np.testing.assert_array_equal(out, out_before)


def test_rejected_in_place_call_leaves_x_untouched(cpu):
    x = rows()
    before = x.copy()
    llmk_error(llmk.Status.DTYPE_MISMATCH, "bias",
               lambda: llmk.layer_norm(cpu, x, weight(), weight(np.float16), 1e-5, x))
    np.testing.assert_array_equal(x, before)


def test_error_pickles():
    error = llmk.LlmkError(llmk.Status.OVERLAP, "rms_norm: y overlaps x")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.message, str(copy)) == (error.status, error.message, str(error))


def test_status_newer_than_the_binding_is_kept_as_an_int():
    error = llmk.LlmkError(len(llmk.Status), "from a newer libllmk")
    assert error.status == len(llmk.Status) and not isinstance(error.status, llmk.Status)
    assert f"status {len(llmk.Status)}" in str(error)


# --- refused by the binding, before llmk is called ---------------------------------------------


def test_byte_strides_that_are_not_whole_elements():
    storage = np.zeros(16, dtype=np.float32)
    odd = np.lib.stride_tricks.as_strided(storage, shape=(2, 3), strides=(6, 4))
    with pytest.raises(ValueError, match="multiple of the element size"):
        llmk.Tensor.from_numpy(odd)


def test_too_many_dimensions():
    with pytest.raises(ValueError, match="at most 8"):
        llmk.Tensor.from_numpy(np.zeros((1,) * 9, dtype=np.float32))


def test_numpy_dtypes_without_an_llmk_dtype():
    with pytest.raises(TypeError, match="BF16"):
        llmk.Tensor.from_numpy(np.zeros(4, dtype=np.uint16))
    with pytest.raises(TypeError, match="float64"):
        llmk.Tensor.from_numpy(np.zeros(4, dtype=np.float64))
    with pytest.raises(TypeError, match="cannot hold BF16"):
        llmk.Tensor.from_numpy(np.zeros(4, dtype=np.float32), dtype=llmk.DType.BF16)


def test_read_only_outputs(cpu):
    x, residual = rows(), rows()
    frozen = rows()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        llmk.rms_norm(cpu, x, weight(), 1e-6, frozen)
    with pytest.raises(ValueError, match="residual is read-only"):
        llmk.add_rms_norm(cpu, x, frozen, weight(), 1e-6, residual)


def test_things_that_are_not_tensors(cpu):
    with pytest.raises(TypeError, match="numpy array"):
        llmk.rms_norm(cpu, [[1.0] * HIDDEN], weight(), 1e-6, rows(1))


def test_stream_that_is_not_a_handle(cpu):
    with pytest.raises(TypeError, match="stream"):
        llmk.rms_norm(cpu, rows(), weight(), 1e-6, rows(), stream="default")


def test_closed_context():
    ctx = llmk.Context.cpu()
    ctx.close()
    with pytest.raises(ValueError, match="closed"):
        llmk.rms_norm(ctx, rows(), weight(), 1e-6, rows())


def test_host_memory_on_cuda_context(cuda):
    llmk_error(llmk.Status.WRONG_MEMORY_SPACE, "x",
               lambda: llmk.rms_norm(cuda, rows(), weight(), 1e-6, rows()))
