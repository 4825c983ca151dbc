package llmk_test

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"llmk.dev/llmk"
)

func TestRejectedCallsNameTheArgument(t *testing.T) {
	ctx := newCPUContext(t)
	const rows, hidden, eps = 2, 4, 1e-6
	// One buffer for x and for a y that overlaps x's second row.
	xy := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	x := tensorF32(t, xy[:rows*hidden], rows, hidden)
	overlappingY := tensorF32(t, xy[hidden:], rows, hidden)
	residualData := []float32{1, 1, 1, 1, 1, 1, 1, 1}
	residual := tensorF32(t, residualData, rows, hidden)
	weight := tensorF32(t, []float32{1, 1, 1, 1}, hidden)
	yData := make([]float32, rows*hidden)
	y := tensorF32(t, yData, rows, hidden)

	nilX, err := llmk.TensorFromPointer(nil, llmk.F32, []int64{rows, hidden}, nil)
	if err != nil {
		t.Fatal(err)
	}
	halfWeight, err := llmk.TensorFromUint16(make([]uint16, hidden), llmk.F16, []int64{hidden}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shortWeight := tensorF32(t, []float32{1, 1, 1}, hidden-1)
	oneRowY := tensorF32(t, yData[:hidden], 1, hidden)
	// The slice constructors refuse negative strides; this one leaves the check to the library.
	backwardsY, err := llmk.TensorFromPointer(unsafe.Pointer(&yData[hidden]), llmk.F32,
		[]int64{rows, hidden}, []int64{-hidden, 1})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		call    func() error
		status  llmk.Status
		message string // a part of the message that names the argument at fault
	}{
		{"nil data", func() error { return llmk.RMSNorm(ctx, nilX, weight, eps, y, nil) },
			llmk.StatusNullPointer, "rms_norm: x.data is NULL"},
		{"dtype mismatch", func() error { return llmk.RMSNorm(ctx, x, halfWeight, eps, y, nil) },
			llmk.StatusDTypeMismatch, "rms_norm: weight is f16 but x is f32"},
		{"weight length", func() error { return llmk.RMSNorm(ctx, x, shortWeight, eps, y, nil) },
			llmk.StatusShapeMismatch, "rms_norm: weight has 3 elements, x rows have 4"},
		{"y shape", func() error { return llmk.RMSNorm(ctx, x, weight, eps, oneRowY, nil) },
			llmk.StatusShapeMismatch, "rms_norm: y has extent 1 in dimension 0 but x has 2"},
		{"negative stride", func() error { return llmk.RMSNorm(ctx, x, weight, eps, backwardsY, nil) },
			llmk.StatusInvalidStride, "rms_norm: y has a negative stride -4 in dimension 0"},
		{"overlap", func() error { return llmk.RMSNorm(ctx, x, weight, eps, overlappingY, nil) },
			llmk.StatusOverlap, "rms_norm: y overlaps x"},
		{"eps", func() error { return llmk.RMSNorm(ctx, x, weight, float32(math.NaN()), y, nil) },
			llmk.StatusInvalidValue, "rms_norm: eps is"},
		{"bias length", func() error { return llmk.LayerNorm(ctx, x, weight, &shortWeight, eps, y, nil) },
			llmk.StatusShapeMismatch, "layer_norm: bias has 3 elements, x rows have 4"},
		{"residual is x", func() error { return llmk.AddRMSNorm(ctx, x, x, weight, eps, y, nil) },
			llmk.StatusOverlap, "add_rms_norm: residual overlaps x"},
		{"y is residual", func() error { return llmk.AddRMSNorm(ctx, x, residual, weight, eps, residual, nil) },
			llmk.StatusOverlap, "add_rms_norm: y overlaps residual"},
		{"residual dtype", func() error { return llmk.AddRMSNorm(ctx, x, halfWeight, weight, eps, y, nil) },
			llmk.StatusDTypeMismatch, "add_rms_norm: residual is f16 but x is f32"},
	}
	const untouched = 42
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range yData {
				yData[i] = untouched
			}
			xyBefore := append([]float32(nil), xy...)
			residualBefore := append([]float32(nil), residualData...)

			e := wantStatus(t, c.call(), c.status)
			if !strings.Contains(e.Message, c.message) {
				t.Errorf("message %q does not contain %q", e.Message, c.message)
			}
			for i, v := range yData {
				if v != untouched {
					t.Fatalf("the rejected call wrote y[%d] = %g", i, v)
				}
			}
			if fmt.Sprint(xy) != fmt.Sprint(xyBefore) || fmt.Sprint(residualData) != fmt.Sprint(residualBefore) {
				t.Fatalf("the rejected call wrote an input: x %v, residual %v", xy, residualData)
			}
		})
	}
}

func TestErrorValues(t *testing.T) {
	ctx := newCPUContext(t)
	x := tensorF32(t, make([]float32, 8), 2, 4)
	w := tensorF32(t, make([]float32, 3), 3)
	y := tensorF32(t, make([]float32, 8), 2, 4)
	err := llmk.RMSNorm(ctx, x, w, 1e-6, y, nil)

	const want = "llmk: shape mismatch: rms_norm: weight has 3 elements, x rows have 4"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if !errors.Is(err, llmk.StatusShapeMismatch) || errors.Is(err, llmk.StatusOverlap) {
		t.Errorf("errors.Is does not match by status")
	}
	wrapped := fmt.Errorf("layer 3: %w", err)
	var e *llmk.Error
	if !errors.As(wrapped, &e) || e.Status != llmk.StatusShapeMismatch {
		t.Errorf("errors.As through a wrapper: %v", e)
	}
	var status llmk.Status
	if !errors.As(wrapped, &status) || status != llmk.StatusShapeMismatch {
		t.Errorf("errors.As to a Status: %v", status)
	}

	names := map[llmk.Status]string{
		llmk.StatusSuccess:         "success",
		llmk.StatusShapeMismatch:   "shape mismatch",
		llmk.StatusCUDAContextLost: "CUDA context lost",
		llmk.StatusInternal:        "internal error",
		llmk.Status(1000):          "unknown status",
	}
	for s, name := range names {
		if s.String() != name {
			t.Errorf("Status(%d).String() = %q, want %q", int32(s), s.String(), name)
		}
	}
	if s := llmk.StatusInternal; int32(s) != 19 {
		t.Errorf("StatusInternal = %d, want 19 as in llmk.h", int32(s))
	}
}

