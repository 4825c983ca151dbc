package llmk

// #include "llmkgo.h"
import "C"

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// MaxDims is the most dimensions a tensor can have.
const MaxDims = C.LLMK_MAX_DIMS

// DType mirrors llmk_dtype.
type DType int32

// The values of llmk_dtype.
const (
	F32  DType = C.LLMK_DTYPE_F32
	F16  DType = C.LLMK_DTYPE_F16 // IEEE binary16
	BF16 DType = C.LLMK_DTYPE_BF16
	I8   DType = C.LLMK_DTYPE_I8
	U8   DType = C.LLMK_DTYPE_U8
	I32  DType = C.LLMK_DTYPE_I32
	I4   DType = C.LLMK_DTYPE_I4 // two per byte, element 2i in the low nibble of byte i
	I64  DType = C.LLMK_DTYPE_I64
)

var dtypes = [...]struct {
	name string
	bits int
}{
	F32:  {"f32", 32},
	F16:  {"f16", 16},
	BF16: {"bf16", 16},
	I8:   {"i8", 8},
	U8:   {"u8", 8},
	I32:  {"i32", 32},
	I4:   {"i4", 4},
	I64:  {"i64", 64},
}

func (d DType) known() bool { return d >= 0 && int(d) < len(dtypes) }

// String is the dtype's name as the library's messages spell it, e.g. "bf16".
func (d DType) String() string {
	if !d.known() {
		return fmt.Sprintf("DType(%d)", int32(d))
	}
	return dtypes[d].name
}

// Bits is the size of one element in bits (4 for I4), or 0 for a value that is not a dtype.
func (d DType) Bits() int {
	if !d.known() {
		return 0
	}
	return dtypes[d].bits
}

// Tensor is a strided view of memory that it does not own, the Go form of llmk_tensor: element
// (i0, ..., ik) lives at Data() + sum(ij * strides[j]) elements. It is a small value; copy it
// freely. A Tensor made from a Go slice keeps that slice alive.
type Tensor struct {
	data    unsafe.Pointer
	dtype   DType
	ndim    int
	shape   [MaxDims]int64
	strides [MaxDims]int64
}

// TensorFromFloat32 views data as an F32 tensor. A nil strides means contiguous (row-major).
// The view must lie within data, with extents and strides >= 0.
func TensorFromFloat32(data []float32, shape, strides []int64) (Tensor, error) {
	return sliceTensor(firstElement(data), len(data), F32, shape, strides)
}

// TensorFromUint16 views data, the bit patterns of 16-bit floats, as a tensor of dtype F16 or
// BF16. A nil strides means contiguous (row-major). The view must lie within data, with extents
// and strides >= 0.
func TensorFromUint16(data []uint16, dtype DType, shape, strides []int64) (Tensor, error) {
	if dtype != F16 && dtype != BF16 {
		return Tensor{}, argError(StatusUnsupportedDType,
			"tensor: a []uint16 holds f16 or bf16 elements, not %v", dtype)
	}
	return sliceTensor(firstElement(data), len(data), dtype, shape, strides)
}

// TensorFromInt32 views data as an I32 tensor (token ids, positions, slots). A nil strides means
// contiguous (row-major). The view must lie within data, with extents and strides >= 0.
func TensorFromInt32(data []int32, shape, strides []int64) (Tensor, error) {
	return sliceTensor(firstElement(data), len(data), I32, shape, strides)
}

// TensorFromInt64 views data as an I64 tensor (token ids, positions, slots). A nil strides means
// contiguous (row-major). The view must lie within data, with extents and strides >= 0.
func TensorFromInt64(data []int64, shape, strides []int64) (Tensor, error) {
	return sliceTensor(firstElement(data), len(data), I64, shape, strides)
}

// TensorFromPointer views memory the binding knows nothing about, such as device memory from
// another CUDA library. A nil strides means contiguous (row-major). Nothing is checked against
// the allocation: the caller guarantees that the view lies within it and that the memory stays
// valid while ops use it. The library itself rejects NULL data, misalignment, negative extents
// and strides. data must not point to Go memory that holds Go pointers (the cgo rules).
func TensorFromPointer(data unsafe.Pointer, dtype DType, shape, strides []int64) (Tensor, error) {
	return newTensor(data, dtype, shape, strides)
}

