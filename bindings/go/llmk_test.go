package llmk_test

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"testing"

	"llmk.dev/llmk"
)

func newCPUContext(t *testing.T) *llmk.Context {
	t.Helper()
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctx.Close)
	return ctx
}

// newCUDAContext is a context on device 0, or skips the test where there is none.
func newCUDAContext(t *testing.T) *llmk.Context {
	t.Helper()
	count, err := llmk.CUDADeviceCount()
	if err != nil {
		t.Fatal(err)
	}
	if count == 0 {
		t.Skip("no CUDA device: llmk.CUDADeviceCount() is 0")
	}
	ctx, err := llmk.NewCUDAContext(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctx.Close)
	return ctx
}

func tensorF32(t *testing.T, data []float32, shape ...int64) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromFloat32(data, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// wantStatus fails the test unless err is an *llmk.Error with that status.
func wantStatus(t *testing.T, err error, status llmk.Status) *llmk.Error {
	t.Helper()
	var e *llmk.Error
	if !errors.As(err, &e) || e.Status != status {
		t.Fatalf("got error %v, want status %q", err, status)
	}
	return e
}

func TestVersion(t *testing.T) {
	if v := llmk.Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		t.Errorf("Version() = %q, want MAJOR.MINOR.PATCH", v)
	}
	if got := llmk.ABIVersion(); got != 0 {
		t.Errorf("ABIVersion() = %d, want 0", got)
	}
}

func TestContexts(t *testing.T) {
	ctx := newCPUContext(t)
	if ctx.Backend() != llmk.BackendCPU || ctx.Device() != -1 {
		t.Errorf("CPU context: backend %v, device %d; want cpu, -1", ctx.Backend(), ctx.Device())
	}
	if err := ctx.Synchronize(nil); err != nil {
		t.Errorf("Synchronize on the CPU: %v", err)
	}

	count, err := llmk.CUDADeviceCount()
	if err != nil {
		t.Fatal(err)
	}
	_, err = llmk.NewCUDAContext(count) // one past the last device
	if count == 0 {
		e := wantStatus(t, err, llmk.StatusNoDevice)
		t.Logf("without a GPU: %v", e)
	} else {
		wantStatus(t, err, llmk.StatusInvalidValue)
	}
	wantStatus(t, errOf(llmk.NewCUDAContext(math.MaxInt32+1)), llmk.StatusInvalidValue)
}

func TestClosedContext(t *testing.T) {
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		t.Fatal(err)
	}
	x := tensorF32(t, []float32{1, 2}, 1, 2)
	w := tensorF32(t, []float32{1, 1}, 2)
	y := tensorF32(t, make([]float32, 2), 1, 2)
	ctx.Close()
	ctx.Close()
	e := wantStatus(t, llmk.RMSNorm(ctx, x, w, 1e-6, y, nil), llmk.StatusNullPointer)
	if e.Message != "rms_norm: ctx is NULL" {
		t.Errorf("message %q", e.Message)
	}
	wantStatus(t, llmk.RMSNorm(nil, x, w, 1e-6, y, nil), llmk.StatusNullPointer)
}

