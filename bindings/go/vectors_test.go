package llmk_test

// The runner of the shared test vectors (tests/vectors/README.md): the same cases as the C++
// tests (tests/common/vectors.cpp) and the other bindings, with the same buffer, view, NaN-poison
// and tolerance rules: an expected infinity (the lse of an attention query that sees no key)
// matches only the same infinity, and NaN never passes. FFN and GatedMLP get a workspace of the
// size their size query returns, from llmk_malloc on the context, every byte 0xff (NaN in each
// float dtype); matmul cases also check what MatmulPathFor says of the call.

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

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
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", key, err)
	}
	return f, nil
}

// integer parses an integer scalar, accepting the float spelling of a whole number ("64.0") as
// the C++ runner does.
func (c vectorCase) integer(key string) (int64, error) {
	v, err := c.get(key)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s=%s is not an integer", key, v)
	}
	return int64(f), nil
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

// enum is the constant among values whose String is the case's value of key (activation=silu).
func enum[E fmt.Stringer](c vectorCase, key string, values ...E) (E, error) {
	name, err := c.get(key)
	if err != nil {
		return values[0], err
	}
	for _, v := range values {
		if v.String() == name {
			return v, nil
		}
	}
	return values[0], fmt.Errorf("%s=%s names no constant", key, name)
}

// configFields sets the fields of an op's config struct that a case gives; the others keep the
// library's defaults. The first parse error sticks.
type configFields struct {
	c   vectorCase
	err error
}

func (f *configFields) float(key string, field *float64) {
	if f.err == nil && f.c.has(key) {
		*field, f.err = f.c.float(key)
	}
}

func (f *configFields) int32(key string, field *int32) {
	if f.err == nil && f.c.has(key) {
		var n int64
		if n, f.err = f.c.integer(key); f.err == nil && n != int64(int32(n)) {
			f.err = fmt.Errorf("%s=%d does not fit in an int32", key, n)
		}
		*field = int32(n)
	}
}

func (f *configFields) int64(key string, field *int64) {
	if f.err == nil && f.c.has(key) {
		*field, f.err = f.c.integer(key)
	}
}

func (f *configFields) uint32(key string, field *uint32) {
	if f.err == nil && f.c.has(key) {
		var n int64
		if n, f.err = f.c.integer(key); f.err == nil && (n < 0 || n > math.MaxUint32) {
			f.err = fmt.Errorf("%s=%d does not fit in a uint32", key, n)
		}
		*field = uint32(n)
	}
}

// uint64 parses a uint64 field; the vectors keep such values below 2^53, so that they survive a
// float64 on their way (as integer accepts).
// uint64 parses the whole unsigned range (dropout_seed goes above 2^63), never through a float64.
func (f *configFields) uint64(key string, field *uint64) {
	if f.err == nil && f.c.has(key) {
		v, _ := f.c.get(key)
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			f.err = fmt.Errorf("%s=%s is not an unsigned 64-bit integer", key, v)
			return
		}
		*field = n
	}
}

func (f *configFields) float32(key string, field *float32) {
	if f.err == nil && f.c.has(key) {
		var v float64
		v, f.err = f.c.float(key)
		*field = float32(v)
	}
}

// flag sets a bool field from a 0/1 key (allow_tf32=1).
func (f *configFields) flag(key string, field *bool) {
	if f.err == nil && f.c.has(key) {
		var n int64
		if n, f.err = f.c.integer(key); f.err == nil && n != 0 && n != 1 {
			f.err = fmt.Errorf("%s=%d is not 0 or 1", key, n)
		}
		*field = n == 1
	}
}

func matmulPath(c vectorCase) (llmk.MatmulPath, error) {
	return enum(c, "path", llmk.MatmulPathAuto, llmk.MatmulPathCuBLASLt, llmk.MatmulPathGEMV)
}

func matmulConfig(c vectorCase) (llmk.MatmulConfig, error) {
	config := llmk.DefaultMatmulConfig()
	f := configFields{c: c}
	f.float32("alpha", &config.Alpha)
	f.float32("beta", &config.Beta)
	if f.err == nil && c.has("activation") {
		config.Activation, f.err = activation(c)
	}
	f.flag("allow_tf32", &config.AllowTF32)
	if f.err == nil && c.has("path") {
		config.Path, f.err = matmulPath(c)
	}
	return config, f.err
}

