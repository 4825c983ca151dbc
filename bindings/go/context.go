package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_context_create(llmk_backend backend, int32_t device,
                                           llmk_context** out) {
  return llmkgo_result_of(llmk_context_create(backend, device, out));
}

static llmkgo_result llmkgo_synchronize(void* ctx, void* stream) {
  return llmkgo_result_of(llmk_synchronize(ctx, stream));
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// Backend mirrors llmk_backend.
type Backend int32

// The values of llmk_backend.
const (
	BackendCPU  Backend = C.LLMK_BACKEND_CPU
	BackendCUDA Backend = C.LLMK_BACKEND_CUDA
)

func (b Backend) String() string {
	switch b {
	case BackendCPU:
		return "cpu"
	case BackendCUDA:
		return "cuda"
	}
	return fmt.Sprintf("Backend(%d)", int32(b))
}

// Stream is a CUDA stream (a cudaStream_t) that ops are launched on; nil is the legacy default
// stream. It is ignored on a CPU context.
type Stream unsafe.Pointer

// Context is bound to the CPU or to one CUDA device. It may be used from several goroutines at
// once, but not while it is being closed.
//
// A Context and its DeviceBuffers are released explicitly (Close, Free), not by finalizers: the
// Go garbage collector does not see device memory, and freeing behind the caller's back could
// race with work still queued on the device.
type Context struct {
	handle  unsafe.Pointer // the llmk_context, as the helpers take it (see llmkgo.h)
	backend Backend
	device  int
}

// NewCPUContext creates a context that runs ops on the calling goroutine's thread, over host
// memory.
func NewCPUContext() (*Context, error) { return newContext(BackendCPU, -1) }

// NewCUDAContext creates a context on CUDA device `device` (an ordinal below CUDADeviceCount).
func NewCUDAContext(device int) (*Context, error) {
	if device < math.MinInt32 || device > math.MaxInt32 {
		return nil, argError(StatusInvalidValue, "context_create: device %d does not exist", device)
	}
	return newContext(BackendCUDA, device)
}

func newContext(backend Backend, device int) (*Context, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	var handle *C.llmk_context
	r := C.llmkgo_context_create(C.llmk_backend(backend), C.int32_t(device), &handle)
	if err := resultError(&r); err != nil {
		return nil, err
	}
	return &Context{handle: unsafe.Pointer(handle), backend: backend, device: device}, nil
}

// Close releases the context; later calls do nothing. Work already launched is not waited for.
// Using a closed context fails with StatusNullPointer.
func (c *Context) Close() {
	if c != nil && c.handle != nil {
		C.llmk_context_destroy((*C.llmk_context)(c.handle))
		c.handle = nil
	}
}

// Backend is the backend the context was created for.
func (c *Context) Backend() Backend { return c.backend }

// Device is the CUDA device ordinal of the context, or -1 for the CPU.
func (c *Context) Device() int { return c.device }

// Synchronize waits for the work on stream. It fails with StatusCUDAContextLost if that work
// failed asynchronously. It does nothing on a CPU context.
func (c *Context) Synchronize(stream Stream) error {
	r := C.llmkgo_synchronize(c.ptr(), unsafe.Pointer(stream))
	return resultError(&r)
}

// ptr is the handle to pass to C: NULL for a nil or closed context, which the library reports.
func (c *Context) ptr() unsafe.Pointer {
	if c == nil {
		return nil
	}
	return c.handle
}
