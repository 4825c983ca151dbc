package llmk_test

// Attention and AttentionVarlen on the CPU context: the default config, refused calls (status, a
// message of the op naming the argument at fault, outputs untouched), what a query without keys
// gets, that the CPU ignores the kernel, and that the calls allocate nothing.

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"llmk.dev/llmk"
)

// Attention's sizes in these tests: 2 sequences of 3 queries over 5 keys, 4 query heads over 2 kv
// heads (GQA), head_dim 64.
const (
	aBatch, qLen, kvLen, qHeads, kvHeads, headDim = 2, 3, 5, 4, 2, 64
	sentinelBF16                                  = 0x40E0 // 7.0 in bf16
)

// alignedUint16 is n elements of Go memory starting `shift` elements past 16 bytes: attention
// wants its data on 16 bytes, which Go does not promise for a []uint16.
func alignedUint16(n, shift int) []uint16 {
	raw := make([]uint16, n+8+shift)
	start := 0
	for uintptr(unsafe.Pointer(&raw[start]))%16 != 0 {
		start++
	}
	return raw[start+shift : start+shift+n]
}

// bf16Values is n small values exact in bf16 (-0.75 to 0.75 in steps of 0.25), as bits, on 16
// bytes.
func bf16Values(n, seed int) []uint16 {
	s := alignedUint16(n, 0)
	for i := range s {
		v := float32((i*7+seed*3)%7)*0.25 - 0.75
		s[i] = uint16(math.Float32bits(v) >> 16)
	}
	return s
}

func bf16Tensor(t *testing.T, data []uint16, dtype llmk.DType, shape []int64, strides []int64) llmk.Tensor {
	t.Helper()
	x, err := llmk.TensorFromUint16(data, dtype, shape, strides)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// refusal is a call that llmk must refuse with status, with a message that starts with the op's
// name and names arg (as a whole word; "" for none).
type refusal struct {
	name   string
	call   func() error
	status llmk.Status
	arg    string
}

// checkRefusals makes each call and checks its status, its message, and that the watched slices
// (the Go memory of the call's outputs) are as they were.
func checkRefusals(t *testing.T, op string, calls []refusal, watched ...any) {
	t.Helper()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before := fmt.Sprint(watched...)
			e := wantStatus(t, c.call(), c.status)
			if !strings.HasPrefix(e.Message, op+": ") {
				t.Errorf("message %q is not one of %s", e.Message, op)
			}
			named := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(c.arg) + `($|[^A-Za-z0-9_])`)
			if c.arg != "" && !named.MatchString(e.Message) {
				t.Errorf("message %q does not name %s", e.Message, c.arg)
			}
			if after := fmt.Sprint(watched...); after != before {
				t.Errorf("the rejected call wrote to its outputs")
			}
		})
	}
}

func TestDefaultAttentionConfig(t *testing.T) {
	got := llmk.DefaultAttentionConfig()
	want := llmk.AttentionConfig{WindowLeft: -1, WindowRight: -1, Kernel: llmk.AttentionKernelAuto}
	if got != want {
		t.Errorf("DefaultAttentionConfig() = %+v, want %+v", got, want)
	}
}