// llmk keeps the detail message per OS thread, and a goroutine may resume on another thread
// after any cgo call. Each failing call must still report its own message, not one left on its
// thread by another goroutine, nor the "" of a call that succeeded there.
func TestErrorMessagesStayWithTheirGoroutine(t *testing.T) {
	ctx := newCPUContext(t)
	const hidden = 64
	x := tensorF32(t, make([]float32, hidden), 1, hidden)
	weight := tensorF32(t, make([]float32, hidden), hidden)
	checkMessagesPerGoroutine(t, func(g int) (valid, invalid func() error, want string, err error) {
		wrong := int64(g + 1) // a weight length of this goroutine's own
		short, err := llmk.TensorFromFloat32(make([]float32, wrong), []int64{wrong}, nil)
		if err != nil {
			return nil, nil, "", err
		}
		y, err := llmk.TensorFromFloat32(make([]float32, hidden), []int64{1, hidden}, nil)
		if err != nil {
			return nil, nil, "", err
		}
		valid = func() error { return llmk.RMSNorm(ctx, x, weight, 1e-6, y, nil) }
		invalid = func() error { return llmk.RMSNorm(ctx, x, short, 1e-6, y, nil) }
		return valid, invalid, fmt.Sprintf("rms_norm: weight has %d elements, x rows have %d", wrong, hidden), nil
	})
}

// The same through a message the CPU backend writes while running the op (an id out of range),
// after every argument check has passed.
func TestEmbeddingMessagesStayWithTheirGoroutine(t *testing.T) {
	ctx := newCPUContext(t)
	const vocab, hidden = 4, 16
	table := tensorF32(t, make([]float32, vocab*hidden), vocab, hidden)
	checkMessagesPerGoroutine(t, func(g int) (valid, invalid func() error, want string, err error) {
		good, err := llmk.TensorFromInt64([]int64{0, vocab - 1}, []int64{2}, nil)
		if err != nil {
			return nil, nil, "", err
		}
		bad, err := llmk.TensorFromInt64([]int64{1, int64(vocab + g)}, []int64{2}, nil) // an id of its own
		if err != nil {
			return nil, nil, "", err
		}
		y, err := llmk.TensorFromFloat32(make([]float32, 2*hidden), []int64{2, hidden}, nil)
		if err != nil {
			return nil, nil, "", err
		}
		valid = func() error { return llmk.Embedding(ctx, good, table, y, nil) }
		invalid = func() error { return llmk.Embedding(ctx, bad, table, y, nil) }
		return valid, invalid, fmt.Sprintf("embedding: token 1 has id %d, outside [0, %d) of table", vocab+g, vocab), nil
	})
}