func mlpConfig(c vectorCase) (llmk.MLPConfig, error) {
	config := llmk.DefaultMLPConfig()
	f := configFields{c: c}
	f.flag("allow_tf32", &config.AllowTF32)
	if f.err == nil && c.has("path") {
		config.Path, f.err = matmulPath(c)
	}
	return config, f.err
}

func ropeConfig(c vectorCase) (llmk.RopeConfig, error) {
	config := llmk.DefaultRopeConfig()
	f := configFields{c: c}
	if c.has("style") {
		config.Style, f.err = enum(c, "style", llmk.RopeNeoX, llmk.RopeGPTJ)
	}
	f.int32("rotary_dim", &config.RotaryDim)
	f.float("theta", &config.Theta)
	f.float("llama3_factor", &config.Llama3Factor)
	f.float("llama3_low_freq_factor", &config.Llama3LowFreqFactor)
	f.float("llama3_high_freq_factor", &config.Llama3HighFreqFactor)
	f.float("llama3_original_max_position", &config.Llama3OriginalMaxPosition)
	return config, f.err
}

func adamWConfig(c vectorCase) (llmk.AdamWConfig, error) {
	config := llmk.DefaultAdamWConfig()
	f := configFields{c: c}
	f.float("lr", &config.LR)
	f.float("beta1", &config.Beta1)
	f.float("beta2", &config.Beta2)
	f.float("eps", &config.Eps)
	f.float("weight_decay", &config.WeightDecay)
	f.int64("step", &config.Step)
	return config, f.err
}

func attentionConfig(c vectorCase) (llmk.AttentionConfig, error) {
	config := llmk.DefaultAttentionConfig()
	f := configFields{c: c}
	f.float32("scale", &config.Scale)
	f.flag("causal", &config.Causal)
	f.int32("window_left", &config.WindowLeft)
	f.int32("window_right", &config.WindowRight)
	f.float32("softcap", &config.Softcap)
	f.float32("dropout_p", &config.DropoutP)
	f.uint32("dropout_offset", &config.DropoutOffset)
	f.uint64("dropout_seed", &config.DropoutSeed)
	return config, f.err
}

