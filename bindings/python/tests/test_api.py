"""The binding's surface: versions, enums, contexts, DeviceBuffer, tensor conversions, and the ops
on numpy arrays."""
import re

import numpy as np
import pytest

import llmk


def reference_rms_norm(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def reference_layer_norm(x, w, b, eps):
    x = x.astype(np.float64)
    centered = x - x.mean(-1, keepdims=True)
    return centered / np.sqrt((centered * centered).mean(-1, keepdims=True) + eps) * w + b


def bf16_bits(values):
    """float32 values exactly representable in bf16, as their bit patterns."""
    return (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def bf16_values(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# --- versions and enums ------------------------------------------------------------------------


def test_versions():
    assert re.fullmatch(r"\d+\.\d+\.\d+", llmk.version())
    assert llmk.abi_version() == 0


def test_status_values_are_the_librarys():
    from llmk._library import lib

    for status in llmk.Status:
        assert lib.llmk_status_string(status) != b"unknown status", status
    # A status the library knows and the binding does not: the binding needs the new value.
    assert lib.llmk_status_string(len(llmk.Status)) == b"unknown status"


def test_dtype_values_are_the_librarys():
    from llmk._library import lib

    assert [d.bits for d in llmk.DType] == [32, 16, 16, 8, 8, 32, 4, 64]

    assert lib.llmk_dtype_bits(len(llmk.DType)) == 0


def test_backend_values():
    assert (llmk.Backend.CPU, llmk.Backend.CUDA) == (0, 1)


# --- contexts ----------------------------------------------------------------------------------


def test_cpu_context():
    with llmk.Context.cpu() as ctx:
        assert (ctx.backend, ctx.device, ctx.closed) == (llmk.Backend.CPU, -1, False)
        ctx.synchronize()
    assert ctx.closed
    ctx.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        ctx.synchronize()


def test_cuda_context_of_a_device_that_does_not_exist():
    count = llmk.cuda_device_count()
    with pytest.raises(llmk.LlmkError) as info:
        llmk.Context.cuda(count)
    expected = llmk.Status.NO_DEVICE if count == 0 else llmk.Status.INVALID_VALUE
    assert info.value.status is expected
    assert "device" in info.value.message


def test_cuda_context(cuda):
    assert (cuda.backend, cuda.device) == (llmk.Backend.CUDA, 0)


# --- DeviceBuffer ------------------------------------------------------------------------------


@pytest.fixture(params=["cpu", "cuda"])
def any_context(request):
    return request.getfixturevalue(request.param)


def test_device_buffer_round_trip(any_context):
    data = np.arange(10, dtype=np.float32)
    with llmk.DeviceBuffer(any_context, 64) as buffer:
        buffer.copy_from_host(data, byte_offset=8)
        back = buffer.copy_to_host(np.empty(6, dtype=np.float32), byte_offset=16)
        np.testing.assert_array_equal(back, data[2:8])
        with pytest.raises(ValueError, match="outside"):
            buffer.copy_from_host(data, byte_offset=32)
        with pytest.raises(ValueError, match="C-contiguous"):
            buffer.copy_to_host(np.empty((4, 2), dtype=np.float32)[:, 0])
    with pytest.raises(ValueError, match="closed"):
        buffer.ptr


def test_device_buffer_views(cpu):
    buffer = llmk.DeviceBuffer(cpu, 64)
    view = buffer.tensor(llmk.DType.F16, (3, 4), (8, 1), offset=6)
    assert (view.data_ptr, view.shape, view.strides) == (buffer.ptr + 12, (3, 4), (8, 1))
    assert buffer.tensor(llmk.DType.F32, (16,)).strides == (1,)
    with pytest.raises(ValueError, match="beyond"):
        buffer.tensor(llmk.DType.F32, (2, 8), (9, 1))
    with pytest.raises(ValueError, match="offset"):
        buffer.tensor(llmk.DType.I4, (2,), offset=1)


def test_zero_byte_buffer_is_refused_by_llmk(cpu):
    with pytest.raises(llmk.LlmkError) as info:
        llmk.DeviceBuffer(cpu, 0)
    assert info.value.status is llmk.Status.INVALID_VALUE and "bytes" in info.value.message


def test_closing_a_context_frees_its_buffers():
    ctx = llmk.Context.cpu()
    buffer = llmk.DeviceBuffer(ctx, 16)
    ctx.close()
    with pytest.raises(ValueError, match="closed"):
        buffer.ptr
    buffer.close()


def test_op_on_device_buffers(any_context):
    x = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    w = np.linspace(0.5, 1.5, 32, dtype=np.float32)
    with llmk.DeviceBuffer(any_context, x.nbytes) as xb, \
            llmk.DeviceBuffer(any_context, w.nbytes) as wb:
        xb.copy_from_host(x)
        wb.copy_from_host(w)
        x_view = xb.tensor(llmk.DType.F32, x.shape)
        llmk.rms_norm(any_context, x_view, wb.tensor(llmk.DType.F32, w.shape), 1e-6, x_view)
        got = xb.copy_to_host(np.empty_like(x))
    np.testing.assert_allclose(got, reference_rms_norm(x, w, 1e-6), rtol=1e-5, atol=1e-6)


# --- tensors -----------------------------------------------------------------------------------


def test_numpy_strides_become_element_strides():
    storage = np.zeros((4, 10), dtype=np.float16)
    view = llmk.Tensor.from_numpy(storage[1:, 2:8])
    assert (view.dtype, view.shape, view.strides) == (llmk.DType.F16, (3, 6), (10, 1))
    assert view.data_ptr == storage.ctypes.data + (10 + 2) * 2


def test_raw_pointer_tensor_defaults_to_c_contiguous():
    view = llmk.Tensor(0x1000, llmk.DType.BF16, (2, 3, 4))
    assert (view.strides, view.ndim, view.readonly) == ((12, 4, 1), 3, False)
    with pytest.raises(ValueError, match="strides"):
        llmk.Tensor(0x1000, llmk.DType.BF16, (2, 3), (3,))


class FakeCudaArray:
    """A __cuda_array_interface__ producer over host memory: the CPU context runs on it, which
    exercises the conversion end to end without a GPU."""

    def __init__(self, array, version=3, byte_strides=None, readonly=False):
        self.array = array
        self.__cuda_array_interface__ = {
            "shape": array.shape, "typestr": array.dtype.str, "version": version,
            "data": (array.ctypes.data, readonly), "strides": byte_strides, "stream": None,
        }


def test_cuda_array_interface_conversion():
    storage = np.zeros((4, 8), dtype=np.float32)
    contiguous = llmk.Tensor.from_cuda_array(FakeCudaArray(storage, version=2))
    assert (contiguous.shape, contiguous.strides) == ((4, 8), (8, 1))
    strided = llmk.Tensor.from_cuda_array(FakeCudaArray(storage[:, :4], byte_strides=(32, 4)))
    assert (strided.shape, strided.strides, strided.dtype) == ((4, 4), (8, 1), llmk.DType.F32)
    assert llmk.Tensor.from_cuda_array(FakeCudaArray(storage, readonly=True)).readonly
    with pytest.raises(ValueError, match="version"):
        llmk.Tensor.from_cuda_array(FakeCudaArray(storage, version=1))
    with pytest.raises(ValueError, match="multiple"):
        llmk.Tensor.from_cuda_array(FakeCudaArray(storage, byte_strides=(32, 2)))


def test_cuda_array_interface_objects_are_accepted_by_ops(cpu):
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float32)
    w = np.ones(16, dtype=np.float32)
    out = np.empty_like(x)
    llmk.rms_norm(cpu, FakeCudaArray(x), FakeCudaArray(w), 1e-6, FakeCudaArray(out))
    np.testing.assert_allclose(out, reference_rms_norm(x, w, 1e-6), rtol=1e-5, atol=1e-6)


# --- ops on numpy ------------------------------------------------------------------------------


def test_rms_norm_returns_out_and_works_in_place(cpu):
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    w = np.linspace(-1, 1, 64, dtype=np.float32)
    expected = reference_rms_norm(x, w, 1e-6)
    out = np.empty_like(x)
    assert llmk.rms_norm(cpu, x, w, 1e-6, out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    llmk.rms_norm(cpu, x, w, 1e-6, x)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)


def test_add_rms_norm_updates_residual(cpu):
    rng = np.random.default_rng(4)
    x, residual = (rng.standard_normal((3, 32)).astype(np.float16) for _ in range(2))
    w = np.ones(32, dtype=np.float16)
    summed = (x + residual).astype(np.float16)
    out = llmk.add_rms_norm(cpu, x, residual, w, 1e-6, np.empty_like(x))
    np.testing.assert_array_equal(residual, summed)
    np.testing.assert_allclose(out, reference_rms_norm(summed, w, 1e-6), rtol=2**-10, atol=1e-5)


def test_layer_norm_with_and_without_bias_in_bf16(cpu):
    rng = np.random.default_rng(5)
    x = bf16_bits(rng.standard_normal((2, 128)))
    w, b = bf16_bits(rng.uniform(0.5, 1.5, 128)), bf16_bits(rng.standard_normal(128))

    def bf16(array):
        return llmk.Tensor.from_numpy(array, dtype=llmk.DType.BF16)

    for bias, bias_values in ((bf16(b), bf16_values(b)), (None, 0.0)):
        out = np.empty_like(x)
        llmk.layer_norm(cpu, bf16(x), bf16(w), bias, 1e-5, bf16(out))
        expected = reference_layer_norm(bf16_values(x), bf16_values(w), bias_values, 1e-5)
        np.testing.assert_allclose(bf16_values(out), expected, rtol=2**-7, atol=1e-5)


def test_torch_on_cuda(cuda):
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 256, dtype=torch.bfloat16, device="cuda")
    w = torch.rand(256, dtype=torch.bfloat16, device="cuda") + 0.5
    out = torch.empty_like(x)

    def view(t):  # torch's __cuda_array_interface__ refuses bf16; its strides are elements
        return llmk.Tensor(t.data_ptr(), llmk.DType.BF16, tuple(t.shape), tuple(t.stride()))

    stream = torch.cuda.current_stream()
    llmk.rms_norm(cuda, view(x), view(w), 1e-6, view(out), stream=stream.cuda_stream)
    stream.synchronize()
    expected = torch.nn.functional.rms_norm(x.float(), (256,), w.float(), 1e-6)
    torch.testing.assert_close(out.float(), expected, rtol=2**-7, atol=1e-5)

    half = x.half()
    half_out = torch.empty_like(half)
    llmk.rms_norm(cuda, half, w.half(), 1e-6, half_out, stream=stream.cuda_stream)
    stream.synchronize()
    torch.testing.assert_close(half_out.float(), expected, rtol=2**-7, atol=1e-3)