// checkMessagesPerGoroutine runs many goroutines, each alternating a valid call and an invalid one
// whose message is its own, and checks every message. setup gives goroutine g its calls.
func checkMessagesPerGoroutine(t *testing.T, setup func(g int) (valid, invalid func() error, want string, err error)) {
	// More Ps than CPUs: threads get descheduled inside calls, the runtime hands their P to
	// another thread, and goroutines move between threads far more often.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * runtime.NumCPU()))

	const goroutines, iterations = 48, 400
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		valid, invalid, want, err := setup(g)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < iterations; i++ {
				if err := valid(); err != nil {
					t.Errorf("a valid call failed: %v", err)
					return
				}
				var e *llmk.Error
				if err := invalid(); !errors.As(err, &e) || e.Message != want {
					t.Errorf("iteration %d: got %v, want the message %q", i, err, want)
					return
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
}

// rejectedCall is a call that the library must refuse: with status, and with a message that
// contains every one of parts (the op's prefix and the argument at fault).
type rejectedCall struct {
	name   string
	call   func() error
	status llmk.Status
	parts  []string
}

// checkRejected makes each call and checks its status, its message, and that it left every one of
// the watched slices (the Go memory behind the call's tensors) as it was.
func checkRejected(t *testing.T, calls []rejectedCall, watched ...any) {
	t.Helper()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before := fmt.Sprint(watched...)
			e := wantStatus(t, c.call(), c.status)
			for _, part := range c.parts {
				if !strings.Contains(e.Message, part) {
					t.Errorf("message %q does not contain %q", e.Message, part)
				}
			}
			if after := fmt.Sprint(watched...); after != before {
				t.Errorf("the rejected call wrote to its tensors:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// filled is a slice of n copies of v.
func filled[E any](n int, v E) []E {
	s := make([]E, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// f16Tensor is a contiguous F16 tensor of zeros, for dtype mismatches.
func f16Tensor(t *testing.T, shape ...int64) llmk.Tensor {
	t.Helper()
	n := int64(1)
	for _, extent := range shape {
		n *= extent
	}
	x, err := llmk.TensorFromUint16(make([]uint16, n), llmk.F16, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// nullTensor is a tensor with NULL data, the nearest a Tensor value comes to a NULL argument.
func nullTensor(t *testing.T, dtype llmk.DType, shape ...int64) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromPointer(nil, dtype, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// backwards views data with the given shape and a stride of -rowStride in dimension 0, starting
// at its last row. The slice constructors refuse negative strides; this leaves the check to the
// library.
func backwards(t *testing.T, data []float32, rows, rowStride int64, shape ...int64) llmk.Tensor {
	t.Helper()
	strides := make([]int64, len(shape))
	strides[0] = -rowStride
	for d, step := len(shape)-1, int64(1); d > 0; d-- {
		strides[d] = step
		step *= shape[d]
	}
	x, err := llmk.TensorFromPointer(unsafe.Pointer(&data[(rows-1)*rowStride]), llmk.F32, shape, strides)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func int32Tensor(t *testing.T, data []int32) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromInt32(data, []int64{int64(len(data))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func int64Tensor(t *testing.T, data []int64) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromInt64(data, []int64{int64(len(data))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestBiasActivationRejects(t *testing.T) {
	ctx := newCPUContext(t)
	xData, yData := filled(8, float32(1)), filled(8, float32(7))
	x, y := tensorF32(t, xData, 2, 4), tensorF32(t, yData, 2, 4)
	bias := tensorF32(t, filled(4, float32(0.5)), 4)
	shortBias := tensorF32(t, make([]float32, 3), 3)
	halfBias := f16Tensor(t, 4)
	gelu := llmk.ActivationGELU
	call := func(ctx *llmk.Context, x llmk.Tensor, bias *llmk.Tensor, a llmk.Activation, y llmk.Tensor) func() error {
		return func() error { return llmk.BiasActivation(ctx, x, bias, a, y, nil) }
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, x, &bias, gelu, y), llmk.StatusNullPointer, []string{"bias_activation: ctx is NULL"}},
		{"nil data", call(ctx, nullTensor(t, llmk.F32, 2, 4), &bias, gelu, y), llmk.StatusNullPointer,
			[]string{"bias_activation: x.data is NULL"}},
		{"dtype mismatch", call(ctx, x, &halfBias, gelu, y), llmk.StatusDTypeMismatch, []string{"bias_activation: bias is f16 but x is f32"}},
		{"shape mismatch", call(ctx, x, &shortBias, gelu, y), llmk.StatusShapeMismatch, []string{"bias_activation: bias has 3 elements, x rows have 4"}},
		{"y shape", call(ctx, x, &bias, gelu, tensorF32(t, yData[:4], 1, 4)), llmk.StatusShapeMismatch,
			[]string{"bias_activation: y has extent 1 in dimension 0 but x has 2"}},
		{"negative stride", call(ctx, x, &bias, gelu, backwards(t, yData, 2, 4, 2, 4)), llmk.StatusInvalidStride,
			[]string{"bias_activation: y has a negative stride -4 in dimension 0"}},
		{"activation", call(ctx, x, &bias, llmk.Activation(99), y), llmk.StatusInvalidValue,
			[]string{"bias_activation: activation is 99, which is not an llmk_activation"}},
	}, xData, yData)
}

func TestGatedActivationRejects(t *testing.T) {
	ctx := newCPUContext(t)
	gateData, upData, yData := filled(8, float32(1)), filled(8, float32(2)), filled(8, float32(7))
	gate, up, y := tensorF32(t, gateData, 2, 4), tensorF32(t, upData, 2, 4), tensorF32(t, yData, 2, 4)
	silu := llmk.ActivationSiLU
	call := func(ctx *llmk.Context, gate, up llmk.Tensor, a llmk.Activation, y llmk.Tensor) func() error {
		return func() error { return llmk.GatedActivation(ctx, gate, up, a, y, nil) }
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, gate, up, silu, y), llmk.StatusNullPointer, []string{"gated_activation: ctx is NULL"}},
		{"nil data", call(ctx, gate, nullTensor(t, llmk.F32, 2, 4), silu, y), llmk.StatusNullPointer,
			[]string{"gated_activation: up.data is NULL"}},
		{"dtype mismatch", call(ctx, gate, f16Tensor(t, 2, 4), silu, y), llmk.StatusDTypeMismatch,
			[]string{"gated_activation: up is f16 but gate is f32"}},
		{"shape mismatch", call(ctx, gate, tensorF32(t, upData[:6], 2, 3), silu, y), llmk.StatusShapeMismatch,
			[]string{"gated_activation: up has extent 3 in dimension 1 but gate has 4"}},
		{"negative stride", call(ctx, gate, up, silu, backwards(t, yData, 2, 4, 2, 4)), llmk.StatusInvalidStride,
			[]string{"gated_activation: y has a negative stride -4 in dimension 0"}},
		{"activation", call(ctx, gate, up, llmk.Activation(-1), y), llmk.StatusInvalidValue,
			[]string{"gated_activation: activation is -1, which is not an llmk_activation"}},
	}, gateData, upData, yData)
}

func TestRopeRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, qHeads, kvHeads, headDim, maxPosition = 2, 2, 1, 4, 8
	positionData := []int32{0, 5}
	qData, kData := filled(tokens*qHeads*headDim, float32(1)), filled(tokens*kvHeads*headDim, float32(2))
	cacheData := filled(maxPosition*headDim, float32(0.5))
	positions := int32Tensor(t, positionData)
	q := tensorF32(t, qData, tokens, qHeads, headDim)
	k := tensorF32(t, kData, tokens, kvHeads, headDim)
	cache := tensorF32(t, cacheData, maxPosition, headDim)
	config := llmk.DefaultRopeConfig()
	call := func(ctx *llmk.Context, config llmk.RopeConfig, positions, q llmk.Tensor, k, cache *llmk.Tensor) func() error {
		return func() error { return llmk.Rope(ctx, config, positions, q, k, cache, nil) }
	}
	oddRotary := config
	oddRotary.RotaryDim = 3
	badStyle := config
	badStyle.Style = llmk.RopeStyle(7)
	halfK := f16Tensor(t, tokens, kvHeads, headDim)
	oneTokenK := tensorF32(t, kData[:kvHeads*headDim], 1, kvHeads, headDim)
	farPositions := int32Tensor(t, []int32{0, maxPosition})
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, config, positions, q, &k, nil), llmk.StatusNullPointer, []string{"rope: ctx is NULL"}},
		{"nil data", call(ctx, config, nullTensor(t, llmk.I32, tokens), q, &k, nil), llmk.StatusNullPointer,
			[]string{"rope: positions.data is NULL"}},
		{"dtype mismatch", call(ctx, config, positions, q, &halfK, nil), llmk.StatusDTypeMismatch, []string{"rope: k is f16 but q is f32"}},
		{"shape mismatch", call(ctx, config, positions, q, &oneTokenK, nil), llmk.StatusShapeMismatch, []string{"rope: k has 1 tokens, q has 2"}},
		{"negative stride", call(ctx, config, positions, backwards(t, qData, tokens, qHeads*headDim, tokens, qHeads, headDim), &k, nil),
			llmk.StatusInvalidStride, []string{"rope: q has a negative stride -8 in dimension 0"}},
		{"odd rotary_dim", call(ctx, oddRotary, positions, q, &k, nil), llmk.StatusInvalidValue, []string{"rope: rotary_dim is 3"}},
		{"style", call(ctx, badStyle, positions, q, &k, nil), llmk.StatusInvalidValue, []string{"rope: config->style is 7"}},
		{"position past the cache", call(ctx, config, farPositions, q, &k, &cache), llmk.StatusInvalidValue,
			[]string{"rope: positions[1] is 8"}},
	}, positionData, qData, kData, cacheData)
}

func TestEmbeddingRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, vocab, hidden = 3, 5, 4
	idData := []int32{4, 0, 2}
	tableData, yData := filled(vocab*hidden, float32(1)), filled(tokens*hidden, float32(7))
	ids := int32Tensor(t, idData)
	table, y := tensorF32(t, tableData, vocab, hidden), tensorF32(t, yData, tokens, hidden)
	call := func(ctx *llmk.Context, ids, table, y llmk.Tensor) func() error {
		return func() error { return llmk.Embedding(ctx, ids, table, y, nil) }
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, ids, table, y), llmk.StatusNullPointer, []string{"embedding: ctx is NULL"}},
		{"nil data", call(ctx, nullTensor(t, llmk.I32, tokens), table, y), llmk.StatusNullPointer,
			[]string{"embedding: ids.data is NULL"}},
		{"dtype mismatch", call(ctx, ids, table, f16Tensor(t, tokens, hidden)), llmk.StatusDTypeMismatch,
			[]string{"embedding: y is f16 but table is f32"}},
		{"shape mismatch", call(ctx, ids, table, tensorF32(t, yData[:2*hidden], 2, hidden)), llmk.StatusShapeMismatch,
			[]string{"embedding: y has 2 rows, ids has 3 tokens"}},
		{"negative stride", call(ctx, ids, backwards(t, tableData, vocab, hidden, vocab, hidden), y),
			llmk.StatusInvalidStride, []string{"embedding: table has a negative stride -4 in dimension 0"}},
		{"id past the vocabulary", call(ctx, int32Tensor(t, []int32{0, vocab, 1}), table, y), llmk.StatusInvalidValue,
			[]string{"embedding: token 1 has id 5"}},
		{"negative id", call(ctx, int64Tensor(t, []int64{0, 1, -1}), table, y), llmk.StatusInvalidValue,
			[]string{"embedding: token 2 has id -1"}},
	}, idData, tableData, yData)
}

func TestKVCacheWriteRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const batch, newLen, maxSeq, kvHeads, headDim = 2, 1, 3, 2, 4
	kData, vData := filled(batch*newLen*kvHeads*headDim, float32(1)), filled(batch*newLen*kvHeads*headDim, float32(2))
	seqlenData := []int32{0, 2}
	kCacheData, vCacheData := filled(batch*maxSeq*kvHeads*headDim, float32(7)), filled(batch*maxSeq*kvHeads*headDim, float32(8))
	k, v := tensorF32(t, kData, batch, newLen, kvHeads, headDim), tensorF32(t, vData, batch, newLen, kvHeads, headDim)
	seqlens := int32Tensor(t, seqlenData)
	kCache := tensorF32(t, kCacheData, batch, maxSeq, kvHeads, headDim)
	vCache := tensorF32(t, vCacheData, batch, maxSeq, kvHeads, headDim)
	call := func(ctx *llmk.Context, k, v, seqlens, kCache, vCache llmk.Tensor) func() error {
		return func() error { return llmk.KVCacheWrite(ctx, k, v, seqlens, kCache, vCache, nil) }
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, k, v, seqlens, kCache, vCache), llmk.StatusNullPointer, []string{"kv_cache_write: ctx is NULL"}},
		{"nil data", call(ctx, nullTensor(t, llmk.F32, batch, newLen, kvHeads, headDim), v, seqlens, kCache, vCache),
			llmk.StatusNullPointer, []string{"kv_cache_write: k.data is NULL"}},
		{"dtype mismatch", call(ctx, k, f16Tensor(t, batch, newLen, kvHeads, headDim), seqlens, kCache, vCache),
			llmk.StatusDTypeMismatch, []string{"kv_cache_write: v is f16 but k is f32"}},
		{"shape mismatch", call(ctx, k, v, seqlens, kCache, tensorF32(t, vCacheData[:batch*maxSeq*kvHeads*3], batch, maxSeq, kvHeads, 3)),
			llmk.StatusShapeMismatch, []string{"kv_cache_write: v_cache has extent 3 in dimension 3 but k_cache has 4"}},
		{"negative stride", call(ctx, k, v, seqlens, kCache, backwards(t, vCacheData, batch, maxSeq*kvHeads*headDim, batch, maxSeq, kvHeads, headDim)),
			llmk.StatusInvalidStride, []string{"kv_cache_write: v_cache has a negative stride -24 in dimension 0"}},
		{"sequence full", call(ctx, k, v, int32Tensor(t, []int32{0, maxSeq}), kCache, vCache), llmk.StatusInvalidValue,
			[]string{"kv_cache_write: cache_seqlens[1] is 3"}},
	}, kData, vData, seqlenData, kCacheData, vCacheData)
}

func TestPagedKVCacheWriteRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, pages, pageSize, kvHeads, headDim = 3, 2, 2, 2, 4
	kData, vData := filled(tokens*kvHeads*headDim, float32(1)), filled(tokens*kvHeads*headDim, float32(2))
	slotData := []int64{3, -1, 0}
	kCacheData, vCacheData := filled(pages*pageSize*kvHeads*headDim, float32(7)), filled(pages*pageSize*kvHeads*headDim, float32(8))
	k, v := tensorF32(t, kData, tokens, kvHeads, headDim), tensorF32(t, vData, tokens, kvHeads, headDim)
	slots := int64Tensor(t, slotData)
	kCache := tensorF32(t, kCacheData, pages, pageSize, kvHeads, headDim)
	vCache := tensorF32(t, vCacheData, pages, pageSize, kvHeads, headDim)
	call := func(ctx *llmk.Context, k, v, slots, kCache, vCache llmk.Tensor) func() error {
		return func() error { return llmk.PagedKVCacheWrite(ctx, k, v, slots, kCache, vCache, nil) }
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, k, v, slots, kCache, vCache), llmk.StatusNullPointer, []string{"paged_kv_cache_write: ctx is NULL"}},
		{"nil data", call(ctx, k, v, nullTensor(t, llmk.I64, tokens), kCache, vCache), llmk.StatusNullPointer,
			[]string{"paged_kv_cache_write: slot_mapping.data is NULL"}},
		{"dtype mismatch", call(ctx, k, v, slots, kCache, f16Tensor(t, pages, pageSize, kvHeads, headDim)),
			llmk.StatusDTypeMismatch, []string{"paged_kv_cache_write: v_cache is f16 but k is f32"}},
		{"shape mismatch", call(ctx, k, v, slots, kCache, tensorF32(t, vCacheData[:pages*pageSize*headDim], pages, pageSize, 1, headDim)),
			llmk.StatusShapeMismatch, []string{"paged_kv_cache_write: v_cache has extent 1 in dimension 2 but k_cache has 2"}},
		{"negative stride", call(ctx, backwards(t, kData, tokens, kvHeads*headDim, tokens, kvHeads, headDim), v, slots, kCache, vCache),
			llmk.StatusInvalidStride, []string{"paged_kv_cache_write: k has a negative stride -8 in dimension 0"}},
		{"slot past the cache", call(ctx, k, v, int64Tensor(t, []int64{0, pages * pageSize, 1}), kCache, vCache),
			llmk.StatusInvalidValue, []string{"paged_kv_cache_write: token 1 has slot_mapping 4"}},
	}, kData, vData, slotData, kCacheData, vCacheData)
}

func TestAdamWStepRejects(t *testing.T) {
	ctx := newCPUContext(t)
	paramData, gradData := filled(8, float32(1)), filled(8, float32(0.5))
	avgData, avgSqData := filled(8, float32(0.1)), filled(8, float32(0.2))
	param, grad := tensorF32(t, paramData, 2, 4), tensorF32(t, gradData, 2, 4)
	avg, avgSq := tensorF32(t, avgData, 2, 4), tensorF32(t, avgSqData, 2, 4)
	config := llmk.DefaultAdamWConfig()
	call := func(ctx *llmk.Context, config llmk.AdamWConfig, param, grad, avg, avgSq llmk.Tensor) func() error {
		return func() error { return llmk.AdamWStep(ctx, config, param, grad, avg, avgSq, nil) }
	}
	zeroEps := config
	zeroEps.Eps = 0
	stepZero := config
	stepZero.Step = 0
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, config, param, grad, avg, avgSq), llmk.StatusNullPointer, []string{"adamw_step: ctx is NULL"}},
		{"nil data", call(ctx, config, param, nullTensor(t, llmk.F32, 2, 4), avg, avgSq), llmk.StatusNullPointer,
			[]string{"adamw_step: grad.data is NULL"}},
		// grad may differ from param in dtype; the moments may not: F32 only.
		{"moment dtype", call(ctx, config, param, grad, f16Tensor(t, 2, 4), avgSq), llmk.StatusUnsupportedDType,
			[]string{"adamw_step: exp_avg has dtype f16"}},
		{"shape mismatch", call(ctx, config, param, grad, avg, tensorF32(t, avgSqData[:6], 2, 3)), llmk.StatusShapeMismatch,
			[]string{"adamw_step: exp_avg_sq has extent 3 in dimension 1 but param has 4"}},
		{"negative stride", call(ctx, config, backwards(t, paramData, 2, 4, 2, 4), grad, avg, avgSq), llmk.StatusInvalidStride,
			[]string{"adamw_step: param has a negative stride -4 in dimension 0"}},
		{"eps", call(ctx, zeroEps, param, grad, avg, avgSq), llmk.StatusInvalidValue, []string{"adamw_step: config->eps is 0"}},
		{"step", call(ctx, stepZero, param, grad, avg, avgSq), llmk.StatusInvalidValue, []string{"adamw_step: config->step is 0"}},
	}, paramData, gradData, avgData, avgSqData)
}

func TestMatmulRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const m, k, n = 2, 3, 4
	aData, bData := filled(m*k, float32(1)), filled(k*2*n, float32(0.5))
	cData, biasData, dData := filled(m*n, float32(2)), filled(n, float32(0.25)), filled(m*n, float32(7))
	a, b := tensorF32(t, aData, m, k), tensorF32(t, bData[:k*n], k, n)
	c, bias, d := tensorF32(t, cData, m, n), tensorF32(t, biasData, n), tensorF32(t, dData, m, n)
	config := llmk.DefaultMatmulConfig()
	config.Beta = 0.5
	call := func(ctx *llmk.Context, config llmk.MatmulConfig, a, b llmk.Tensor, c, bias *llmk.Tensor, d llmk.Tensor) func() error {
		return func() error { return llmk.Matmul(ctx, config, a, b, c, bias, d, nil) }
	}
	// B with no unit stride: every other column of a [k, 2n] buffer.
	bGaps, err := llmk.TensorFromFloat32(bData, []int64{k, n}, []int64{2 * n, 2})
	if err != nil {
		t.Fatal(err)
	}
	// D column-major: [m, n] with strides [1, m].
	dColumns, err := llmk.TensorFromFloat32(dData, []int64{m, n}, []int64{1, m})
	if err != nil {
		t.Fatal(err)
	}
	// D over A's memory: a [2, 2] A whose second row D starts on.
	shared := filled(6, float32(1))
	aShared, dShared := tensorF32(t, shared[:4], 2, 2), tensorF32(t, shared[2:], 2, 2)
	badActivation, badPath, nanAlpha, noBeta := config, config, config, config
	badActivation.Activation = llmk.Activation(99)
	badPath.Path = llmk.MatmulPath(7)
	nanAlpha.Alpha = float32(math.NaN())
	noBeta.Beta = 0
	kZero := tensorF32(t, aData[:0], m, 0)
	shortBias, narrowC := tensorF32(t, biasData[:n-1], n-1), tensorF32(t, cData[:m*(n-1)], m, n-1)
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, config, a, b, &c, &bias, d), llmk.StatusNullPointer, []string{"matmul: ctx is NULL"}},
		{"nil data", call(ctx, config, nullTensor(t, llmk.F32, m, k), b, &c, &bias, d), llmk.StatusNullPointer,
			[]string{"matmul: a.data is NULL"}},
		{"dtype mismatch", call(ctx, config, a, f16Tensor(t, k, n), &c, &bias, d), llmk.StatusDTypeMismatch,
			[]string{"matmul: b is f16 but a is f32"}},
		{"K mismatch", call(ctx, config, a, tensorF32(t, bData[:2*n], 2, n), &c, &bias, d), llmk.StatusShapeMismatch,
			[]string{"matmul: b has 2 rows, but a's K (columns) has 3"}},
		{"bias length", call(ctx, config, a, b, &c, &shortBias, d), llmk.StatusShapeMismatch,
			[]string{"matmul: bias has 3 elements, but d's N has 4"}},
		{"c shape", call(ctx, config, a, b, &narrowC, &bias, d), llmk.StatusShapeMismatch,
			[]string{"matmul: c has 3 columns, but d has 4"}},
		{"bias rank", call(ctx, config, a, b, &c, &c, d), llmk.StatusInvalidNDim, []string{"matmul: bias"}},
		{"negative stride", call(ctx, config, a, b, &c, &bias, backwards(t, dData, m, n, m, n)), llmk.StatusInvalidStride,
			[]string{"matmul: d has a negative stride -4 in dimension 0"}},
		{"no unit stride", call(ctx, config, a, bGaps, &c, &bias, d), llmk.StatusNotContiguous,
			[]string{"matmul: b is neither row-major nor column-major"}},
		{"bias with column-major d", call(ctx, noBeta, a, b, nil, &bias, dColumns), llmk.StatusUnsupported,
			[]string{"matmul: a bias needs a row-major d"}},
		{"beta without c", call(ctx, config, a, b, nil, &bias, d), llmk.StatusNullPointer,
			[]string{"matmul: c is NULL but config->beta is 0.5"}},
		{"d overlaps a", call(ctx, noBeta, aShared, tensorF32(t, bData[:4], 2, 2), nil, nil, dShared), llmk.StatusOverlap,
			[]string{"matmul: d overlaps a"}},
		{"K is 0", call(ctx, noBeta, kZero, tensorF32(t, bData[:0], 0, n), nil, nil, d), llmk.StatusUnsupported,
			[]string{"matmul: a has no columns (K is 0)"}},
		{"activation", call(ctx, badActivation, a, b, &c, &bias, d), llmk.StatusInvalidValue,
			[]string{"matmul: config->activation is 99, which is not an llmk_activation"}},
		{"path", call(ctx, badPath, a, b, &c, &bias, d), llmk.StatusInvalidValue,
			[]string{"matmul: config->path is 7, which is not an llmk_matmul_path"}},
		{"alpha", call(ctx, nanAlpha, a, b, &c, &bias, d), llmk.StatusInvalidValue,
			[]string{"matmul: config->alpha is nan"}},
	}, aData, bData, cData, biasData, dData, shared)

	// MatmulPathFor checks its arguments as Matmul does.
	pathFor := func(config llmk.MatmulConfig, a, b llmk.Tensor, c, bias *llmk.Tensor, d llmk.Tensor) func() error {
		return func() error {
			_, err := llmk.MatmulPathFor(ctx, config, a, b, c, bias, d)
			return err
		}
	}
	checkRejected(t, []rejectedCall{
		{"path_for nil data", pathFor(config, nullTensor(t, llmk.F32, m, k), b, &c, &bias, d), llmk.StatusNullPointer,
			[]string{"a.data is NULL"}},
		{"path_for dtype mismatch", pathFor(config, a, f16Tensor(t, k, n), &c, &bias, d), llmk.StatusDTypeMismatch,
			[]string{"b is f16 but a is f32"}},
		{"path_for beta without c", pathFor(config, a, b, nil, &bias, d), llmk.StatusNullPointer,
			[]string{"c is NULL but config->beta is 0.5"}},
		{"path_for path", pathFor(badPath, a, b, &c, &bias, d), llmk.StatusInvalidValue,
			[]string{"config->path is 7"}},
	}, aData, bData, cData, biasData, dData)

	// MatmulTune checks its arguments as Matmul does: the same status and message, word for word
	// (an error that is no *llmk.Error here says how they differ), and no tuning reported.
	tune := func(config llmk.MatmulConfig, a, b llmk.Tensor, c, bias *llmk.Tensor, d llmk.Tensor) func() error {
		return func() error {
			tuning, err := llmk.MatmulTune(ctx, config, a, b, c, bias, d, nil)
			if tuning != (llmk.MatmulTuning{}) {
				return fmt.Errorf("a refused MatmulTune reported %+v", tuning)
			}
			var got, want *llmk.Error
			matmulErr := llmk.Matmul(ctx, config, a, b, c, bias, d, nil)
			if !errors.As(err, &got) || !errors.As(matmulErr, &want) || *got != *want {
				return fmt.Errorf("MatmulTune: %v; Matmul: %v", err, matmulErr)
			}
			return err
		}
	}
	checkRejected(t, []rejectedCall{
		{"tune nil context", func() error {
			_, err := llmk.MatmulTune(nil, config, a, b, &c, &bias, d, nil)
			return err
		}, llmk.StatusNullPointer, []string{"matmul_tune: ctx is NULL"}},
		{"tune nil data", tune(config, nullTensor(t, llmk.F32, m, k), b, &c, &bias, d), llmk.StatusNullPointer,
			[]string{"matmul: a.data is NULL"}},
		{"tune dtype mismatch", tune(config, a, f16Tensor(t, k, n), &c, &bias, d), llmk.StatusDTypeMismatch,
			[]string{"matmul: b is f16 but a is f32"}},
		{"tune K mismatch", tune(config, a, tensorF32(t, bData[:2*n], 2, n), &c, &bias, d), llmk.StatusShapeMismatch,
			[]string{"matmul: b has 2 rows, but a's K (columns) has 3"}},
		{"tune beta without c", tune(config, a, b, nil, &bias, d), llmk.StatusNullPointer,
			[]string{"matmul: c is NULL but config->beta is 0.5"}},
		{"tune d overlaps a", tune(noBeta, aShared, tensorF32(t, bData[:4], 2, 2), nil, nil, dShared), llmk.StatusOverlap,
			[]string{"matmul: d overlaps a"}},
		{"tune K is 0", tune(noBeta, kZero, tensorF32(t, bData[:0], 0, n), nil, nil, d), llmk.StatusUnsupported,
			[]string{"matmul: a has no columns (K is 0)"}},
		{"tune path", tune(badPath, a, b, &c, &bias, d), llmk.StatusInvalidValue,
			[]string{"matmul: config->path is 7, which is not an llmk_matmul_path"}},
	}, aData, bData, cData, biasData, dData, shared)
}

