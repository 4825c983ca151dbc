package llmk_test

// The runner of the shared test vectors (tests/vectors/README.md): the same cases as the C++
// tests and the other bindings, with the same buffer, alias, NaN-poison and tolerance rules.

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"llmk.dev/llmk"
)

// vectorsDir is $LLMK_VECTORS_DIR, or tests/vectors of the source tree that holds this package.
func vectorsDir() string {
	if dir := os.Getenv("LLMK_VECTORS_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "tests", "vectors")
}

// vectorCase is one line of manifest.txt.
type vectorCase struct {
	name   string
	fields map[string]string
}

func (c vectorCase) has(key string) bool { return c.fields[key] != "" }

func (c vectorCase) get(key string) (string, error) {
	v, ok := c.fields[key]
	if !ok {
		return "", fmt.Errorf("no key %s", key)
	}
	return v, nil
}

func (c vectorCase) float(key string) (float64, error) {
	v, err := c.get(key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(v, 64)
}

func (c vectorCase) ints(key string) ([]int64, error) {
	v, err := c.get(key)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, item := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(item, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func loadManifest(dir string) ([]vectorCase, error) {
	f, err := os.Open(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []vectorCase
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 1<<20)
	for line := 1; scanner.Scan(); line++ {
		text := scanner.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		c := vectorCase{fields: map[string]string{}}
		for _, token := range strings.Split(text, " ") {
			key, value, ok := strings.Cut(token, "=")
			if !ok {
				return nil, fmt.Errorf("manifest.txt:%d: token %q is not key=value", line, token)
			}
			if _, dup := c.fields[key]; dup {
				return nil, fmt.Errorf("manifest.txt:%d: key %s given twice", line, key)
			}
			c.fields[key] = value
		}
		if c.name, err = c.get("name"); err != nil {
			return nil, fmt.Errorf("manifest.txt:%d: %v", line, err)
		}
		cases = append(cases, c)
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s/manifest.txt has no cases", dir)
	}
	return cases, nil
}

// hostArray is a backing buffer in host memory: f32 elements, or the bits of f16/bf16 ones.
type hostArray struct {
	dtype llmk.DType
	f32   []float32
	u16   []uint16
}

func parseDType(name string) (llmk.DType, error) {
	for _, d := range []llmk.DType{llmk.F32, llmk.F16, llmk.BF16} {
		if d.String() == name {
			return d, nil
		}
	}
	return 0, fmt.Errorf("dtype %q is not one this runner handles", name)
}

// npyDescr is how the vectors store each dtype.
var npyDescr = map[llmk.DType]string{llmk.F32: "<f4", llmk.F16: "<f2", llmk.BF16: "<u2"}

func arrayFromNpy(dtype llmk.DType, a npyArray) (hostArray, error) {
	if a.descr != npyDescr[dtype] || len(a.shape) != 1 {
		return hostArray{}, fmt.Errorf("a %v buffer needs a 1-D %s array, the file has %s of shape %v",
			dtype, npyDescr[dtype], a.descr, a.shape)
	}
	if dtype == llmk.F32 {
		return hostArray{dtype: dtype, f32: a.float32s()}, nil
	}
	return hostArray{dtype: dtype, u16: a.uint16s()}, nil
}

// nanArray is an output's fresh buffer: every element NaN, so that an unwritten one fails.
func nanArray(dtype llmk.DType, n int64) hostArray {
	a := hostArray{dtype: dtype}
	switch dtype {
	case llmk.F32:
		a.f32 = make([]float32, n)
		for i := range a.f32 {
			a.f32[i] = float32(math.NaN())
		}
	case llmk.F16, llmk.BF16:
		nan := uint16(0x7E00)
		if dtype == llmk.BF16 {
			nan = 0x7FC0
		}
		a.u16 = make([]uint16, n)
		for i := range a.u16 {
			a.u16[i] = nan
		}
	}
	return a
}

func (a hostArray) len() int { return len(a.f32) + len(a.u16) }

func (a hostArray) bytes() int { return a.len() * a.dtype.Bits() / 8 }

func (a hostArray) clone() hostArray {
	return hostArray{dtype: a.dtype, f32: append([]float32(nil), a.f32...), u16: append([]uint16(nil), a.u16...)}
}

func (a hostArray) value(i int) float64 {
	switch a.dtype {
	case llmk.F16:
		return f16ToFloat64(a.u16[i])
	case llmk.BF16:
		return bf16ToFloat64(a.u16[i])
	}
	return float64(a.f32[i])
}

// sameBits compares element i bit for bit, so that NaN equals the same NaN.
func (a hostArray) sameBits(b hostArray, i int) bool {
	if a.dtype == llmk.F32 {
		return math.Float32bits(a.f32[i]) == math.Float32bits(b.f32[i])
	}
	return a.u16[i] == b.u16[i]
}

func (a hostArray) tensor(shape, strides []int64) (llmk.Tensor, error) {
	if a.dtype == llmk.F32 {
		return llmk.TensorFromFloat32(a.f32, shape, strides)
	}
	return llmk.TensorFromUint16(a.u16, a.dtype, shape, strides)
}

// memory is where one run of the vectors keeps its backing buffers.
type memory interface {
	// place returns a buffer that holds a copy of contents.
	place(contents hostArray) (buffer, error)
}

type buffer interface {
	tensor(shape, strides []int64) (llmk.Tensor, error)
	contents() (hostArray, error)
	free() error
}

// goSlices keeps buffers in Go slices, viewed directly by the tensors: the path that the cgo
// pointer rules govern.
type goSlices struct{}

type sliceBuffer struct{ a hostArray }

func (goSlices) place(contents hostArray) (buffer, error) { return sliceBuffer{contents.clone()}, nil }

func (b sliceBuffer) tensor(shape, strides []int64) (llmk.Tensor, error) {
	return b.a.tensor(shape, strides)
}

func (b sliceBuffer) contents() (hostArray, error) { return b.a, nil }

func (sliceBuffer) free() error { return nil }

// llmkMemory keeps buffers in llmk.DeviceBuffers of the context: device memory on CUDA.
type llmkMemory struct{ ctx *llmk.Context }

type deviceBuffer struct {
	dtype llmk.DType
	n     int
	buf   *llmk.DeviceBuffer
}

func (m llmkMemory) place(contents hostArray) (buffer, error) {
	size := contents.bytes()
	if size == 0 {
		size = 1 // llmk_malloc takes no empty allocation; an empty view needs none of it
	}
	buf, err := llmk.NewDeviceBuffer(m.ctx, size)
	if err != nil {
		return nil, err
	}
	b := deviceBuffer{dtype: contents.dtype, n: contents.len(), buf: buf}
	if contents.dtype == llmk.F32 {
		err = llmk.CopyToDevice(buf, contents.f32)
	} else {
		err = llmk.CopyToDevice(buf, contents.u16)
	}
	if err != nil {
		buf.Free()
		return nil, err
	}
	return b, nil
}

func (b deviceBuffer) tensor(shape, strides []int64) (llmk.Tensor, error) {
	return b.buf.Tensor(b.dtype, shape, strides)
}

func (b deviceBuffer) contents() (hostArray, error) {
	a := hostArray{dtype: b.dtype}
	if b.dtype == llmk.F32 {
		a.f32 = make([]float32, b.n)
		return a, llmk.CopyToHost(a.f32, b.buf)
	}
	a.u16 = make([]uint16, b.n)
	return a, llmk.CopyToHost(a.u16, b.buf)
}

func (b deviceBuffer) free() error { return b.buf.Free() }

// The tensor roles of each op, named as in include/llmk.h, in argument order.
var opRoles = map[string][]string{
	"rms_norm":     {"x", "weight", "y"},
	"add_rms_norm": {"x", "residual", "weight", "y"},
	"layer_norm":   {"x", "weight", "bias", "y"},
}

// role is one tensor argument of a case; aliases (y=@x) share the role of their target.
type role struct {
	initial hostArray // the backing buffer before the op
	buf     buffer
	tensor  llmk.Tensor
}

// bufferLength is the backing buffer a view needs: 1 + sum((shape - 1) * strides), or 0.
func bufferLength(shape, strides []int64) int64 {
	n := int64(1)
	for d := range shape {
		if shape[d] == 0 {
			return 0
		}
		n += (shape[d] - 1) * strides[d]
	}
	return n
}

func (r *role) load(c vectorCase, name, dir string, mem memory) error {
	dtypeName, err := c.get(name + ".dtype")
	if err != nil {
		return err
	}
	dtype, err := parseDType(dtypeName)
	if err != nil {
		return err
	}
	shape, err := c.ints(name + ".shape")
	if err != nil {
		return err
	}
	strides, err := c.ints(name + ".strides")
	if err != nil {
		return err
	}
	if len(strides) != len(shape) {
		return fmt.Errorf("%s: %d strides for %d dimensions", name, len(strides), len(shape))
	}
	n := bufferLength(shape, strides)
	if file := c.fields[name]; file != "" {
		a, err := readNpy(filepath.Join(dir, "data", file))
		if err != nil {
			return err
		}
		if r.initial, err = arrayFromNpy(dtype, a); err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
		if int64(r.initial.len()) != n {
			return fmt.Errorf("%s: %d elements, the view needs a buffer of %d", file, r.initial.len(), n)
		}
	} else {
		r.initial = nanArray(dtype, n)
	}
	if r.buf, err = mem.place(r.initial); err != nil {
		return err
	}
	r.tensor, err = r.buf.tensor(shape, strides)
	return err
}

// check compares the view with expect[name] and the rest of the buffer with its initial bits.
func (r *role) check(t *testing.T, c vectorCase, name, dir string) {
	t.Helper()
	after, err := r.buf.contents()
	if err != nil {
		t.Fatalf("%s: reading back: %v", name, err)
	}
	shape, strides := r.tensor.Shape(), r.tensor.Strides()
	inView := make([]bool, after.len())
	if !c.has("expect." + name) {
		// An input: nothing may write to any of its elements.
		checkUnwritten(t, name, r.initial, after, inView)
		return
	}
	file := c.fields["expect."+name]
	want, err := readNpy(filepath.Join(dir, "data", file))
	if err != nil {
		t.Fatal(err)
	}
	if want.descr != "<f8" || fmt.Sprint(want.shape) != fmt.Sprint(shape) {
		t.Fatalf("%s: expected <f8 of shape %v, the file has %s of %v", file, shape, want.descr, want.shape)
	}
	rtol, err := c.float("rtol." + name)
	if err != nil {
		t.Fatal(err)
	}
	atol, err := c.float("atol." + name)
	if err != nil {
		t.Fatal(err)
	}
	expected := want.float64s()
	bad := 0
	for i, expect := range expected {
		offset, rest := int64(0), int64(i)
		for d := len(shape) - 1; d >= 0; d-- {
			offset += rest % shape[d] * strides[d]
			rest /= shape[d]
		}
		inView[offset] = true
		got := after.value(int(offset))
		finite := !math.IsNaN(got) && !math.IsInf(got, 0)
		if finite && math.Abs(got-expect) <= atol+rtol*math.Abs(expect) {
			continue
		}
		if bad++; bad <= 3 {
			t.Errorf("%s[%d] = %g, expected %g", name, i, got, expect)
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off (rtol %g, atol %g)", name, bad, len(expected), rtol, atol)
	}
	checkUnwritten(t, name, r.initial, after, inView)
}

// checkUnwritten reports the first element outside the view that differs from its initial bits:
// a gap the op wrote, or, for an input, any write at all.
func checkUnwritten(t *testing.T, name string, initial, after hostArray, inView []bool) {
	t.Helper()
	for e, skip := range inView {
		if !skip && !after.sameBits(initial, e) {
			t.Errorf("%s: buffer element %d was written (%g, initially %g)", name, e, after.value(e), initial.value(e))
			return
		}
	}
}

func runCase(t *testing.T, ctx *llmk.Context, mem memory, dir string, c vectorCase) {
	op, err := c.get("op")
	if err != nil {
		t.Fatal(err)
	}
	names, ok := opRoles[op]
	if !ok {
		t.Fatalf("unknown op %q", op)
	}
	roles := map[string]*role{}
	var owners []*role // the roles that own a buffer, each once
	for _, name := range names {
		if !c.has(name + ".shape") {
			continue // an optional tensor left out: passed as NULL
		}
		if source := c.fields[name]; strings.HasPrefix(source, "@") {
			target, ok := roles[source[1:]]
			if !ok {
				t.Fatalf("%s=%s: no such role before it", name, source)
			}
			roles[name] = target // the very same view: same pointer, shape and strides
			continue
		}
		r := &role{}
		if err := r.load(c, name, dir, mem); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() {
			if err := r.buf.free(); err != nil {
				t.Errorf("%s: free: %v", name, err)
			}
		})
		roles[name] = r
		owners = append(owners, r)
	}
	tensor := func(name string) llmk.Tensor {
		r, ok := roles[name]
		if !ok {
			t.Fatalf("the case has no %s", name)
		}
		return r.tensor
	}
	eps, err := c.float("eps")
	if err != nil {
		t.Fatal(err)
	}

	switch op {
	case "rms_norm":
		err = llmk.RMSNorm(ctx, tensor("x"), tensor("weight"), float32(eps), tensor("y"), nil)
	case "add_rms_norm":
		err = llmk.AddRMSNorm(ctx, tensor("x"), tensor("residual"), tensor("weight"), float32(eps), tensor("y"), nil)
	case "layer_norm":
		var bias *llmk.Tensor
		if r, ok := roles["bias"]; ok {
			bias = &r.tensor
		}
		err = llmk.LayerNorm(ctx, tensor("x"), tensor("weight"), bias, float32(eps), tensor("y"), nil)
	}
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if err := ctx.Synchronize(nil); err != nil {
		t.Fatalf("synchronize: %v", err)
	}

	// Each buffer once, under the name that has an expectation if one does (y of y=@x).
	for _, owner := range owners {
		checked := ""
		for _, name := range names {
			if roles[name] == owner && (checked == "" || c.has("expect."+name)) {
				checked = name
			}
		}
		owner.check(t, c, checked, dir)
	}
}

func runVectors(t *testing.T, ctx *llmk.Context, mem memory) {
	dir := vectorsDir()
	cases, err := loadManifest(dir)
	if err != nil {
		t.Fatalf("%v (set LLMK_VECTORS_DIR to the tests/vectors directory of llmk)", err)
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) { runCase(t, ctx, mem, dir, c) })
	}
}

func TestVectors(t *testing.T) {
	t.Run("cpu/go-slices", func(t *testing.T) {
		runVectors(t, newCPUContext(t), goSlices{})
	})
	t.Run("cpu/llmk-memory", func(t *testing.T) {
		ctx := newCPUContext(t)
		runVectors(t, ctx, llmkMemory{ctx})
	})
	t.Run("cuda/llmk-memory", func(t *testing.T) {
		ctx := newCUDAContext(t)
		runVectors(t, ctx, llmkMemory{ctx})
	})
}
