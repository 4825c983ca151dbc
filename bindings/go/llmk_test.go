package llmk_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unsafe"

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

// The same for matmul and the MLP blocks, with a config, optional tensors and a workspace.
func TestMatmulAndMLPDoNotAllocate(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, dModel, dFF = 4, 16, 8
	x := tensorF32(t, make([]float32, tokens*dModel), tokens, dModel)
	y := tensorF32(t, make([]float32, tokens*dModel), tokens, dModel)
	w1 := tensorF32(t, make([]float32, dFF*dModel), dFF, dModel)
	w2 := tensorF32(t, make([]float32, dModel*dFF), dModel, dFF)
	b1, b2 := tensorF32(t, make([]float32, dFF), dFF), tensorF32(t, make([]float32, dModel), dModel)
	// nn.Linear: B = W1^T, the [d_model, d_ff] view of W1 with strides [1, d_model].
	w1T, err := llmk.TensorFromFloat32(make([]float32, dFF*dModel), []int64{dModel, dFF}, []int64{1, dModel})
	if err != nil {
		t.Fatal(err)
	}
	h := tensorF32(t, make([]float32, tokens*dFF), tokens, dFF)
	buf, err := llmk.NewDeviceBuffer(ctx, 2*tokens*dFF*4)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	ws := buf.Workspace()
	matmul, mlp := llmk.DefaultMatmulConfig(), llmk.DefaultMLPConfig()
	matmul.Beta, matmul.Activation = 1, llmk.ActivationGELUTanh
	must := func(op string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		must("matmul", llmk.Matmul(ctx, matmul, x, w1T, &h, &b1, h, nil))
		must("ffn", llmk.FFN(ctx, mlp, x, w1, &b1, w2, &b2, llmk.ActivationGELU, ws, y, nil))
		must("gated_mlp", llmk.GatedMLP(ctx, mlp, x, w1, w1, w2, llmk.ActivationSiLU, ws, y, nil))
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call of the three ops, want 0", allocs)
	}
}