// firstElement is the address of s[0], or nil for an empty slice (whose view must be empty).
func firstElement[E any](s []E) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

func sliceTensor(data unsafe.Pointer, length int, dtype DType, shape, strides []int64) (Tensor, error) {
	t, err := newTensor(data, dtype, shape, strides)
	if err != nil {
		return Tensor{}, err
	}
	elements, err := t.span()
	if err != nil {
		return Tensor{}, err
	}
	if elements > int64(length) {
		return Tensor{}, argError(StatusInvalidShape,
			"tensor: the view spans %d elements, the slice has %d", elements, length)
	}
	return t, nil
}

func newTensor(data unsafe.Pointer, dtype DType, shape, strides []int64) (Tensor, error) {
	if len(shape) > MaxDims {
		return Tensor{}, argError(StatusInvalidNDim,
			"tensor: %d dimensions; at most %d", len(shape), MaxDims)
	}
	t := Tensor{data: data, dtype: dtype, ndim: len(shape)}
	copy(t.shape[:], shape)
	switch {
	case strides == nil:
		stride := int64(1)
		for d := t.ndim - 1; d >= 0; d-- {
			t.strides[d] = stride
			if d > 0 && shape[d] > 0 {
				hi, lo := bits.Mul64(uint64(stride), uint64(shape[d]))
				if hi != 0 || lo > math.MaxInt64 {
					return Tensor{}, argError(StatusInvalidShape,
						"tensor: shape %v has more than 2^63 elements", shape)
				}
				stride = int64(lo)
			}
		}
	case len(strides) == len(shape):
		copy(t.strides[:], strides)
	default:
		return Tensor{}, argError(StatusInvalidNDim,
			"tensor: shape has %d dimensions, strides %d", len(shape), len(strides))
	}
	return t, nil
}

// span is the number of elements the view reaches from its first one: 0 if it has no elements,
// else 1 + sum((shape[d] - 1) * strides[d]).
func (t Tensor) span() (int64, error) {
	empty := false
	for d := 0; d < t.ndim; d++ {
		if t.shape[d] < 0 {
			return 0, argError(StatusInvalidShape,
				"tensor: negative extent %d in dimension %d", t.shape[d], d)
		}
		if t.strides[d] < 0 {
			return 0, argError(StatusInvalidStride,
				"tensor: negative stride %d in dimension %d", t.strides[d], d)
		}
		empty = empty || t.shape[d] == 0
	}
	if empty {
		return 0, nil
	}
	furthest := uint64(0)
	for d := 0; d < t.ndim; d++ {
		hi, step := bits.Mul64(uint64(t.shape[d]-1), uint64(t.strides[d]))
		sum, carry := bits.Add64(furthest, step, 0)
		if hi != 0 || carry != 0 || sum >= math.MaxInt64 {
			return 0, argError(StatusInvalidStride, "tensor: the view reaches beyond 2^63 elements")
		}
		furthest = sum
	}
	return int64(furthest) + 1, nil
}

// Data is the address of the view's first element.
func (t Tensor) Data() unsafe.Pointer { return t.data }

// DType is the element type.
func (t Tensor) DType() DType { return t.dtype }

// NDim is the number of dimensions.
func (t Tensor) NDim() int { return t.ndim }

// Shape is a copy of the extents, in elements.
func (t Tensor) Shape() []int64 { return append([]int64(nil), t.shape[:t.ndim]...) }

// Strides is a copy of the strides, in elements.
func (t Tensor) Strides() []int64 { return append([]int64(nil), t.strides[:t.ndim]...) }

// view is the tensor without its data pointer, in the form the C helpers take (see llmkgo.h).
func (t Tensor) view() C.llmkgo_view {
	v := C.llmkgo_view{dtype: C.int32_t(t.dtype), ndim: C.int32_t(t.ndim)}
	for d := 0; d < t.ndim; d++ {
		v.shape[d] = C.int64_t(t.shape[d])
		v.strides[d] = C.int64_t(t.strides[d])
	}
	return v
}
