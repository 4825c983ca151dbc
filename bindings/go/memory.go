package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_malloc(void* ctx, size_t bytes, void** out) {
  return llmkgo_result_of(llmk_malloc(ctx, bytes, out));
}

static llmkgo_result llmkgo_free(void* ctx, void* ptr) {
  return llmkgo_result_of(llmk_free(ctx, ptr));
}

// Copies on the default stream and waits for the copy before returning: the Go memory on one side
// may be used by C only during the call that it was passed to.
static llmkgo_result llmkgo_copy(void* ctx, void* dst, const void* src, size_t bytes) {
  llmk_status status = llmk_memcpy(ctx, dst, src, bytes, NULL);
  if (status == LLMK_SUCCESS) status = llmk_synchronize(ctx, NULL);
  return llmkgo_result_of(status);
}
*/
import "C"

import (
	"math/bits"
	"unsafe"
)

// DeviceBuffer is memory from llmk_malloc: device memory of a CUDA context's device, or host
// memory on a CPU context, aligned to 256 bytes. It is for callers without a CUDA runtime of
// their own, such as tests and demos; allocating may synchronize the device.
type DeviceBuffer struct {
	ctx   *Context
	ptr   unsafe.Pointer
	bytes int
}

// NewDeviceBuffer allocates bytes (> 0) on the context's device. Free it before closing ctx.
func NewDeviceBuffer(ctx *Context, bytes int) (*DeviceBuffer, error) {
	if bytes < 0 {
		return nil, argError(StatusInvalidValue, "malloc: bytes is %d", bytes)
	}
	var ptr unsafe.Pointer
	r := C.llmkgo_malloc(ctx.ptr(), C.size_t(bytes), &ptr)
	if err := resultError(&r); err != nil {
		return nil, err
	}
	return &DeviceBuffer{ctx: ctx, ptr: ptr, bytes: bytes}, nil
}

// Free releases the memory; later calls do nothing.
func (b *DeviceBuffer) Free() error {
	if b.ptr == nil {
		return nil
	}
	r := C.llmkgo_free(b.ctx.ptr(), b.ptr)
	if err := resultError(&r); err != nil {
		return err
	}
	b.ptr, b.bytes = nil, 0
	return nil
}

// Ptr is the address of the memory, nil once freed.
func (b *DeviceBuffer) Ptr() unsafe.Pointer { return b.ptr }

// Len is the size in bytes, 0 once freed.
func (b *DeviceBuffer) Len() int { return b.bytes }

// Tensor views the buffer from its start. A nil strides means contiguous (row-major). The view
// must lie within the buffer, with extents and strides >= 0.
func (b *DeviceBuffer) Tensor(dtype DType, shape, strides []int64) (Tensor, error) {
	return b.TensorAt(0, dtype, shape, strides)
}

// TensorAt views the buffer from its element `offset` (counted in elements of dtype, >= 0; even
// for I4, whose views start on a byte), e.g. the up half of a fused [gate | up] buffer or the K
// slice of a fused QKV buffer. A nil strides means contiguous (row-major). The view must lie
// within the buffer, with extents and strides >= 0.
func (b *DeviceBuffer) TensorAt(offset int64, dtype DType, shape, strides []int64) (Tensor, error) {
	if !dtype.known() {
		return Tensor{}, argError(StatusUnsupportedDType, "tensor: dtype %d is not an llmk dtype", int32(dtype))
	}
	if offset < 0 || (dtype == I4 && offset%2 != 0) {
		return Tensor{}, argError(StatusInvalidValue,
			"tensor: offset %d is negative or not on a byte of %v elements", offset, dtype)
	}
	t, err := newTensor(b.ptr, dtype, shape, strides)
	if err != nil {
		return Tensor{}, err
	}
	elements, err := t.span()
	if err != nil {
		return Tensor{}, err
	}
	elementBits := uint64(dtype.Bits())
	hiStart, startBits := bits.Mul64(uint64(offset), elementBits)
	hiEnd, endBits := bits.Mul64(uint64(elements), elementBits)
	endBits, carry := bits.Add64(endBits, startBits, 0)
	if hiStart != 0 || hiEnd != 0 || carry != 0 || endBits > 8*uint64(b.bytes) {
		return Tensor{}, argError(StatusInvalidShape,
			"tensor: the view spans %d %v elements from element %d, the buffer has %d bytes",
			elements, dtype, offset, b.bytes)
	}
	t.data = unsafe.Add(b.ptr, startBits/8)
	return t, nil
}

// Element is a Go type that holds the elements of an llmk dtype: uint16 holds f16 and bf16 bit
// patterns, uint8 holds packed i4 pairs.
type Element interface {
	~float32 | ~uint16 | ~int8 | ~uint8 | ~int32 | ~int64
}

// CopyToDevice copies src to the start of dst and waits for the copy. On a CUDA context it runs
// on the legacy default stream, so it is ordered after work queued on blocking streams.
func CopyToDevice[E Element](dst *DeviceBuffer, src []E) error {
	n, err := copySize(dst, src)
	if err != nil || n == 0 {
		return err
	}
	r := C.llmkgo_copy(dst.ctx.ptr(), dst.ptr, unsafe.Pointer(&src[0]), C.size_t(n))
	return resultError(&r)
}

// CopyToHost copies the start of src to dst and waits for the copy. On a CUDA context it runs
// on the legacy default stream, so it is ordered after work queued on blocking streams.
func CopyToHost[E Element](dst []E, src *DeviceBuffer) error {
	n, err := copySize(src, dst)
	if err != nil || n == 0 {
		return err
	}
	r := C.llmkgo_copy(src.ctx.ptr(), unsafe.Pointer(&dst[0]), src.ptr, C.size_t(n))
	return resultError(&r)
}

// copySize is the size of host in bytes, if that fits in b.
func copySize[E Element](b *DeviceBuffer, host []E) (int, error) {
	if b.ptr == nil {
		return 0, argError(StatusNullPointer, "memcpy: the buffer has been freed")
	}
	var element E
	n := len(host) * int(unsafe.Sizeof(element))
	if n > b.bytes {
		return 0, argError(StatusInvalidValue,
			"memcpy: %d bytes do not fit in a buffer of %d", n, b.bytes)
	}
	return n, nil
}
