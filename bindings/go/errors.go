package llmk

// #include "llmkgo.h"
import "C"

import (
	"bytes"
	"fmt"
	"unsafe"
)

// Status mirrors llmk_status: the values are the C enum's. A Status is also an error, so that
// errors.Is(err, StatusShapeMismatch) matches any *Error with that status.
type Status int32

// The values of llmk_status; include/llmk.h says when each is returned.
const (
	StatusSuccess          Status = C.LLMK_SUCCESS
	StatusNullPointer      Status = C.LLMK_ERROR_NULL_POINTER
	StatusUnsupportedDType Status = C.LLMK_ERROR_UNSUPPORTED_DTYPE
	StatusDTypeMismatch    Status = C.LLMK_ERROR_DTYPE_MISMATCH
	StatusInvalidNDim      Status = C.LLMK_ERROR_INVALID_NDIM
	StatusInvalidShape     Status = C.LLMK_ERROR_INVALID_SHAPE
	StatusShapeMismatch    Status = C.LLMK_ERROR_SHAPE_MISMATCH
	StatusInvalidStride    Status = C.LLMK_ERROR_INVALID_STRIDE
	StatusNotContiguous    Status = C.LLMK_ERROR_NOT_CONTIGUOUS
	StatusMisaligned       Status = C.LLMK_ERROR_MISALIGNED
	StatusOverlap          Status = C.LLMK_ERROR_OVERLAP
	StatusWrongMemorySpace Status = C.LLMK_ERROR_WRONG_MEMORY_SPACE
	StatusWrongDevice      Status = C.LLMK_ERROR_WRONG_DEVICE
	StatusInvalidValue     Status = C.LLMK_ERROR_INVALID_VALUE
	StatusUnsupported      Status = C.LLMK_ERROR_UNSUPPORTED
	StatusNoDevice         Status = C.LLMK_ERROR_NO_DEVICE
	StatusOutOfMemory      Status = C.LLMK_ERROR_OUT_OF_MEMORY
	StatusCUDA             Status = C.LLMK_ERROR_CUDA
	StatusCUDAContextLost  Status = C.LLMK_ERROR_CUDA_CONTEXT_LOST
	StatusInternal         Status = C.LLMK_ERROR_INTERNAL
)

// String is the library's name for the status, e.g. "shape mismatch".
func (s Status) String() string {
	return C.GoString(C.llmk_status_string(C.llmk_status(s)))
}

// Error makes a Status usable as an errors.Is target. It is String, so that fmt prints a Status
// the same way whether it sees an error or a Stringer.
func (s Status) Error() string { return s.String() }

// Error is a failed llmk call: the status, and the message saying which argument was wrong and
// why, e.g. "rms_norm: weight has 4095 elements, x rows have 4096".
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "llmk: " + e.Status.String()
	}
	return "llmk: " + e.Status.String() + ": " + e.Message
}

// Unwrap returns the Status, which errors.Is compares with its target.
func (e *Error) Unwrap() error { return e.Status }

// argError reports an argument that the binding rejects before calling into the library, with
// the status the library uses for that kind of problem.
func argError(status Status, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// resultError turns a helper's result into nil or an *Error. It reads the message in Go rather
// than with C.GoString: handing r to a cgo call would make every result escape to the heap, an
// allocation on each successful op call too.
func resultError(r *C.llmkgo_result) error {
	if r.status == C.LLMK_SUCCESS {
		return nil
	}
	message := (*[len(r.message)]byte)(unsafe.Pointer(&r.message))[:]
	if end := bytes.IndexByte(message, 0); end >= 0 {
		message = message[:end]
	}
	return &Error{Status: Status(r.status), Message: string(message)}
}