// alignedBytes is n bytes of Go memory starting on 16 bytes, and the same shifted by one byte.
func alignedBytes(n int) (aligned, misaligned []byte) {
	raw := make([]byte, n+32)
	start := 0
	for uintptr(unsafe.Pointer(&raw[start]))%16 != 0 {
		start++
	}
	return raw[start : start+n], raw[start+1 : start+1+n]
}

func TestFFNRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, dModel, dFF = 2, 4, 3
	xData, yData := filled(tokens*dModel, float32(1)), filled(tokens*dModel, float32(7))
	w1Data, b1Data := filled(dFF*dModel, float32(0.5)), filled(dFF, float32(0.1))
	w2Data, b2Data := filled(dModel*dFF, float32(0.25)), filled(dModel, float32(0.2))
	x, y := tensorF32(t, xData, tokens, dModel), tensorF32(t, yData, tokens, dModel)
	w1, b1 := tensorF32(t, w1Data, dFF, dModel), tensorF32(t, b1Data, dFF)
	w2, b2 := tensorF32(t, w2Data, dModel, dFF), tensorF32(t, b2Data, dModel)
	config := llmk.DefaultMLPConfig()
	bytes, err := llmk.FFNWorkspaceSize(ctx, x, w1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes < tokens*dFF*4 {
		t.Fatalf("FFNWorkspaceSize = %d, less than the %d bytes of the intermediate", bytes, tokens*dFF*4)
	}
	scratch, misaligned := alignedBytes(bytes)
	ws := llmk.WorkspaceFromBytes(scratch)
	call := func(ctx *llmk.Context, config llmk.MLPConfig, x, w1 llmk.Tensor, b1 *llmk.Tensor, w2 llmk.Tensor,
		b2 *llmk.Tensor, a llmk.Activation, ws llmk.Workspace, y llmk.Tensor) func() error {
		return func() error { return llmk.FFN(ctx, config, x, w1, b1, w2, b2, a, ws, y, nil) }
	}
	gelu := llmk.ActivationGELU
	if err := call(ctx, config, x, w1, &b1, w2, &b2, gelu, ws, y)(); err != nil {
		t.Fatalf("the valid call: %v", err)
	}
	for i := range yData {
		yData[i] = 7
	}
	badPath := config
	badPath.Path = llmk.MatmulPath(5)
	// y over the workspace: the workspace viewed as the output too.
	yOnScratch, err := llmk.TensorFromPointer(unsafe.Pointer(&scratch[0]), llmk.F32, []int64{tokens, dModel}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, config, x, w1, &b1, w2, &b2, gelu, ws, y), llmk.StatusNullPointer, []string{"ffn: ctx is NULL"}},
		{"nil data", call(ctx, config, nullTensor(t, llmk.F32, tokens, dModel), w1, &b1, w2, &b2, gelu, ws, y),
			llmk.StatusNullPointer, []string{"ffn: x.data is NULL"}},
		{"dtype mismatch", call(ctx, config, x, w1, &b1, f16Tensor(t, dModel, dFF), &b2, gelu, ws, y),
			llmk.StatusDTypeMismatch, []string{"ffn: w2 is f16 but x is f32"}},
		{"w1 columns", call(ctx, config, x, tensorF32(t, w1Data[:dFF*3], dFF, 3), &b1, w2, &b2, gelu, ws, y),
			llmk.StatusShapeMismatch, []string{"ffn: w1 has 3 columns (in_features), x has 4 (d_model)"}},
		{"w2 shape", call(ctx, config, x, w1, &b1, tensorF32(t, w2Data[:dModel*2], dModel, 2), &b2, gelu, ws, y),
			llmk.StatusShapeMismatch, []string{"ffn: w2 is [4, 2]; it must be [d_model, d_ff] = [4, 3]"}},
		{"b1 length", call(ctx, config, x, w1, &b2, w2, &b2, gelu, ws, y),
			llmk.StatusShapeMismatch, []string{"ffn: b1 has 4 elements; it must have d_ff = 3"}},
		{"negative stride", call(ctx, config, x, w1, &b1, w2, &b2, gelu, ws, backwards(t, yData, tokens, dModel, tokens, dModel)),
			llmk.StatusInvalidStride, []string{"ffn: y has a negative stride -4 in dimension 0"}},
		{"activation", call(ctx, config, x, w1, &b1, w2, &b2, llmk.Activation(99), ws, y), llmk.StatusInvalidValue,
			[]string{"ffn: activation is 99, which is not an llmk_activation"}},
		{"path", call(ctx, badPath, x, w1, &b1, w2, &b2, gelu, ws, y), llmk.StatusInvalidValue,
			[]string{"ffn: config->path is 5, which is not an llmk_matmul_path"}},
		{"no workspace", call(ctx, config, x, w1, &b1, w2, &b2, gelu, llmk.Workspace{}, y), llmk.StatusNullPointer,
			[]string{"ffn: workspace is NULL"}},
		{"short workspace", call(ctx, config, x, w1, &b1, w2, &b2, gelu, llmk.WorkspaceFromBytes(scratch[:bytes-1]), y),
			llmk.StatusInvalidValue, []string{fmt.Sprintf("ffn: workspace_bytes is %d; these shapes need %d", bytes-1, bytes)}},
		{"misaligned workspace", call(ctx, config, x, w1, &b1, w2, &b2, gelu, llmk.WorkspaceFromBytes(misaligned), y),
			llmk.StatusMisaligned, []string{"ffn: workspace", "is not aligned to 16 bytes"}},
		{"negative workspace", call(ctx, config, x, w1, &b1, w2, &b2, gelu, llmk.WorkspaceFromPointer(unsafe.Pointer(&scratch[0]), -1), y),
			llmk.StatusInvalidValue, []string{"ffn: workspace has -1 bytes"}},
		{"y over the workspace", call(ctx, config, x, w1, &b1, w2, &b2, gelu, ws, yOnScratch), llmk.StatusOverlap,
			[]string{"ffn: y overlaps workspace"}},
	}, xData, yData, w1Data, b1Data, w2Data, b2Data)

	checkRejected(t, []rejectedCall{
		{"size: nil context", func() error { _, err := llmk.FFNWorkspaceSize(nil, x, w1); return err },
			llmk.StatusNullPointer, []string{"ffn_workspace_size: ctx is NULL"}},
		{"size: w1 columns", func() error { _, err := llmk.FFNWorkspaceSize(ctx, x, w2); return err },
			llmk.StatusShapeMismatch, []string{"ffn_workspace_size: w1 has 3 columns (in_features), x has 4 (d_model)"}},
	})
}