func activation(c vectorCase) (llmk.Activation, error) {
	return enum(c, "activation", llmk.ActivationIdentity, llmk.ActivationGELU,
		llmk.ActivationGELUTanh, llmk.ActivationSiLU, llmk.ActivationReLU)
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

// hostArray is a backing buffer in host memory, in the Go type that holds its dtype: f32
// elements, the bits of f16/bf16 ones, or i32/i64 ones. Exactly one slice is in use.
type hostArray struct {
	dtype llmk.DType
	f32   []float32
	u16   []uint16
	i32   []int32
	i64   []int64
}

var vectorDTypes = []llmk.DType{llmk.F32, llmk.F16, llmk.BF16, llmk.I32, llmk.I64}

func parseDType(name string) (llmk.DType, error) {
	for _, d := range vectorDTypes {
		if d.String() == name {
			return d, nil
		}
	}
	return 0, fmt.Errorf("dtype %q is not one this runner handles", name)
}

// npyDescr is how the vectors store each dtype.
var npyDescr = map[llmk.DType]string{
	llmk.F32: "<f4", llmk.F16: "<f2", llmk.BF16: "<u2", llmk.I32: "<i4", llmk.I64: "<i8",
}

func arrayFromNpy(dtype llmk.DType, a npyArray) (hostArray, error) {
	if a.descr != npyDescr[dtype] || len(a.shape) != 1 {
		return hostArray{}, fmt.Errorf("a %v buffer needs a 1-D %s array, the file has %s of shape %v",
			dtype, npyDescr[dtype], a.descr, a.shape)
	}
	h := hostArray{dtype: dtype}
	switch dtype {
	case llmk.F32:
		h.f32 = a.float32s()
	case llmk.F16, llmk.BF16:
		h.u16 = a.uint16s()
	case llmk.I32:
		h.i32 = a.int32s()
	case llmk.I64:
		h.i64 = a.int64s()
	}
	return h, nil
}

// makeArray is a zeroed array of n elements.
func makeArray(dtype llmk.DType, n int64) hostArray {
	a := hostArray{dtype: dtype}
	switch dtype {
	case llmk.F16, llmk.BF16:
		a.u16 = make([]uint16, n)
	case llmk.I32:
		a.i32 = make([]int32, n)
	case llmk.I64:
		a.i64 = make([]int64, n)
	default:
		a.f32 = make([]float32, n)
	}
	return a
}

// nanArray is an output's fresh buffer: every element NaN, so that an unwritten one fails.
func nanArray(dtype llmk.DType, n int64) (hostArray, error) {
	a := makeArray(dtype, n)
	switch dtype {
	case llmk.F32:
		for i := range a.f32 {
			a.f32[i] = float32(math.NaN())
		}
	case llmk.F16, llmk.BF16:
		nan := uint16(0x7E00)
		if dtype == llmk.BF16 {
			nan = 0x7FC0
		}
		for i := range a.u16 {
			a.u16[i] = nan
		}
	default:
		return hostArray{}, fmt.Errorf("an output of dtype %v has no NaN to start from", dtype)
	}
	return a, nil
}

func (a hostArray) len() int { return len(a.f32) + len(a.u16) + len(a.i32) + len(a.i64) }

func (a hostArray) bytes() int { return a.len() * a.dtype.Bits() / 8 }

func (a hostArray) clone() hostArray {
	return hostArray{
		dtype: a.dtype,
		f32:   append([]float32(nil), a.f32...),
		u16:   append([]uint16(nil), a.u16...),
		i32:   append([]int32(nil), a.i32...),
		i64:   append([]int64(nil), a.i64...),
	}
}

// alignedClone is a copy of a whose first element lies on 16 bytes.
func (a hostArray) alignedClone() hostArray {
	c := hostArray{dtype: a.dtype}
	switch {
	case a.f32 != nil:
		c.f32 = alignedSlice(a.f32)
	case a.u16 != nil:
		c.u16 = alignedSlice(a.u16)
	case a.i32 != nil:
		c.i32 = alignedSlice(a.i32)
	case a.i64 != nil:
		c.i64 = alignedSlice(a.i64)
	}
	return c
}

// alignedSlice copies s into a window of a larger allocation that starts on 16 bytes (nil for an
// empty s, as clone gives).
func alignedSlice[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	var zero E
	size := int(unsafe.Sizeof(zero))
	spare := 16 / size
	raw := make([]E, len(s)+spare)
	start := 0
	for uintptr(unsafe.Pointer(&raw[start]))%16 != 0 {
		start++
	}
	out := raw[start : start+len(s) : start+len(s)]
	copy(out, s)
	return out
}

func (a hostArray) value(i int) float64 {
	switch a.dtype {
	case llmk.F16:
		return f16ToFloat64(a.u16[i])
	case llmk.BF16:
		return bf16ToFloat64(a.u16[i])
	case llmk.I32:
		return float64(a.i32[i])
	case llmk.I64:
		return float64(a.i64[i])
	}
	return float64(a.f32[i])
}

// bits is element i's bit pattern, so that a NaN compares equal to the same NaN.
func (a hostArray) bits(i int) uint64 {
	switch a.dtype {
	case llmk.F16, llmk.BF16:
		return uint64(a.u16[i])
	case llmk.I32:
		return uint64(uint32(a.i32[i]))
	case llmk.I64:
		return uint64(a.i64[i])
	}
	return uint64(math.Float32bits(a.f32[i]))
}

// tensor views the array from its element offset.
func (a hostArray) tensor(offset int64, shape, strides []int64) (llmk.Tensor, error) {
	if offset < 0 || offset > int64(a.len()) {
		return llmk.Tensor{}, fmt.Errorf("offset %d outside a buffer of %d elements", offset, a.len())
	}
	switch a.dtype {
	case llmk.F16, llmk.BF16:
		return llmk.TensorFromUint16(a.u16[offset:], a.dtype, shape, strides)
	case llmk.I32:
		return llmk.TensorFromInt32(a.i32[offset:], shape, strides)
	case llmk.I64:
		return llmk.TensorFromInt64(a.i64[offset:], shape, strides)
	}
	return llmk.TensorFromFloat32(a.f32[offset:], shape, strides)
}

func (a hostArray) copyToDevice(dst *llmk.DeviceBuffer) error {
	switch a.dtype {
	case llmk.F16, llmk.BF16:
		return llmk.CopyToDevice(dst, a.u16)
	case llmk.I32:
		return llmk.CopyToDevice(dst, a.i32)
	case llmk.I64:
		return llmk.CopyToDevice(dst, a.i64)
	}
	return llmk.CopyToDevice(dst, a.f32)
}

// copyFromDevice fills a, whose slice has its length already, from src.
func (a hostArray) copyFromDevice(src *llmk.DeviceBuffer) error {
	switch a.dtype {
	case llmk.F16, llmk.BF16:
		return llmk.CopyToHost(a.u16, src)
	case llmk.I32:
		return llmk.CopyToHost(a.i32, src)
	case llmk.I64:
		return llmk.CopyToHost(a.i64, src)
	}
	return llmk.CopyToHost(a.f32, src)
}

// memory is where one run of the vectors keeps its backing buffers.
type memory interface {
	// place returns a buffer that holds a copy of contents.
	place(contents hostArray) (buffer, error)
}

type buffer interface {
	// tensor views the buffer from its element offset, in the buffer's dtype.
	tensor(offset int64, shape, strides []int64) (llmk.Tensor, error)
	contents() (hostArray, error)
	free() error
}

// goSlices keeps buffers in Go slices, viewed directly by the tensors: the path that the cgo
// pointer rules govern.
type goSlices struct{}

type sliceBuffer struct{ a hostArray }

// place copies contents into Go memory that starts on 16 bytes: Go promises only the element
// alignment, and attention takes no less than 16 bytes.
func (goSlices) place(contents hostArray) (buffer, error) {
	return sliceBuffer{contents.alignedClone()}, nil
}

func (b sliceBuffer) tensor(offset int64, shape, strides []int64) (llmk.Tensor, error) {
	return b.a.tensor(offset, shape, strides)
}

func (b sliceBuffer) contents() (hostArray, error) { return b.a, nil }

func (sliceBuffer) free() error { return nil }

// llmkMemory keeps buffers in llmk.DeviceBuffers of the context: device memory on CUDA.
type llmkMemory struct{ ctx *llmk.Context }

type deviceBuffer struct {
	dtype llmk.DType
	n     int64 // elements
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
	if err := contents.copyToDevice(buf); err != nil {
		buf.Free()
		return nil, err
	}
	return deviceBuffer{dtype: contents.dtype, n: int64(contents.len()), buf: buf}, nil
}

func (b deviceBuffer) tensor(offset int64, shape, strides []int64) (llmk.Tensor, error) {
	return b.buf.TensorAt(offset, b.dtype, shape, strides)
}

func (b deviceBuffer) contents() (hostArray, error) {
	a := makeArray(b.dtype, b.n)
	return a, a.copyFromDevice(b.buf)
}

func (b deviceBuffer) free() error { return b.buf.Free() }

// The tensor roles of each op, named as in include/llmk.h, in argument order.
var opRoles = map[string][]string{
	"rms_norm":             {"x", "weight", "y"},
	"add_rms_norm":         {"x", "residual", "weight", "y"},
	"layer_norm":           {"x", "weight", "bias", "y"},
	"bias_activation":      {"x", "bias", "y"},
	"gated_activation":     {"gate", "up", "y"},
	"rope":                 {"positions", "q", "k", "cos_sin_cache"},
	"embedding":            {"ids", "table", "y"},
	"kv_cache_write":       {"k", "v", "cache_seqlens", "k_cache", "v_cache"},
	"paged_kv_cache_write": {"k", "v", "slot_mapping", "k_cache", "v_cache"},
	"adamw_step":           {"param", "grad", "exp_avg", "exp_avg_sq"},
	"matmul":               {"a", "b", "c", "bias", "d"},
	"ffn":                  {"x", "w1", "b1", "w2", "b2", "y"},
	"gated_mlp":            {"x", "w_gate", "w_up", "w_down", "y"},
	"attention":            {"q", "k", "v", "o", "lse"},
	"attention_varlen":     {"q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "o", "lse"},
}

// role is one tensor argument of a case: a view into the backing buffer of `owner`, which is the
// role itself unless the case says `role=@owner`.
type role struct {
	name    string
	dtype   llmk.DType
	shape   []int64
	strides []int64
	owner   string
	offset  int64 // buffer elements before the view's first one
	tensor  llmk.Tensor
}

// backing is a buffer that a role owns, with its contents before the op.
type backing struct {
	initial hostArray
	buf     buffer
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

func parseRole(c vectorCase, name string) (*role, error) {
	r := &role{name: name, owner: name}
	dtypeName, err := c.get(name + ".dtype")
	if err != nil {
		return nil, err
	}
	if r.dtype, err = parseDType(dtypeName); err != nil {
		return nil, err
	}
	if r.shape, err = c.ints(name + ".shape"); err != nil {
		return nil, err
	}
	if r.strides, err = c.ints(name + ".strides"); err != nil {
		return nil, err
	}
	if len(r.strides) != len(r.shape) {
		return nil, fmt.Errorf("%d strides for %d dimensions", len(r.strides), len(r.shape))
	}
	if source := c.fields[name]; strings.HasPrefix(source, "@") {
		r.owner = source[1:]
		if c.has(name + ".offset") {
			if r.offset, err = c.integer(name + ".offset"); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// newBacking is the buffer of an owner role: its input file, or NaN for an output.
func newBacking(c vectorCase, r *role, dir string, mem memory) (*backing, error) {
	b := &backing{}
	n := bufferLength(r.shape, r.strides)
	if file := c.fields[r.name]; file != "" {
		a, err := readNpy(filepath.Join(dir, "data", file))
		if err != nil {
			return nil, err
		}
		if b.initial, err = arrayFromNpy(r.dtype, a); err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		if int64(b.initial.len()) < n {
			return nil, fmt.Errorf("%s: %d elements, the view needs a buffer of %d", file, b.initial.len(), n)
		}
	} else {
		var err error
		if b.initial, err = nanArray(r.dtype, n); err != nil {
			return nil, err
		}
	}
	var err error
	b.buf, err = mem.place(b.initial)
	return b, err
}

// checkView compares view r of a buffer's contents `after` with expect.<r>, and marks the
// buffer elements it covers in `checked`.
func checkView(t *testing.T, c vectorCase, r *role, after hostArray, dir string, checked []bool) {
	t.Helper()
	file := c.fields["expect."+r.name]
	want, err := readNpy(filepath.Join(dir, "data", file))
	if err != nil {
		t.Fatal(err)
	}
	if want.descr != "<f8" || fmt.Sprint(want.shape) != fmt.Sprint(r.shape) {
		t.Fatalf("%s: expected <f8 of shape %v, the file has %s of %v", file, r.shape, want.descr, want.shape)
	}
	rtol, err := c.float("rtol." + r.name)
	if err != nil {
		t.Fatal(err)
	}
	atol, err := c.float("atol." + r.name)
	if err != nil {
		t.Fatal(err)
	}
	expected := want.float64s()
	bad := 0
	for i, expect := range expected {
		offset, rest := r.offset, int64(i)
		for d := len(r.shape) - 1; d >= 0; d-- {
			offset += rest % r.shape[d] * r.strides[d]
			rest /= r.shape[d]
		}
		checked[offset] = true
		got := after.value(int(offset))
		if matches(got, expect, rtol, atol) {
			continue
		}
		if bad++; bad <= 3 {
			t.Errorf("%s[%d] = %g, expected %g", r.name, i, got, expect)
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off (rtol %g, atol %g)", r.name, bad, len(expected), rtol, atol)
	}
}

// matches says whether an output element passes: an expected infinity only as the same
// infinity, any other expected value within atol + rtol * |expect| of a finite got. NaN never
// passes.
func matches(got, expect, rtol, atol float64) bool {
	if math.IsInf(expect, 0) {
		return got == expect
	}
	finite := !math.IsNaN(got) && !math.IsInf(got, 0)
	return finite && math.Abs(got-expect) <= atol+rtol*math.Abs(expect)
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
	var present []*role // in argument order
	for _, name := range names {
		if !c.has(name + ".shape") {
			continue // an optional tensor left out: passed as NULL
		}
		r, err := parseRole(c, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		roles[name] = r
		present = append(present, r)
	}
	// The buffers first, then the views into them: `R=@S` may name a role after R.
	buffers := map[string]*backing{}
	var owners []string
	for _, r := range present {
		if r.owner != r.name {
			continue
		}
		b, err := newBacking(c, r, dir, mem)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		name := r.name
		t.Cleanup(func() {
			if err := b.buf.free(); err != nil {
				t.Errorf("%s: free: %v", name, err)
			}
		})
		buffers[r.name] = b
		owners = append(owners, r.name)
	}
	for _, r := range present {
		b, ok := buffers[r.owner]
		if !ok {
			t.Fatalf("%s=@%s: %s has no buffer of its own", r.name, r.owner, r.owner)
		}
		if r.dtype != b.initial.dtype {
			t.Fatalf("%s is %v, a view into %s's %v buffer", r.name, r.dtype, r.owner, b.initial.dtype)
		}
		if r.tensor, err = b.buf.tensor(r.offset, r.shape, r.strides); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
	}

	if err := callOp(ctx, c, op, roles); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if err := ctx.Synchronize(nil); err != nil {
		t.Fatalf("synchronize: %v", err)
	}

	// Per buffer: every view with an expect. file must match it; every other element (gaps,
	// inputs) must keep its initial bits.
	for _, owner := range owners {
		b := buffers[owner]
		after, err := b.buf.contents()
		if err != nil {
			t.Fatalf("%s: reading back: %v", owner, err)
		}
		checked := make([]bool, after.len())
		for _, r := range present {
			if r.owner == owner && c.has("expect."+r.name) {
				checkView(t, c, r, after, dir, checked)
			}
		}
		for e, isChecked := range checked {
			if !isChecked && after.bits(e) != b.initial.bits(e) {
				t.Errorf("%s: buffer element %d outside every output view was written (%g, initially %g)",
					owner, e, after.value(e), b.initial.value(e))
				break
			}
		}
	}
}

// callOp calls the op of case c with the roles' tensors, an absent optional role being nil.
func callOp(ctx *llmk.Context, c vectorCase, op string, roles map[string]*role) error {
	tensor := func(name string) llmk.Tensor {
		if r, ok := roles[name]; ok {
			return r.tensor
		}
		// A required role the case lacks: its zero Tensor has NULL data, which the op reports.
		return llmk.Tensor{}
	}
	optional := func(name string) *llmk.Tensor {
		if r, ok := roles[name]; ok {
			return &r.tensor
		}
		return nil
	}
	switch op {
	case "rms_norm", "add_rms_norm", "layer_norm":
		eps, err := c.float("eps")
		if err != nil {
			return err
		}
		switch op {
		case "rms_norm":
			return llmk.RMSNorm(ctx, tensor("x"), tensor("weight"), float32(eps), tensor("y"), nil)
		case "add_rms_norm":
			return llmk.AddRMSNorm(ctx, tensor("x"), tensor("residual"), tensor("weight"), float32(eps),
				tensor("y"), nil)
		}
		return llmk.LayerNorm(ctx, tensor("x"), tensor("weight"), optional("bias"), float32(eps),
			tensor("y"), nil)
	case "bias_activation", "gated_activation":
		a, err := activation(c)
		if err != nil {
			return err
		}
		if op == "bias_activation" {
			return llmk.BiasActivation(ctx, tensor("x"), optional("bias"), a, tensor("y"), nil)
		}
		return llmk.GatedActivation(ctx, tensor("gate"), tensor("up"), a, tensor("y"), nil)
	case "rope":
		config, err := ropeConfig(c)
		if err != nil {
			return err
		}
		return llmk.Rope(ctx, config, tensor("positions"), tensor("q"), optional("k"),
			optional("cos_sin_cache"), nil)
	case "embedding":
		return llmk.Embedding(ctx, tensor("ids"), tensor("table"), tensor("y"), nil)
	case "kv_cache_write":
		return llmk.KVCacheWrite(ctx, tensor("k"), tensor("v"), tensor("cache_seqlens"),
			tensor("k_cache"), tensor("v_cache"), nil)
	case "paged_kv_cache_write":
		return llmk.PagedKVCacheWrite(ctx, tensor("k"), tensor("v"), tensor("slot_mapping"),
			tensor("k_cache"), tensor("v_cache"), nil)
	case "adamw_step":
		config, err := adamWConfig(c)
		if err != nil {
			return err
		}
		return llmk.AdamWStep(ctx, config, tensor("param"), tensor("grad"), tensor("exp_avg"),
			tensor("exp_avg_sq"), nil)
	case "matmul":
		config, err := matmulConfig(c)
		if err != nil {
			return err
		}
		a, b, cT, bias, d := tensor("a"), tensor("b"), optional("c"), optional("bias"), tensor("d")
		// What matmul_path_for says first: an engine, never auto, and the one asked for if any.
		path, err := llmk.MatmulPathFor(ctx, config, a, b, cT, bias, d)
		if err != nil {
			return fmt.Errorf("matmul_path_for: %w", err)
		}
		if path == llmk.MatmulPathAuto || (config.Path != llmk.MatmulPathAuto && path != config.Path) {
			return fmt.Errorf("matmul_path_for says %v for path %v", path, config.Path)
		}
		return llmk.Matmul(ctx, config, a, b, cT, bias, d, nil)
	case "ffn", "gated_mlp":
		config, err := mlpConfig(c)
		if err != nil {
			return err
		}
		a, err := activation(c)
		if err != nil {
			return err
		}
		var bytes int
		if op == "ffn" {
			bytes, err = llmk.FFNWorkspaceSize(ctx, tensor("x"), tensor("w1"))
		} else {
			bytes, err = llmk.GatedMLPWorkspaceSize(ctx, tensor("x"), tensor("w_gate"))
		}
		if err != nil {
			return err
		}
		workspace, free, err := poisonedWorkspace(ctx, bytes)
		if err != nil {
			return err
		}
		defer free()
		if op == "ffn" {
			err = llmk.FFN(ctx, config, tensor("x"), tensor("w1"), optional("b1"), tensor("w2"),
				optional("b2"), a, workspace, tensor("y"), nil)
		} else {
			err = llmk.GatedMLP(ctx, config, tensor("x"), tensor("w_gate"), tensor("w_up"),
				tensor("w_down"), a, workspace, tensor("y"), nil)
		}
		if err != nil {
			return err
		}
		// The op may still use the workspace on a CUDA stream: wait before freeing it.
		return ctx.Synchronize(nil)
	case "attention", "attention_varlen":
		config, err := attentionConfig(c)
		if err != nil {
			return err
		}
		if op == "attention" {
			return llmk.Attention(ctx, config, tensor("q"), tensor("k"), tensor("v"), tensor("o"),
				optional("lse"), nil)
		}
		maxSeqlenQ, err := c.integer("max_seqlen_q")
		if err != nil {
			return err
		}
		return llmk.AttentionVarlen(ctx, config, tensor("q"), tensor("k"), tensor("v"),
			tensor("cu_seqlens_q"), tensor("cu_seqlens_k"), maxSeqlenQ, tensor("o"),
			optional("lse"), nil)
	}
	return fmt.Errorf("the runner does not call op %q", op)
}

// poisonedWorkspace is a workspace of `bytes` from llmk_malloc on the context (none for 0 bytes),
// every byte 0xff: NaN in each float dtype, so that an intermediate read before it is written
// shows in the output.
func poisonedWorkspace(ctx *llmk.Context, bytes int) (llmk.Workspace, func(), error) {
	if bytes == 0 {
		return llmk.Workspace{}, func() {}, nil
	}
	buf, err := llmk.NewDeviceBuffer(ctx, bytes)
	if err != nil {
		return llmk.Workspace{}, nil, err
	}
	poison := make([]uint8, bytes)
	for i := range poison {
		poison[i] = 0xff
	}
	if err := llmk.CopyToDevice(buf, poison); err != nil {
		buf.Free()
		return llmk.Workspace{}, nil, err
	}
	return buf.Workspace(), func() { buf.Free() }, nil
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