func TestTensorConstructors(t *testing.T) {
	data := make([]float32, 12)
	x, err := llmk.TensorFromFloat32(data, []int64{2, 3, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Strides(); len(got) != 3 || got[0] != 6 || got[1] != 2 || got[2] != 1 {
		t.Errorf("contiguous strides %v, want [6 2 1]", got)
	}
	if x.DType() != llmk.F32 || x.NDim() != 3 || x.Data() == nil {
		t.Errorf("tensor %v, %d dims, data %p", x.DType(), x.NDim(), x.Data())
	}
	if _, err := llmk.TensorFromFloat32(data, []int64{3, 2}, []int64{5, 1}); err != nil {
		t.Errorf("a view ending on the last element: %v", err)
	}
	if _, err := llmk.TensorFromFloat32(nil, []int64{0, 4}, nil); err != nil {
		t.Errorf("an empty view of an empty slice: %v", err)
	}
	if _, err := llmk.TensorFromUint16(make([]uint16, 4), llmk.BF16, []int64{4}, nil); err != nil {
		t.Errorf("bf16: %v", err)
	}
	if ids, err := llmk.TensorFromInt32(make([]int32, 5), []int64{3}, []int64{2}); err != nil || ids.DType() != llmk.I32 {
		t.Errorf("i32 with a stride: %v, %v", ids.DType(), err)
	}
	if slots, err := llmk.TensorFromInt64(make([]int64, 3), []int64{3}, nil); err != nil || slots.DType() != llmk.I64 {
		t.Errorf("i64: %v, %v", slots.DType(), err)
	}

	rejected := []struct {
		name   string
		err    error
		status llmk.Status
	}{
		{"past the end", errOf(llmk.TensorFromFloat32(data, []int64{3, 2}, []int64{6, 1})), llmk.StatusInvalidShape},
		{"negative stride", errOf(llmk.TensorFromFloat32(data, []int64{2, 2}, []int64{-2, 1})), llmk.StatusInvalidStride},
		{"negative extent", errOf(llmk.TensorFromFloat32(data, []int64{-1, 2}, nil)), llmk.StatusInvalidShape},
		{"strides for another ndim", errOf(llmk.TensorFromFloat32(data, []int64{12}, []int64{1, 1})), llmk.StatusInvalidNDim},
		{"nine dimensions", errOf(llmk.TensorFromFloat32(data, make([]int64, 9), nil)), llmk.StatusInvalidNDim},
		{"2^63 elements", errOf(llmk.TensorFromFloat32(data, []int64{2, 1 << 32, 1 << 32}, nil)), llmk.StatusInvalidShape},
		{"unreachable offsets", errOf(llmk.TensorFromFloat32(data, []int64{3, 1}, []int64{math.MaxInt64, 1})), llmk.StatusInvalidStride},
		{"f32 in a []uint16", errOf(llmk.TensorFromUint16(make([]uint16, 4), llmk.F32, []int64{4}, nil)), llmk.StatusUnsupportedDType},
		{"i32 past the end", errOf(llmk.TensorFromInt32(make([]int32, 5), []int64{3}, []int64{3})), llmk.StatusInvalidShape},
		{"i64 past the end", errOf(llmk.TensorFromInt64(make([]int64, 2), []int64{3}, nil)), llmk.StatusInvalidShape},
	}
	for _, r := range rejected {
		e := wantStatus(t, r.err, r.status)
		t.Logf("%s: %v", r.name, e)
	}
}

// errOf is the error of a two-valued call.
func errOf[T any](_ T, err error) error { return err }

func TestDeviceBufferOnCPU(t *testing.T) { testDeviceBuffer(t, newCPUContext(t)) }

func TestDeviceBufferOnCUDA(t *testing.T) { testDeviceBuffer(t, newCUDAContext(t)) }

func testDeviceBuffer(t *testing.T, ctx *llmk.Context) {
	buf, err := llmk.NewDeviceBuffer(ctx, 64)
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 64 || uintptr(buf.Ptr())%256 != 0 {
		t.Errorf("buffer of %d bytes at %p; want 64 bytes aligned to 256", buf.Len(), buf.Ptr())
	}
	in := []float32{1, -2, 3.5, float32(math.Inf(1)), 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if err := llmk.CopyToDevice(buf, in); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(in))
	if err := llmk.CopyToHost(out, buf); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("round trip: element %d is %g, want %g", i, out[i], in[i])
		}
	}
	half := make([]uint16, 32)
	if err := llmk.CopyToHost(half, buf); err != nil || half[1] != 0x3F80 {
		t.Errorf("the bits of 1.0f read as []uint16: %#04x, %v", half[1], err)
	}
	wantStatus(t, llmk.CopyToDevice(buf, make([]float32, 17)), llmk.StatusInvalidValue)

	for _, ok := range []struct {
		dtype llmk.DType
		shape []int64
	}{{llmk.F32, []int64{4, 4}}, {llmk.BF16, []int64{32}}, {llmk.I4, []int64{128}}, {llmk.I64, []int64{8}}} {
		if _, err := buf.Tensor(ok.dtype, ok.shape, nil); err != nil {
			t.Errorf("a %v view of shape %v: %v", ok.dtype, ok.shape, err)
		}
	}
	// Views from an offset: the up half of [gate | up], a byte into i4 pairs.
	up, err := buf.TensorAt(8, llmk.F32, []int64{1, 8}, []int64{16, 1})
	if err != nil || uintptr(up.Data())-uintptr(buf.Ptr()) != 32 {
		t.Errorf("an f32 view from element 8 starts %d bytes in (%v), want 32",
			uintptr(up.Data())-uintptr(buf.Ptr()), err)
	}
	if _, err := buf.TensorAt(2, llmk.I4, []int64{126}, nil); err != nil {
		t.Errorf("an i4 view from element 2 to the end: %v", err)
	}
	wantStatus(t, errOf(buf.TensorAt(9, llmk.F32, []int64{1, 8}, []int64{16, 1})), llmk.StatusInvalidShape)
	wantStatus(t, errOf(buf.TensorAt(1, llmk.I4, []int64{2}, nil)), llmk.StatusInvalidValue)
	wantStatus(t, errOf(buf.TensorAt(-1, llmk.F32, []int64{2}, nil)), llmk.StatusInvalidValue)
	wantStatus(t, errOf(buf.Tensor(llmk.F32, []int64{4, 5}, nil)), llmk.StatusInvalidShape)
	wantStatus(t, errOf(buf.Tensor(llmk.I4, []int64{129}, nil)), llmk.StatusInvalidShape)
	wantStatus(t, errOf(buf.Tensor(llmk.DType(42), []int64{1}, nil)), llmk.StatusUnsupportedDType)

	if err := buf.Free(); err != nil {
		t.Fatal(err)
	}
	if err := buf.Free(); err != nil {
		t.Errorf("second Free: %v", err)
	}
	if buf.Len() != 0 || buf.Ptr() != nil {
		t.Errorf("freed buffer: %d bytes at %p", buf.Len(), buf.Ptr())
	}
	wantStatus(t, llmk.CopyToHost(out, buf), llmk.StatusNullPointer)

	e := wantStatus(t, errOf(llmk.NewDeviceBuffer(ctx, 0)), llmk.StatusInvalidValue)
	if e.Message != "malloc: bytes is 0" {
		t.Errorf("message %q", e.Message)
	}
	wantStatus(t, errOf(llmk.NewDeviceBuffer(ctx, -1)), llmk.StatusInvalidValue)
}