func TestGatedMLPRejects(t *testing.T) {
	ctx := newCPUContext(t)
	const tokens, dModel, dFF = 2, 4, 3
	xData, yData := filled(tokens*dModel, float32(1)), filled(tokens*dModel, float32(7))
	gateUpData, downData := filled(2*dFF*dModel, float32(0.5)), filled(dModel*dFF, float32(0.25))
	x, y := tensorF32(t, xData, tokens, dModel), tensorF32(t, yData, tokens, dModel)
	wGate, wUp := tensorF32(t, gateUpData[:dFF*dModel], dFF, dModel), tensorF32(t, gateUpData[dFF*dModel:], dFF, dModel)
	wDown := tensorF32(t, downData, dModel, dFF)
	config := llmk.DefaultMLPConfig()
	bytes, err := llmk.GatedMLPWorkspaceSize(ctx, x, wGate)
	if err != nil {
		t.Fatal(err)
	}
	if bytes < 2*tokens*dFF*4 {
		t.Fatalf("GatedMLPWorkspaceSize = %d, less than the %d bytes of [gate | up]", bytes, 2*tokens*dFF*4)
	}
	buf, err := llmk.NewDeviceBuffer(ctx, bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	ws := buf.Workspace()
	call := func(ctx *llmk.Context, config llmk.MLPConfig, x, wGate, wUp, wDown llmk.Tensor, a llmk.Activation,
		ws llmk.Workspace, y llmk.Tensor) func() error {
		return func() error { return llmk.GatedMLP(ctx, config, x, wGate, wUp, wDown, a, ws, y, nil) }
	}
	silu := llmk.ActivationSiLU
	if err := call(ctx, config, x, wGate, wUp, wDown, silu, ws, y)(); err != nil {
		t.Fatalf("the valid call: %v", err)
	}
	for i := range yData {
		yData[i] = 7
	}
	short := llmk.WorkspaceFromPointer(buf.Ptr(), bytes-1)
	checkRejected(t, []rejectedCall{
		{"nil context", call(nil, config, x, wGate, wUp, wDown, silu, ws, y), llmk.StatusNullPointer,
			[]string{"gated_mlp: ctx is NULL"}},
		{"nil data", call(ctx, config, x, wGate, nullTensor(t, llmk.F32, dFF, dModel), wDown, silu, ws, y),
			llmk.StatusNullPointer, []string{"gated_mlp: w_up.data is NULL"}},
		{"dtype mismatch", call(ctx, config, x, f16Tensor(t, dFF, dModel), wUp, wDown, silu, ws, y),
			llmk.StatusDTypeMismatch, []string{"gated_mlp: w_gate is f16 but x is f32"}},
		{"w_up rows", call(ctx, config, x, wGate, tensorF32(t, gateUpData[:2*dModel], 2, dModel), wDown, silu, ws, y),
			llmk.StatusShapeMismatch, []string{"gated_mlp: w_up"}},
		{"w_down shape", call(ctx, config, x, wGate, wUp, tensorF32(t, downData[:dModel*2], dModel, 2), silu, ws, y),
			llmk.StatusShapeMismatch, []string{"gated_mlp: w_down is [4, 2]; it must be [d_model, d_ff] = [4, 3]"}},
		{"negative stride", call(ctx, config, backwards(t, xData, tokens, dModel, tokens, dModel), wGate, wUp, wDown, silu, ws, y),
			llmk.StatusInvalidStride, []string{"gated_mlp: x has a negative stride -4 in dimension 0"}},
		{"activation", call(ctx, config, x, wGate, wUp, wDown, llmk.Activation(-2), ws, y), llmk.StatusInvalidValue,
			[]string{"gated_mlp: activation is -2, which is not an llmk_activation"}},
		{"short workspace", call(ctx, config, x, wGate, wUp, wDown, silu, short, y), llmk.StatusInvalidValue,
			[]string{fmt.Sprintf("gated_mlp: workspace_bytes is %d; these shapes need %d", bytes-1, bytes)}},
		{"workspace over w_up", call(ctx, config, x, wGate, wUp, wDown, silu,
			llmk.WorkspaceFromPointer(unsafe.Pointer(&gateUpData[0]), bytes), y),
			llmk.StatusOverlap, []string{"gated_mlp: workspace overlaps w_gate"}},
	}, xData, yData, gateUpData, downData)
}