// y = x W^T through nn.Linear's transposed view, then D = A B + D in place.
func TestMatmulLinearAndInPlace(t *testing.T) {
	ctx := newCPUContext(t)
	const m, k, n = 3, 5, 2
	xData, wData := make([]float32, m*k), make([]float32, n*k)
	for i := range xData {
		xData[i] = float32(i)*0.25 - 1
	}
	for i := range wData {
		wData[i] = 1 - float32(i)*0.125
	}
	want := make([]float64, m*n)
	for i := range want {
		for j := 0; j < k; j++ {
			want[i] += float64(xData[i/n*k+j]) * float64(wData[i%n*k+j])
		}
	}
	x := tensorF32(t, xData, m, k)
	w, err := llmk.TensorFromFloat32(wData, []int64{k, n}, []int64{1, k})
	if err != nil {
		t.Fatal(err)
	}
	yData := filled(m*n, float32(math.NaN()))
	y := tensorF32(t, yData, m, n)
	if err := llmk.Matmul(ctx, llmk.DefaultMatmulConfig(), x, w, nil, nil, y, nil); err != nil {
		t.Fatal(err)
	}
	accumulate := llmk.DefaultMatmulConfig()
	accumulate.Beta = 1
	for round, scale := range []float64{1, 2} {
		for i, v := range yData {
			if math.Abs(float64(v)-scale*want[i]) > 1e-5*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("round %d: y[%d] = %g, want %g", round, i, v, scale*want[i])
			}
		}
		if err := llmk.Matmul(ctx, accumulate, x, w, &y, nil, y, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// MatmulPathFor names an engine: the GEMV for a decode-sized nn.Linear call when asked, and a
// refusal where the GEMV cannot run (a row-major B), as Matmul itself would refuse on CUDA. The
// CPU ignores the path, and caches no plans.
func TestMatmulPathFor(t *testing.T) {
	ctx := newCPUContext(t)
	wData := make([]float32, 16*8)
	x := tensorF32(t, make([]float32, 16), 1, 16)
	y := tensorF32(t, make([]float32, 8), 1, 8)
	linear, err := llmk.TensorFromFloat32(wData, []int64{16, 8}, []int64{1, 16})
	if err != nil {
		t.Fatal(err)
	}
	rows := tensorF32(t, wData, 16, 8)
	config := llmk.DefaultMatmulConfig()
	for _, c := range []struct {
		path llmk.MatmulPath
		b    llmk.Tensor
		want []llmk.MatmulPath
	}{
		{llmk.MatmulPathAuto, linear, []llmk.MatmulPath{llmk.MatmulPathCuBLASLt, llmk.MatmulPathGEMV}},
		{llmk.MatmulPathAuto, rows, []llmk.MatmulPath{llmk.MatmulPathCuBLASLt}},
		{llmk.MatmulPathCuBLASLt, linear, []llmk.MatmulPath{llmk.MatmulPathCuBLASLt}},
		{llmk.MatmulPathGEMV, linear, []llmk.MatmulPath{llmk.MatmulPathGEMV}},
	} {
		config.Path = c.path
		got, err := llmk.MatmulPathFor(ctx, config, x, c.b, nil, nil, y)
		if err != nil || (got != c.want[0] && (len(c.want) == 1 || got != c.want[1])) {
			t.Errorf("path %v, b strides %v: %v, %v; want one of %v", c.path, c.b.Strides(), got, err, c.want)
		}
	}
	config.Path = llmk.MatmulPathGEMV
	_, err = llmk.MatmulPathFor(ctx, config, x, rows, nil, nil, y)
	e := wantStatus(t, err, llmk.StatusUnsupported)
	if !strings.Contains(e.Message, "the GEMV engine cannot take this call") {
		t.Errorf("message %q", e.Message)
	}
	if err := llmk.Matmul(ctx, config, x, rows, nil, nil, y, nil); err != nil {
		t.Errorf("the CPU ignores the path, but: %v", err)
	}
	stats, err := ctx.MatmulCacheStats()
	if err != nil || stats != (llmk.MatmulCacheStats{}) {
		t.Errorf("MatmulCacheStats() on the CPU = %+v, %v; want zeros", stats, err)
	}
	var closed *llmk.Context
	_, err = closed.MatmulCacheStats()
	wantStatus(t, err, llmk.StatusNullPointer)
}

// tuneProblem is an f16 nn.Linear GEMM with a bias and a residual, as bit patterns: A [m, k]
// row-major, the weight W [n, k] row-major (B is its [k, n] view with strides [1, k]), bias [n]
// and C [m, n] row-major. At K = 512, B's scale keeps A B near unit variance, so that GELU sees
// its curved part and its tails.
type tuneProblem struct {
	m, k, n       int64
	a, w, bias, c []uint16
}

func newTuneProblem(m, k, n int64) tuneProblem {
	rng := rand.New(rand.NewSource(m*k*n + 1))
	return tuneProblem{m: m, k: k, n: n, a: f16Random(rng, m*k, -3, 0), w: f16Random(rng, n*k, -7, -4),
		bias: f16Random(rng, n, -3, -1), c: f16Random(rng, m*n, -2, 0)}
}

// f16Random is n f16 bit patterns of random sign, exponent in [lo, hi] and mantissa: magnitudes
// from 2^lo up to 2^(hi+1), every one exact in f16.
func f16Random(rng *rand.Rand, n int64, lo, hi int) []uint16 {
	s := make([]uint16, n)
	for i := range s {
		sign := uint16(rng.Intn(2)) << 15
		exponent := uint16(lo+rng.Intn(hi-lo+1)+15) << 10
		s[i] = sign | exponent | uint16(rng.Intn(1024))
	}
	return s
}

// views are the tensors A, B and bias over the problem's data, where view puts it (Go memory, or
// a copy in device memory).
func (p tuneProblem) views(view func(data []uint16, shape, strides []int64) llmk.Tensor) (a, b, bias llmk.Tensor) {
	return view(p.a, []int64{p.m, p.k}, nil), view(p.w, []int64{p.k, p.n}, []int64{1, p.k}),
		view(p.bias, []int64{p.n}, nil)
}

func f16View(t *testing.T, data []uint16, shape, strides []int64) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromUint16(data, llmk.F16, shape, strides)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// f16NaN is an f16 quiet NaN: D starts as it, so that an element left unwritten shows.
const f16NaN = 0x7E00

// sameBits reports the first element where got and want differ in bits.
func sameBits(t *testing.T, what string, got, want []uint16) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d is %#04x (%g), Matmul wrote %#04x (%g)", what, i, got[i],
				f16ToFloat64(got[i]), want[i], f16ToFloat64(want[i]))
		}
	}
}