func TestCUDARefusesGoMemory(t *testing.T) {
	ctx := newCUDAContext(t)
	x := tensorF32(t, make([]float32, 8), 2, 4)
	w := tensorF32(t, make([]float32, 4), 4)
	y := tensorF32(t, make([]float32, 8), 2, 4)
	e := wantStatus(t, llmk.RMSNorm(ctx, x, w, 1e-6, y, nil), llmk.StatusWrongMemorySpace)
	t.Log(e)
}

// A successful op call allocates nothing on the Go heap: tensors cross into C without cgo boxing
// them for its pointer check (see llmkgo.h).
func TestOpsDoNotAllocate(t *testing.T) {
	ctx := newCPUContext(t)
	x := tensorF32(t, make([]float32, 64), 4, 16)
	r := tensorF32(t, make([]float32, 64), 4, 16)
	w := tensorF32(t, make([]float32, 16), 16)
	b := tensorF32(t, make([]float32, 16), 16)
	y := tensorF32(t, make([]float32, 64), 4, 16)
	allocs := testing.AllocsPerRun(100, func() {
		if llmk.RMSNorm(ctx, x, w, 1e-6, y, nil) != nil ||
			llmk.AddRMSNorm(ctx, x, r, w, 1e-6, y, nil) != nil ||
			llmk.LayerNorm(ctx, x, w, &b, 1e-5, y, nil) != nil {
			t.Fatal("op failed")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call of the three ops, want 0", allocs)
	}
}

// The same for the ops with optional tensors, enums and config structs, which cross by value.
func TestNewOpsDoNotAllocate(t *testing.T) {
	ctx := newCPUContext(t)
	x := tensorF32(t, make([]float32, 64), 4, 16)
	up := tensorF32(t, make([]float32, 64), 4, 16)
	bias := tensorF32(t, make([]float32, 16), 16)
	y := tensorF32(t, make([]float32, 64), 4, 16)
	positions := int32Tensor(t, []int32{0, 1, 2, 3})
	q := tensorF32(t, make([]float32, 64), 4, 2, 8)
	k := tensorF32(t, make([]float32, 32), 4, 1, 8)
	ids := int64Tensor(t, []int64{3, 0, 1, 1})
	table := tensorF32(t, make([]float32, 64), 4, 16)
	slots := int32Tensor(t, []int32{0, 5, -1, 2})
	kCache := tensorF32(t, make([]float32, 64), 2, 4, 1, 8)
	vCache := tensorF32(t, make([]float32, 64), 2, 4, 1, 8)
	seqlens := int32Tensor(t, []int32{0, 2})
	newTokens := tensorF32(t, make([]float32, 32), 2, 2, 1, 8)
	param, grad := tensorF32(t, make([]float32, 64), 4, 16), tensorF32(t, make([]float32, 64), 4, 16)
	avg, avgSq := tensorF32(t, make([]float32, 64), 4, 16), tensorF32(t, make([]float32, 64), 4, 16)
	rope, adamw := llmk.DefaultRopeConfig(), llmk.DefaultAdamWConfig()
	must := func(op string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		must("bias_activation", llmk.BiasActivation(ctx, x, &bias, llmk.ActivationGELUTanh, y, nil))
		must("gated_activation", llmk.GatedActivation(ctx, x, up, llmk.ActivationSiLU, y, nil))
		must("rope", llmk.Rope(ctx, rope, positions, q, &k, nil, nil))
		must("embedding", llmk.Embedding(ctx, ids, table, y, nil))
		must("kv_cache_write", llmk.KVCacheWrite(ctx, newTokens, newTokens, seqlens, kCache, vCache, nil))
		must("paged_kv_cache_write", llmk.PagedKVCacheWrite(ctx, k, k, slots, kCache, vCache, nil))
		must("adamw_step", llmk.AdamWStep(ctx, adamw, param, grad, avg, avgSq, nil))
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call of the seven ops, want 0", allocs)
	}
}

// A Tensor keeps its slice alive: the GC may not reuse memory that only a Tensor refers to.
func TestTensorKeepsSliceAlive(t *testing.T) {
	ctx := newCPUContext(t)
	const hidden = 1024
	twos := func(shape ...int64) llmk.Tensor { // the slice is unreachable but through the tensor
		data := make([]float32, hidden)
		for i := range data {
			data[i] = 2
		}
		return tensorF32(t, data, shape...)
	}
	x, w := twos(1, hidden), twos(hidden)
	out := make([]float32, hidden)
	y := tensorF32(t, out, 1, hidden)
	for round := 0; round < 20; round++ {
		runtime.GC()
		junk := make([][]float32, 64) // would take over freed memory, with other values
		for i := range junk {
			junk[i] = make([]float32, hidden)
			for j := range junk[i] {
				junk[i][j] = -1
			}
		}
		if err := llmk.RMSNorm(ctx, x, w, 0, y, nil); err != nil {
			t.Fatal(err)
		}
		for i, v := range out {
			if v != 2 { // 2 / rms(2) * 2
				t.Fatalf("round %d: y[%d] = %g, want 2", round, i, v)
			}
		}
		runtime.KeepAlive(junk)
	}
}

// The config constructors take the library's defaults, the values llmk.h documents.
func TestDefaultConfigs(t *testing.T) {
	rope := llmk.DefaultRopeConfig()
	wantRope := llmk.RopeConfig{Style: llmk.RopeNeoX, RotaryDim: 0, Theta: 10000}
	if rope != wantRope {
		t.Errorf("DefaultRopeConfig() = %+v, want %+v", rope, wantRope)
	}
	adamw := llmk.DefaultAdamWConfig()
	wantAdamW := llmk.AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, Step: 1}
	if adamw != wantAdamW {
		t.Errorf("DefaultAdamWConfig() = %+v, want %+v", adamw, wantAdamW)
	}
}

// The enums' names are the C constants' suffixes, as the vector manifest spells them.
func TestEnumNames(t *testing.T) {
	names := map[fmt.Stringer]string{
		llmk.ActivationIdentity: "identity", llmk.ActivationGELU: "gelu",
		llmk.ActivationGELUTanh: "gelu_tanh", llmk.ActivationSiLU: "silu", llmk.ActivationReLU: "relu",
		llmk.Activation(9): "Activation(9)",
		llmk.RopeNeoX:      "neox", llmk.RopeGPTJ: "gptj", llmk.RopeStyle(-1): "RopeStyle(-1)",
	}
	for value, name := range names {
		if value.String() != name {
			t.Errorf("%#v.String() = %q, want %q", value, value.String(), name)
		}
	}
	if int32(llmk.ActivationReLU) != 4 || int32(llmk.RopeGPTJ) != 1 {
		t.Errorf("ActivationReLU = %d, RopeGPTJ = %d; llmk.h has 4 and 1", llmk.ActivationReLU, llmk.RopeGPTJ)
	}
}