func TestAttentionRejects(t *testing.T) {
	ctx := newCPUContext(t)
	qShape, kvShape := []int64{aBatch, qLen, qHeads, headDim}, []int64{aBatch, kvLen, kvHeads, headDim}
	lseShape := []int64{aBatch, qHeads, qLen}
	nq, nkv := aBatch*qLen*qHeads*headDim, aBatch*kvLen*kvHeads*headDim
	qData, kData, vData := bf16Values(nq, 1), bf16Values(nkv, 2), bf16Values(nkv, 3)
	oData := alignedUint16(nq, 0)
	for i := range oData {
		oData[i] = sentinelBF16
	}
	lseData := filled(aBatch*qHeads*qLen, float32(7))
	q := bf16Tensor(t, qData, llmk.BF16, qShape, nil)
	k := bf16Tensor(t, kData, llmk.BF16, kvShape, nil)
	v := bf16Tensor(t, vData, llmk.BF16, kvShape, nil)
	o := bf16Tensor(t, oData, llmk.BF16, qShape, nil)
	lse := tensorF32(t, lseData, lseShape...)
	config := llmk.DefaultAttentionConfig()
	call := func(ctx *llmk.Context, config llmk.AttentionConfig, q, k, v, o llmk.Tensor, lse *llmk.Tensor) func() error {
		return func() error { return llmk.Attention(ctx, config, q, k, v, o, lse, nil) }
	}

	// The same bits as another dtype, other shapes, other layouts.
	vF16 := bf16Tensor(t, vData, llmk.F16, kvShape, nil)
	shortO := bf16Tensor(t, oData, llmk.BF16, []int64{aBatch, qLen - 1, qHeads, headDim}, nil)
	shortLSE := tensorF32(t, lseData[:aBatch*qHeads*(qLen-1)], aBatch, qHeads, qLen-1)
	lseBF16 := bf16Tensor(t, alignedUint16(len(lseData), 0), llmk.BF16, lseShape, nil)
	f32 := func(n int, shape []int64) llmk.Tensor { return tensorF32(t, make([]float32, n), shape...) }
	backwardsK, err := llmk.TensorFromPointer(unsafe.Pointer(&kData[nkv/aBatch]), llmk.BF16, kvShape,
		[]int64{-int64(nkv / aBatch), kvHeads * headDim, headDim, 1})
	if err != nil {
		t.Fatal(err)
	}
	shiftedQ := bf16Tensor(t, alignedUint16(nq, 1), llmk.BF16, qShape, nil)
	row := int64(kvHeads*headDim + 4) // no multiple of 8 elements
	gappedK := bf16Tensor(t, bf16Values(int(aBatch*kvLen*row), 2), llmk.BF16, kvShape,
		[]int64{kvLen * row, row, headDim, 1})
	narrow := func(n int, shape ...int64) llmk.Tensor {
		return bf16Tensor(t, bf16Values(n, 4), llmk.BF16, shape, nil)
	}
	bad := func(change func(*llmk.AttentionConfig)) llmk.AttentionConfig {
		c := config
		change(&c)
		return c
	}
	checkRefusals(t, "attention", []refusal{
		{"nil context", call(nil, config, q, k, v, o, &lse), llmk.StatusNullPointer, "ctx"},
		{"nil data", call(ctx, config, nullTensor(t, llmk.BF16, qShape...), k, v, o, &lse),
			llmk.StatusNullPointer, "q"},
		{"f32", call(ctx, config, f32(nq, qShape), f32(nkv, kvShape), f32(nkv, kvShape), f32(nq, qShape), nil),
			llmk.StatusUnsupportedDType, "q"},
		{"v dtype", call(ctx, config, q, k, vF16, o, &lse), llmk.StatusDTypeMismatch, "v"},
		{"lse dtype", call(ctx, config, q, k, v, o, &lseBF16), llmk.StatusUnsupportedDType, "lse"},
		{"o shape", call(ctx, config, q, k, v, shortO, &lse), llmk.StatusShapeMismatch, "o"},
		{"lse shape", call(ctx, config, q, k, v, o, &shortLSE), llmk.StatusShapeMismatch, "lse"},
		{"negative stride", call(ctx, config, q, backwardsK, v, o, &lse), llmk.StatusInvalidStride, "k"},
		{"misaligned data", call(ctx, config, shiftedQ, k, v, o, &lse), llmk.StatusMisaligned, "q"},
		{"stride not a multiple of 8", call(ctx, config, q, gappedK, v, o, &lse), llmk.StatusMisaligned, "k"},
		{"head_dim 32", call(ctx, config, narrow(nq/2, aBatch, qLen, qHeads, 32),
			narrow(nkv/2, aBatch, kvLen, kvHeads, 32), narrow(nkv/2, aBatch, kvLen, kvHeads, 32),
			bf16Tensor(t, oData[:nq/2], llmk.BF16, []int64{aBatch, qLen, qHeads, 32}, nil), nil),
			llmk.StatusUnsupported, ""},
		{"o is q", call(ctx, config, o, k, v, o, &lse), llmk.StatusOverlap, "o"},
		{"scale", call(ctx, bad(func(c *llmk.AttentionConfig) { c.Scale = -1 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "scale"},
		{"NaN scale", call(ctx, bad(func(c *llmk.AttentionConfig) { c.Scale = float32(math.NaN()) }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "scale"},
		{"softcap", call(ctx, bad(func(c *llmk.AttentionConfig) { c.Softcap = -1 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "softcap"},
		{"dropout_p", call(ctx, bad(func(c *llmk.AttentionConfig) { c.DropoutP = 1 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "dropout_p"},
		{"window_left", call(ctx, bad(func(c *llmk.AttentionConfig) { c.WindowLeft = -2 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "window_left"},
		{"window_right", call(ctx, bad(func(c *llmk.AttentionConfig) { c.WindowRight = -3 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "window_right"},
		{"kernel", call(ctx, bad(func(c *llmk.AttentionConfig) { c.Kernel = 7 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "kernel"},
		{"negative kernel", call(ctx, bad(func(c *llmk.AttentionConfig) { c.Kernel = -1 }), q, k, v, o, &lse),
			llmk.StatusInvalidValue, "kernel"},
	}, oData, lseData)
	err = call(ctx, bad(func(c *llmk.AttentionConfig) { c.Kernel = 3 }), q, k, v, o, &lse)()
	if e := wantStatus(t, err, llmk.StatusInvalidValue); !strings.Contains(e.Message, "config->kernel") {
		t.Errorf("message %q does not name config->kernel", e.Message)
	}

	// The valid call writes both outputs.
	if err := llmk.Attention(ctx, config, q, k, v, o, &lse, nil); err != nil {
		t.Fatal(err)
	}
	if oData[0] == sentinelBF16 && oData[nq-1] == sentinelBF16 || lseData[0] == 7 {
		t.Errorf("the valid call did not write o and lse")
	}
}

// Three packed sequences: 3, 1 and 2 queries over 4, 0 and 3 keys.
var cuQ, cuK = []int32{0, 3, 4, 6}, []int32{0, 4, 4, 7}

// varlenTensors are q, k, v and o (sentinels) of the sequences of cuQ and cuK, with o's and an
// lse's (7s) memory.
func varlenTensors(t *testing.T) (q, k, v, o, lse llmk.Tensor, oData []uint16, lseData []float32) {
	totalQ, totalK := int64(cuQ[3]), int64(cuK[3])
	nq, nkv := int(totalQ*qHeads*headDim), int(totalK*kvHeads*headDim)
	oData = alignedUint16(nq, 0)
	for i := range oData {
		oData[i] = sentinelBF16
	}
	lseData = filled(int(qHeads*totalQ), float32(7))
	q = bf16Tensor(t, bf16Values(nq, 5), llmk.BF16, []int64{totalQ, qHeads, headDim}, nil)
	k = bf16Tensor(t, bf16Values(nkv, 6), llmk.BF16, []int64{totalK, kvHeads, headDim}, nil)
	v = bf16Tensor(t, bf16Values(nkv, 7), llmk.BF16, []int64{totalK, kvHeads, headDim}, nil)
	o = bf16Tensor(t, oData, llmk.BF16, []int64{totalQ, qHeads, headDim}, nil)
	lse = tensorF32(t, lseData, qHeads, totalQ)
	return
}

func TestAttentionVarlenRejects(t *testing.T) {
	ctx := newCPUContext(t)
	q, k, v, o, lse, oData, lseData := varlenTensors(t)
	config := llmk.DefaultAttentionConfig()
	call := func(cq, ck llmk.Tensor, maxSeqlenQ int64, lse llmk.Tensor) func() error {
		return func() error {
			return llmk.AttentionVarlen(ctx, config, q, k, v, cq, ck, maxSeqlenQ, o, &lse, nil)
		}
	}
	offsets := func(values ...int32) llmk.Tensor { return int32Tensor(t, values) }
	cq, ck := offsets(cuQ...), offsets(cuK...)
	shortLSE := tensorF32(t, lseData[:qHeads*5], qHeads, 5)
	checkRefusals(t, "attention_varlen", []refusal{
		{"nil offsets", call(nullTensor(t, llmk.I32, 4), ck, 3, lse), llmk.StatusNullPointer, "cu_seqlens_q"},
		{"i64 offsets", call(int64Tensor(t, []int64{0, 3, 4, 6}), ck, 3, lse), llmk.StatusUnsupportedDType,
			"cu_seqlens_q"},
		{"offsets of another batch", call(cq, offsets(0, 4, 7), 3, lse), llmk.StatusShapeMismatch, "cu_seqlens_k"},
		{"lse shape", call(cq, ck, 3, shortLSE), llmk.StatusShapeMismatch, "lse"},
		{"q decreasing", call(offsets(0, 3, 2, 6), ck, 3, lse), llmk.StatusInvalidValue, "cu_seqlens_q"},
		{"q not from 0", call(offsets(1, 3, 4, 6), ck, 3, lse), llmk.StatusInvalidValue, "cu_seqlens_q"},
		{"q beyond total_q", call(offsets(0, 3, 4, 7), ck, 3, lse), llmk.StatusInvalidValue, "cu_seqlens_q"},
		{"k beyond total_k", call(cq, offsets(0, 4, 8, 7), 3, lse), llmk.StatusInvalidValue, "cu_seqlens_k"},
		{"k decreasing", call(cq, offsets(0, 5, 4, 7), 3, lse), llmk.StatusInvalidValue, "cu_seqlens_k"},
		{"max_seqlen_q 0", call(cq, ck, 0, lse), llmk.StatusInvalidValue, "max_seqlen_q"},
		// The first sequence has 3 queries; the message may name the bound or the offsets.
		{"max_seqlen_q too small", call(cq, ck, 2, lse), llmk.StatusInvalidValue, ""},
	}, oData, lseData)
}

// A causal query that sees no key, and a packed sequence without keys, get o = 0 and lse = -Inf;
// the packed batch of two equal sequences is the padded batch.
func TestAttentionWithoutKeys(t *testing.T) {
	ctx := newCPUContext(t)
	config := llmk.DefaultAttentionConfig()
	config.Causal = true

	q, k, v, o, lse, oData, lseData := varlenTensors(t)
	if err := llmk.AttentionVarlen(ctx, config, q, k, v, int32Tensor(t, cuQ), int32Tensor(t, cuK), 3, o,
		&lse, nil); err != nil {
		t.Fatal(err)
	}
	totalQ, row := int(cuQ[3]), qHeads*headDim
	for h := 0; h < qHeads; h++ {
		for i := 0; i < totalQ; i++ {
			if got := lseData[h*totalQ+i]; (i == 3) != math.IsInf(float64(got), -1) || math.IsNaN(float64(got)) {
				t.Errorf("lse[%d, %d] = %g", h, i, got)
			}
		}
	}
	for _, bits := range oData[3*row : 4*row] {
		if bf16ToFloat64(bits) != 0 {
			t.Fatalf("the query without keys got o %#x, want 0", bits)
		}
	}

	// Padded: 4 queries over 2 keys, causal: queries 0 and 1 see none.
	pq := bf16Tensor(t, bf16Values(4*qHeads*headDim, 8), llmk.BF16, []int64{1, 4, qHeads, headDim}, nil)
	pk := bf16Tensor(t, bf16Values(2*kvHeads*headDim, 9), llmk.BF16, []int64{1, 2, kvHeads, headDim}, nil)
	pv := bf16Tensor(t, bf16Values(2*kvHeads*headDim, 10), llmk.BF16, []int64{1, 2, kvHeads, headDim}, nil)
	poData, plseData := alignedUint16(4*qHeads*headDim, 0), filled(qHeads*4, float32(7))
	po := bf16Tensor(t, poData, llmk.BF16, []int64{1, 4, qHeads, headDim}, nil)
	plse := tensorF32(t, plseData, 1, qHeads, 4)
	if err := llmk.Attention(ctx, config, pq, pk, pv, po, &plse, nil); err != nil {
		t.Fatal(err)
	}
	for h := 0; h < qHeads; h++ {
		for i := 0; i < 4; i++ {
			if got := plseData[h*4+i]; (i < 2) != math.IsInf(float64(got), -1) || math.IsNaN(float64(got)) {
				t.Errorf("padded lse[0, %d, %d] = %g", h, i, got)
			}
		}
	}

	// The same 4 queries packed as one sequence over its 2 keys: as padded, to a bf16 rounding.
	packedData := alignedUint16(len(poData), 0)
	packedLSE := filled(len(plseData), float32(7))
	view := func(t3 llmk.Tensor, n int64, heads int64) llmk.Tensor {
		return bf16Tensor(t, unsafe.Slice((*uint16)(t3.Data()), n*heads*headDim), llmk.BF16,
			[]int64{n, heads, headDim}, nil)
	}
	packedLSEView := tensorF32(t, packedLSE, qHeads, 4)
	if err := llmk.AttentionVarlen(ctx, config, view(pq, 4, qHeads), view(pk, 2, kvHeads), view(pv, 2, kvHeads),
		int32Tensor(t, []int32{0, 4}), int32Tensor(t, []int32{0, 2}), 4,
		bf16Tensor(t, packedData, llmk.BF16, []int64{4, qHeads, headDim}, nil), &packedLSEView, nil); err != nil {
		t.Fatal(err)
	}
	for i := range poData {
		a, b := bf16ToFloat64(packedData[i]), bf16ToFloat64(poData[i])
		if math.Abs(a-b) > math.Abs(b)/128 {
			t.Fatalf("packed o[%d] = %g, padded %g", i, a, b)
		}
	}
	for i := range plseData {
		a, b := float64(packedLSE[i]), float64(plseData[i])
		if !(a == b || math.Abs(a-b) <= 1e-5*math.Abs(b)) {
			t.Fatalf("packed lse[%d] = %g, padded %g", i, a, b)
		}
	}
}

// The kernel is a CUDA choice: a CPU context takes every AttentionKernel, AttentionKernelHopper
// included where a GPU would refuse it (head_dim 96, a soft-cap, dropout), and computes
// AttentionKernelAuto's o and lse bit for bit.
func TestAttentionKernelIgnoredOnCPU(t *testing.T) {
	ctx := newCPUContext(t)
	run := func(config llmk.AttentionConfig, dim int64) ([]uint16, []float32) {
		qShape, kvShape := []int64{aBatch, qLen, qHeads, dim}, []int64{aBatch, kvLen, kvHeads, dim}
		nq, nkv := int(aBatch*qLen*qHeads*dim), int(aBatch*kvLen*kvHeads*dim)
		oData, lseData := alignedUint16(nq, 0), filled(aBatch*qHeads*qLen, float32(7))
		for i := range oData {
			oData[i] = sentinelBF16
		}
		lse := tensorF32(t, lseData, aBatch, qHeads, qLen)
		if err := llmk.Attention(ctx, config, bf16Tensor(t, bf16Values(nq, 1), llmk.BF16, qShape, nil),
			bf16Tensor(t, bf16Values(nkv, 2), llmk.BF16, kvShape, nil),
			bf16Tensor(t, bf16Values(nkv, 3), llmk.BF16, kvShape, nil),
			bf16Tensor(t, oData, llmk.BF16, qShape, nil), &lse, nil); err != nil {
			t.Fatalf("%+v, head_dim %d: %v", config, dim, err)
		}
		if oData[0] == sentinelBF16 || lseData[0] == 7 {
			t.Fatalf("%+v, head_dim %d: o and lse not written", config, dim)
		}
		return oData, lseData
	}
	for _, dim := range []int64{64, 96} {
		for _, option := range []struct{ softcap, dropoutP float32 }{{0, 0}, {2, 0}, {0, 0.25}} {
			config := llmk.DefaultAttentionConfig()
			config.Causal, config.Softcap, config.DropoutP, config.DropoutSeed = true, option.softcap, option.dropoutP, 5
			autoO, autoLSE := run(config, dim)
			for _, kernel := range []llmk.AttentionKernel{llmk.AttentionKernelPortable, llmk.AttentionKernelHopper} {
				config.Kernel = kernel
				o, lse := run(config, dim)
				if fmt.Sprint(o) != fmt.Sprint(autoO) || fmt.Sprint(lse) != fmt.Sprint(autoLSE) {
					t.Errorf("%+v, head_dim %d: not AttentionKernelAuto's result", config, dim)
				}
			}
		}
	}
}

// Attention's calls allocate nothing on the Go heap, with their config, lse and seven views.
func TestAttentionDoesNotAllocate(t *testing.T) {
	ctx := newCPUContext(t)
	q, k, v, o, lse, _, _ := varlenTensors(t)
	cq, ck := int32Tensor(t, cuQ), int32Tensor(t, cuK)
	config := llmk.DefaultAttentionConfig()
	config.Causal, config.Softcap = true, 30
	allocs := testing.AllocsPerRun(20, func() {
		if err := llmk.AttentionVarlen(ctx, config, q, k, v, cq, ck, 3, o, &lse, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call of attention_varlen, want 0", allocs)
	}
}
