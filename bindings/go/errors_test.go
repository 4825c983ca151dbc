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
	// More Ps than CPUs: threads get descheduled inside calls, the runtime hands their P to
	// another thread, and goroutines move between threads far more often.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * runtime.NumCPU()))

	const hidden, goroutines, iterations = 64, 48, 400
	x := tensorF32(t, make([]float32, hidden), 1, hidden)
	weight := tensorF32(t, make([]float32, hidden), hidden)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(wrong int64) { // a weight length of this goroutine's own
			defer wg.Done()
			short, err := llmk.TensorFromFloat32(make([]float32, wrong), []int64{wrong}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			y, err := llmk.TensorFromFloat32(make([]float32, hidden), []int64{1, hidden}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			want := fmt.Sprintf("rms_norm: weight has %d elements, x rows have %d", wrong, hidden)
			for i := 0; i < iterations; i++ {
				if err := llmk.RMSNorm(ctx, x, weight, 1e-6, y, nil); err != nil {
					t.Errorf("a valid call failed: %v", err)
					return
				}
				err := llmk.RMSNorm(ctx, x, short, 1e-6, y, nil)
				var e *llmk.Error
				if !errors.As(err, &e) || e.Status != llmk.StatusShapeMismatch || e.Message != want {
					t.Errorf("iteration %d: got %v, want the message %q", i, err, want)
					return
				}
				runtime.Gosched()
			}
		}(int64(g + 1))
	}
	wg.Wait()
}
