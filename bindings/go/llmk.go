// Package llmk is the Go binding of llmk, CUDA kernels for LLM inference behind the stable C API
// of libllmk.so: normalization (RMSNorm, fused residual-add RMSNorm, LayerNorm), activations
// (bias + activation, gated SwiGLU/GeGLU), rotary position embedding, embedding lookup, KV-cache
// writes (contiguous and paged), the AdamW optimizer step, matrix multiplication (Matmul, on
// cuBLASLt or a decode GEMV) and whole MLP blocks (FFN, GatedMLP) over a Workspace.
//
// The package links libllmk through cgo and pkg-config (package name "llmk"), so building needs
// PKG_CONFIG_PATH to reach llmk.pc (or llmk-uninstalled.pc in a build tree) and running needs
// the dynamic loader to find libllmk.so.0.
//
// A Context selects the CPU (the reference implementation, over host memory) or one CUDA device.
// Tensors are views that own nothing: TensorFromFloat32, TensorFromUint16, TensorFromInt32 and
// TensorFromInt64 view Go slices, for CPU contexts; DeviceBuffer holds memory from the library
// (device memory on a CUDA context), and TensorFromPointer views memory from elsewhere. Ops take a Stream, nil being the default
// stream; on a CUDA context they are asynchronous, on a CPU context they run to completion.
//
// Every failure is an *Error carrying the library's Status and its detail message, which names
// the argument at fault; errors.Is(err, StatusShapeMismatch) matches by status. A failed call
// leaves its outputs untouched. A Context may be used from several goroutines at once.
package llmk

/*
#cgo pkg-config: llmk
#include "llmkgo.h"

static llmkgo_result llmkgo_cuda_device_count(int32_t* count) {
  return llmkgo_result_of(llmk_cuda_device_count(count));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
)

// abiVersion is the LLMK_ABI_VERSION of the header this package is built against, which
// llmkgo.h pins to the version the binding is written for.
const abiVersion = C.LLMK_ABI_VERSION

// ErrABIMismatch is wrapped by the error that every entry point returns when the loaded
// libllmk has another ABI version than the one this package is written for.
var ErrABIMismatch = errors.New("llmk: ABI version mismatch")

var abiCheck struct {
	once sync.Once
	err  error
}

// checkABI compares the loaded library's ABI version with the binding's, once per process.
// The SONAME (libllmk.so.0) should already rule out a mismatch; this catches a library that
// was renamed or copied over another.
func checkABI() error {
	abiCheck.once.Do(func() { abiCheck.err = abiError(ABIVersion()) })
	return abiCheck.err
}

func abiError(found int) error {
	if found == abiVersion {
		return nil
	}
	return fmt.Errorf("%w: the loaded libllmk %s has ABI version %d, this binding expects %d",
		ErrABIMismatch, Version(), found, abiVersion)
}

// Version is the "MAJOR.MINOR.PATCH" version of the loaded libllmk.
func Version() string { return C.GoString(C.llmk_version()) }

// ABIVersion is the ABI version of the loaded libllmk (the major number of its SONAME).
func ABIVersion() int { return int(C.llmk_abi_version()) }

// CUDADeviceCount is the number of CUDA devices llmk can use: 0, and no error, on a machine
// without a GPU or a driver.
func CUDADeviceCount() (int, error) {
	if err := checkABI(); err != nil {
		return 0, err
	}
	var count C.int32_t
	r := C.llmkgo_cuda_device_count(&count)
	if err := resultError(&r); err != nil {
		return 0, err
	}
	return int(count), nil
}