// On a CPU context there is nothing to tune: MatmulTune is Matmul, bit for bit (in place too), it
// reports all 0, and the context caches nothing.
func TestMatmulTuneOnCPU(t *testing.T) {
	ctx := newCPUContext(t)
	p := newTuneProblem(13, 40, 24)
	a, b, bias := p.views(func(data []uint16, shape, strides []int64) llmk.Tensor {
		return f16View(t, data, shape, strides)
	})
	mn := []int64{p.m, p.n}
	config := llmk.DefaultMatmulConfig()
	config.Activation = llmk.ActivationGELUTanh

	want, got := filled(int(p.m*p.n), uint16(f16NaN)), filled(int(p.m*p.n), uint16(f16NaN))
	if err := llmk.Matmul(ctx, config, a, b, nil, &bias, f16View(t, want, mn, nil), nil); err != nil {
		t.Fatal(err)
	}
	tuning, err := llmk.MatmulTune(ctx, config, a, b, nil, &bias, f16View(t, got, mn, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tuning != (llmk.MatmulTuning{}) {
		t.Errorf("MatmulTune on the CPU reported %+v, want all 0", tuning)
	}
	sameBits(t, "MatmulTune", got, want)

	// In place, D = gelu_tanh(alpha A B + beta D + bias): C is added once.
	config.Alpha, config.Beta = -0.75, 1.25
	want, got = append([]uint16(nil), p.c...), append([]uint16(nil), p.c...)
	wantD, gotD := f16View(t, want, mn, nil), f16View(t, got, mn, nil)
	if err := llmk.Matmul(ctx, config, a, b, &wantD, &bias, wantD, nil); err != nil {
		t.Fatal(err)
	}
	tuning, err = llmk.MatmulTune(ctx, config, a, b, &gotD, &bias, gotD, nil)
	if err != nil || tuning != (llmk.MatmulTuning{}) {
		t.Fatalf("MatmulTune in place on the CPU: %+v, %v; want all 0", tuning, err)
	}
	sameBits(t, "MatmulTune in place", got, want)

	stats, err := ctx.MatmulCacheStats()
	if err != nil || stats != (llmk.MatmulCacheStats{}) {
		t.Errorf("MatmulCacheStats() on the CPU after MatmulTune = %+v, %v; want zeros", stats, err)
	}
}

// On a CUDA device MatmulTune times cuBLASLt's candidates for an f16 nn.Linear GEMM with a bias and
// GELU_TANH, computes the D of the CPU (within the matmul vectors' tolerance), and pins its choice:
// a later Matmul of the same arguments makes no heuristic query, and computes D too. In place
// (d is c, beta 1) the candidates run into scratch memory: C is added to D once.
func TestMatmulTuneOnCUDA(t *testing.T) {
	ctx := newCUDAContext(t)
	cpu := newCPUContext(t)
	p := newTuneProblem(256, 512, 768)
	mn := []int64{p.m, p.n}
	config := llmk.DefaultMatmulConfig()
	config.Activation = llmk.ActivationGELUTanh

	onDevice := func(data []uint16) *llmk.DeviceBuffer {
		t.Helper()
		buf, err := llmk.NewDeviceBuffer(ctx, 2*len(data))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { buf.Free() })
		if err := llmk.CopyToDevice(buf, data); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	deviceView := func(data []uint16, shape, strides []int64) llmk.Tensor {
		t.Helper()
		x, err := onDevice(data).Tensor(llmk.F16, shape, strides)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	a, b, bias := p.views(deviceView)
	hostA, hostB, hostBias := p.views(func(data []uint16, shape, strides []int64) llmk.Tensor {
		return f16View(t, data, shape, strides)
	})
	dBuf := onDevice(filled(int(p.m*p.n), uint16(f16NaN)))
	d, err := dBuf.Tensor(llmk.F16, mn, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The exact A B and sum |a b| per element, for the tolerance.
	ab, absAB := make([]float64, p.m*p.n), make([]float64, p.m*p.n)
	aValues, wValues := make([]float64, len(p.a)), make([]float64, len(p.w))
	for i, h := range p.a {
		aValues[i] = f16ToFloat64(h)
	}
	for i, h := range p.w {
		wValues[i] = f16ToFloat64(h)
	}
	for i := int64(0); i < p.m; i++ {
		for j := int64(0); j < p.n; j++ {
			var sum, abs float64
			aRow, wRow := aValues[i*p.k:(i+1)*p.k], wValues[j*p.k:(j+1)*p.k]
			for l, x := range aRow {
				sum += x * wRow[l]
				abs += math.Abs(x * wRow[l])
			}
			ab[i*p.n+j], absAB[i*p.n+j] = sum, abs
		}
	}
	// check compares the device's D with the CPU's, with the matmul vectors' tolerance
	// (tests/vectors/README.md, "Tolerances"; tests/vectors/ops/matmul.py): rtol 2^-10, and an atol
	// of 1e-5 plus the largest error bound of f32 accumulation over K, the pre-activation rounded
	// to f16 before GELU_TANH, and the product rounded before C and the bias are added.
	check := func(what string, beta float64, got, want []uint16) {
		t.Helper()
		const slope, unit, accUnit, rtol = 1.13, 0x1p-11, 0x1p-24, 0x1p-10
		bound := 0.0
		for i := range ab {
			cTerm := beta * f16ToFloat64(p.c[i])
			biasValue := f16ToFloat64(p.bias[int64(i)%p.n])
			pre := ab[i] + cTerm + biasValue
			magnitude := absAB[i] + math.Abs(cTerm) + math.Abs(biasValue)
			bound = math.Max(bound, slope*(float64(p.k+2)*accUnit*magnitude+unit*math.Abs(pre)+
				unit*(math.Abs(ab[i])+math.Abs(cTerm))))
		}
		atol := 1e-5 + bound
		bad, first := 0, -1
		for i := range want {
			g, w := f16ToFloat64(got[i]), f16ToFloat64(want[i])
			if !(math.Abs(g-w) <= atol+rtol*math.Abs(w)) {
				if bad++; first < 0 {
					first = i
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d elements off (rtol %g, atol %.3g); the first, [%d, %d], is %g, the CPU's %g",
				what, bad, len(want), rtol, atol, int64(first)/p.n, int64(first)%p.n,
				f16ToFloat64(got[first]), f16ToFloat64(want[first]))
		}
	}
	checkTuning := func(what string, tuning llmk.MatmulTuning) {
		t.Helper()
		t.Logf("%s: %+v", what, tuning)
		if tuning.Candidates < 1 || tuning.Chosen < 0 || tuning.Chosen >= 8 || !(tuning.FirstUs > 0) ||
			!(tuning.ChosenUs > 0) || tuning.ChosenUs > tuning.FirstUs {
			t.Errorf("%s: %+v; want at least 1 candidate, 0 <= Chosen < 8, 0 < ChosenUs <= FirstUs", what, tuning)
		}
		if tuning.Chosen == 0 && tuning.ChosenUs != tuning.FirstUs {
			t.Errorf("%s: the heuristic's first is pinned, but ChosenUs %g != FirstUs %g", what, tuning.ChosenUs,
				tuning.FirstUs)
		}
	}
	readD := func(buf *llmk.DeviceBuffer) []uint16 {
		t.Helper()
		if err := ctx.Synchronize(nil); err != nil {
			t.Fatal(err)
		}
		out := make([]uint16, p.m*p.n)
		if err := llmk.CopyToHost(out, buf); err != nil {
			t.Fatal(err)
		}
		return out
	}

	want := make([]uint16, p.m*p.n)
	if err := llmk.Matmul(cpu, config, hostA, hostB, nil, &hostBias, f16View(t, want, mn, nil), nil); err != nil {
		t.Fatal(err)
	}
	tuning, err := llmk.MatmulTune(ctx, config, a, b, nil, &bias, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTuning("MatmulTune", tuning)
	check("MatmulTune", 0, readD(dBuf), want)

	// The tuned plan serves Matmul: no new plan, no heuristic query, and the same D.
	tuned, err := ctx.MatmulCacheStats()
	if err != nil || tuned.Plans < 1 || tuned.HeuristicQueries < 1 {
		t.Fatalf("MatmulCacheStats() after MatmulTune = %+v, %v; want a plan and its query", tuned, err)
	}
	if err := llmk.CopyToDevice(dBuf, filled(int(p.m*p.n), uint16(f16NaN))); err != nil {
		t.Fatal(err)
	}
	if err := llmk.Matmul(ctx, config, a, b, nil, &bias, d, nil); err != nil {
		t.Fatal(err)
	}
	if stats, err := ctx.MatmulCacheStats(); err != nil || stats != tuned {
		t.Errorf("MatmulCacheStats() after a Matmul of the tuned arguments = %+v, %v; want %+v as after the tuning",
			stats, err, tuned)
	}
	check("Matmul after MatmulTune", 0, readD(dBuf), want)

	// Where the call takes the GEMV there is nothing to tune: all 0, and D as Matmul computes it.
	const rows = 4
	gemv := config
	gemv.Path = llmk.MatmulPathGEMV
	aRows, err := llmk.TensorFromPointer(a.Data(), llmk.F16, []int64{rows, p.k}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dRows, err := dBuf.Tensor(llmk.F16, []int64{rows, p.n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := llmk.CopyToDevice(dBuf, filled(int(p.m*p.n), uint16(f16NaN))); err != nil {
		t.Fatal(err)
	}
	tuning, err = llmk.MatmulTune(ctx, gemv, aRows, b, nil, &bias, dRows, nil)
	if err != nil || tuning != (llmk.MatmulTuning{}) {
		t.Errorf("MatmulTune on the GEMV: %+v, %v; want all 0", tuning, err)
	}
	check("MatmulTune on the GEMV", 0, readD(dBuf)[:rows*p.n], want[:rows*p.n])

	// In place: D = gelu_tanh(A B + D + bias), with the candidates timed into scratch memory.
	config.Beta = 1
	want = append([]uint16(nil), p.c...)
	wantD := f16View(t, want, mn, nil)
	if err := llmk.Matmul(cpu, config, hostA, hostB, &wantD, &hostBias, wantD, nil); err != nil {
		t.Fatal(err)
	}
	cdBuf := onDevice(p.c)
	cd, err := cdBuf.Tensor(llmk.F16, mn, nil)
	if err != nil {
		t.Fatal(err)
	}
	tuning, err = llmk.MatmulTune(ctx, config, a, b, &cd, &bias, cd, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTuning("MatmulTune in place", tuning)
	check("MatmulTune in place", 1, readD(cdBuf), want)
}

// vLLM's fused gate_up weight: two views of one slice give what two separate slices give, which
// is (silu(x Wg^T) * (x Wu^T)) Wd^T; the workspace may be Go memory on the CPU.
func TestGatedMLPFusedWeight(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, dModel, dFF = 3, 4, 5
	xData, gateUp, down := make([]float32, tokens*dModel), make([]float32, 2*dFF*dModel), make([]float32, dModel*dFF)
	for i := range xData {
		xData[i] = (float32(i) - 5) * 0.1
	}
	for i := range gateUp {
		gateUp[i] = (float32(i*7%11) - 5) * 0.05
	}
	for i := range down {
		down[i] = (float32(i%4) - 1.5) * 0.2
	}
	x, wDown := tensorF32(t, xData, tokens, dModel), tensorF32(t, down, dModel, dFF)
	wGate := tensorF32(t, gateUp[:dFF*dModel], dFF, dModel)
	bytes, err := llmk.GatedMLPWorkspaceSize(ctx, x, wGate)
	if err != nil {
		t.Fatal(err)
	}
	scratch, _ := alignedBytes(bytes)
	run := func(wGate, wUp llmk.Tensor) []float32 {
		out := filled(tokens*dModel, float32(math.NaN()))
		err := llmk.GatedMLP(ctx, llmk.DefaultMLPConfig(), x, wGate, wUp, wDown, llmk.ActivationSiLU,
			llmk.WorkspaceFromBytes(scratch), tensorF32(t, out, tokens, dModel), nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fused := run(wGate, tensorF32(t, gateUp[dFF*dModel:], dFF, dModel))
	separate := run(tensorF32(t, append([]float32(nil), gateUp[:dFF*dModel]...), dFF, dModel),
		tensorF32(t, append([]float32(nil), gateUp[dFF*dModel:]...), dFF, dModel))
	if fmt.Sprint(fused) != fmt.Sprint(separate) {
		t.Errorf("fused %v, separate %v", fused, separate)
	}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	for tok := 0; tok < tokens; tok++ {
		h := make([]float64, dFF)
		for f := range h {
			var g, u float64
			for j := 0; j < dModel; j++ {
				g += float64(xData[tok*dModel+j]) * float64(gateUp[f*dModel+j])
				u += float64(xData[tok*dModel+j]) * float64(gateUp[(dFF+f)*dModel+j])
			}
			h[f] = silu(g) * u
		}
		for o := 0; o < dModel; o++ {
			var want float64
			for f := range h {
				want += h[f] * float64(down[o*dFF+f])
			}
			if got := float64(fused[tok*dModel+o]); math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("y[%d, %d] = %g, want %g", tok, o, got, want)
			}
		}
	}
}

func TestWorkspaces(t *testing.T) {
	ctx := newCPUContext(t)
	buf, err := llmk.NewDeviceBuffer(ctx, 64)
	if err != nil {
		t.Fatal(err)
	}
	ws := buf.Workspace()
	if ws.Data() != buf.Ptr() || ws.Len() != 64 {
		t.Errorf("buf.Workspace() = %p, %d; want %p, 64", ws.Data(), ws.Len(), buf.Ptr())
	}
	if err := buf.Free(); err != nil {
		t.Fatal(err)
	}
	if ws := buf.Workspace(); ws.Data() != nil || ws.Len() != 0 {
		t.Errorf("a freed buffer's workspace: %p, %d", ws.Data(), ws.Len())
	}
	if ws := llmk.WorkspaceFromBytes(nil); ws.Data() != nil || ws.Len() != 0 {
		t.Errorf("WorkspaceFromBytes(nil) = %p, %d", ws.Data(), ws.Len())
	}
	data := make([]byte, 48)
	if ws := llmk.WorkspaceFromBytes(data[16:]); ws.Data() != unsafe.Pointer(&data[16]) || ws.Len() != 32 {
		t.Errorf("WorkspaceFromBytes: %p, %d", ws.Data(), ws.Len())
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
	matmul := llmk.DefaultMatmulConfig()
	wantMatmul := llmk.MatmulConfig{Alpha: 1, Beta: 0, Activation: llmk.ActivationIdentity, AllowTF32: false,
		Path: llmk.MatmulPathAuto}
	if matmul != wantMatmul {
		t.Errorf("DefaultMatmulConfig() = %+v, want %+v", matmul, wantMatmul)
	}
	if mlp, want := llmk.DefaultMLPConfig(), (llmk.MLPConfig{Path: llmk.MatmulPathAuto}); mlp != want {
		t.Errorf("DefaultMLPConfig() = %+v, want %+v", mlp, want)
	}
}

// The enums' names are the C constants' suffixes, as the vector manifest spells them.
func TestEnumNames(t *testing.T) {
	names := map[fmt.Stringer]string{
		llmk.ActivationIdentity: "identity", llmk.ActivationGELU: "gelu",
		llmk.ActivationGELUTanh: "gelu_tanh", llmk.ActivationSiLU: "silu", llmk.ActivationReLU: "relu",
		llmk.Activation(9): "Activation(9)",
		llmk.RopeNeoX:      "neox", llmk.RopeGPTJ: "gptj", llmk.RopeStyle(-1): "RopeStyle(-1)",
		llmk.MatmulPathAuto: "auto", llmk.MatmulPathCuBLASLt: "cublaslt", llmk.MatmulPathGEMV: "gemv",
		llmk.MatmulPath(3):       "MatmulPath(3)",
		llmk.AttentionKernelAuto: "auto", llmk.AttentionKernelPortable: "portable",
		llmk.AttentionKernelHopper: "hopper", llmk.AttentionKernel(3): "AttentionKernel(3)",
	}
	for value, name := range names {
		if value.String() != name {
			t.Errorf("%#v.String() = %q, want %q", value, value.String(), name)
		}
	}
	if int32(llmk.MatmulPathGEMV) != 2 {
		t.Errorf("MatmulPathGEMV = %d; llmk.h has 2", llmk.MatmulPathGEMV)
	}
	if int32(llmk.AttentionKernelPortable) != 1 || int32(llmk.AttentionKernelHopper) != 2 {
		t.Errorf("AttentionKernelPortable = %d, AttentionKernelHopper = %d; llmk.h has 1 and 2",
			llmk.AttentionKernelPortable, llmk.AttentionKernelHopper)
	}
	if int32(llmk.ActivationReLU) != 4 || int32(llmk.RopeGPTJ) != 1 {
		t.Errorf("ActivationReLU = %d, RopeGPTJ = %d; llmk.h has 4 and 1", llmk.ActivationReLU, llmk.RopeGPTJ)
	}
}

// mlpTuneBlock is an f16 MLP block as bit patterns: x [tokens, dModel], the input weights
// [dFF, dModel] (w1, or wGate and wUp) and the output weight [dModel, dFF], all row-major.
type mlpTuneBlock struct {
	tokens, dModel, dFF int64
	x, wIn, wUp, wOut   []uint16
}

func newMLPTuneBlock(tokens, dModel, dFF int64) mlpTuneBlock {
	rng := rand.New(rand.NewSource(tokens*dModel*dFF + 3))
	return mlpTuneBlock{tokens: tokens, dModel: dModel, dFF: dFF, x: f16Random(rng, tokens*dModel, -3, 0),
		wIn: f16Random(rng, dFF*dModel, -7, -4), wUp: f16Random(rng, dFF*dModel, -7, -4),
		wOut: f16Random(rng, dModel*dFF, -7, -4)}
}

// run calls FFN (GELU_TANH, no biases) or GatedMLP (SiLU, separate weights) on views that view
// makes of the block's data, and a workspace of the size the op asks for on ctx.
func (b mlpTuneBlock) run(t *testing.T, ctx *llmk.Context, config llmk.MLPConfig, gated bool,
	view func(data []uint16, shape []int64) llmk.Tensor, workspace func(bytes int) llmk.Workspace,
	y llmk.Tensor) {
	t.Helper()
	x, wIn := view(b.x, []int64{b.tokens, b.dModel}), view(b.wIn, []int64{b.dFF, b.dModel})
	wOut := view(b.wOut, []int64{b.dModel, b.dFF})
	size := llmk.FFNWorkspaceSize
	if gated {
		size = llmk.GatedMLPWorkspaceSize
	}
	bytes, err := size(ctx, x, wIn)
	if err != nil {
		t.Fatal(err)
	}
	if gated {
		err = llmk.GatedMLP(ctx, config, x, wIn, view(b.wUp, []int64{b.dFF, b.dModel}), wOut,
			llmk.ActivationSiLU, workspace(bytes), y, nil)
	} else {
		err = llmk.FFN(ctx, config, x, wIn, nil, wOut, nil, llmk.ActivationGELUTanh, workspace(bytes), y, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// onCPU is the block's y on ctx, a CPU context.
func (b mlpTuneBlock) onCPU(t *testing.T, ctx *llmk.Context, config llmk.MLPConfig, gated bool) []uint16 {
	t.Helper()
	y := filled(int(b.tokens*b.dModel), uint16(f16NaN))
	b.run(t, ctx, config, gated, func(data []uint16, shape []int64) llmk.Tensor {
		return f16View(t, data, shape, nil)
	}, func(bytes int) llmk.Workspace {
		aligned, _ := alignedBytes(bytes)
		return llmk.WorkspaceFromBytes(aligned)
	}, f16View(t, y, []int64{b.tokens, b.dModel}, nil))
	return y
}

// On a CPU context MLPConfig.Tune changes nothing: the untuned call's bits.
func TestMLPTuneOnCPU(t *testing.T) {
	ctx := newCPUContext(t)
	block := newMLPTuneBlock(5, 32, 48)
	tune := llmk.DefaultMLPConfig()
	tune.Tune = true
	for _, gated := range []bool{false, true} {
		sameBits(t, fmt.Sprintf("tuned, gated %v", gated), block.onCPU(t, ctx, tune, gated),
			block.onCPU(t, ctx, llmk.DefaultMLPConfig(), gated))
	}
}

// On a CUDA device a tuned FFN or GatedMLP makes its plans (how many depends on which GEMMs share a
// key: gate and up may), untuned calls afterwards make none, query nothing and give the tuned
// call's bits, and y is near the CPU's: |gpu - cpu| <= 2^-6 (1 + |cpu|), a sanity bound (the
// engines round the intermediate to f16 at other points than the CPU's reference, 2^-11 each); the
// exact rule is the C++ suite's (tests/ops/mlp_gpu_test.cu), which runs the same tuned calls.
func TestMLPTuneOnCUDA(t *testing.T) {
	newCUDAContext(t) // skips where there is no device
	cpu := newCPUContext(t)
	block := newMLPTuneBlock(96, 256, 384)
	for _, gated := range []bool{false, true} {
		ctx := newCUDAContext(t) // its own, so that the plan counts are this block's
		var buffers []*llmk.DeviceBuffer
		alloc := func(bytes int) *llmk.DeviceBuffer {
			buf, err := llmk.NewDeviceBuffer(ctx, bytes)
			if err != nil {
				t.Fatal(err)
			}
			buffers = append(buffers, buf)
			return buf
		}
		// Each operand is copied to the device once: every call runs on the same pointers.
		views := map[*uint16]llmk.Tensor{}
		view := func(data []uint16, shape []int64) llmk.Tensor {
			if x, ok := views[&data[0]]; ok {
				return x
			}
			buf := alloc(2 * len(data))
			if err := llmk.CopyToDevice(buf, data); err != nil {
				t.Fatal(err)
			}
			x, err := buf.Tensor(llmk.F16, shape, nil)
			if err != nil {
				t.Fatal(err)
			}
			views[&data[0]] = x
			return x
		}
		var workspaceBuffer *llmk.DeviceBuffer
		workspace := func(bytes int) llmk.Workspace {
			if workspaceBuffer == nil {
				workspaceBuffer = alloc(bytes)
			}
			return workspaceBuffer.Workspace()
		}
		yBuf := alloc(int(2 * block.tokens * block.dModel))
		y, err := yBuf.Tensor(llmk.F16, []int64{block.tokens, block.dModel}, nil)
		if err != nil {
			t.Fatal(err)
		}
		run := func(config llmk.MLPConfig) []uint16 {
			t.Helper()
			out := filled(int(block.tokens*block.dModel), uint16(f16NaN))
			if err := llmk.CopyToDevice(yBuf, out); err != nil {
				t.Fatal(err)
			}
			block.run(t, ctx, config, gated, view, workspace, y)
			if err := ctx.Synchronize(nil); err != nil {
				t.Fatal(err)
			}
			if err := llmk.CopyToHost(out, yBuf); err != nil {
				t.Fatal(err)
			}
			return out
		}

		tune := llmk.DefaultMLPConfig()
		tune.Tune = true
		tuned := run(tune)
		stats, err := ctx.MatmulCacheStats()
		if err != nil || stats.Plans < 1 || stats.HeuristicQueries < stats.Plans {
			t.Fatalf("gated %v: MatmulCacheStats() after the tuned call = %+v, %v; want its plans and their queries",
				gated, stats, err)
		}
		for repeat := 0; repeat < 2; repeat++ {
			sameBits(t, fmt.Sprintf("gated %v, untuned after the tuning", gated),
				run(llmk.DefaultMLPConfig()), tuned)
		}
		if after, err := ctx.MatmulCacheStats(); err != nil || after != stats {
			t.Errorf("gated %v: MatmulCacheStats() after untuned calls = %+v, %v; want %+v", gated, after,
				err, stats)
		}
		want := block.onCPU(t, cpu, llmk.DefaultMLPConfig(), gated)
		for i := range want {
			g, w := f16ToFloat64(tuned[i]), f16ToFloat64(want[i])
			if !(math.Abs(g-w) <= 0x1p-6*(1+math.Abs(w))) {
				t.Fatalf("gated %v: y[%d] = %g, the CPU's %g", gated, i, g, w)
			}
		}
		for _, buf := range buffers {
			if err := buf.Free(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
