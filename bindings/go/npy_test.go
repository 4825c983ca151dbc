package llmk_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// npyArray is a numpy .npy file of format 1.x: its descr, shape and raw little-endian data.
type npyArray struct {
	descr string
	shape []int64
	data  []byte
}

var npyItemSize = map[string]int{"<f2": 2, "<u2": 2, "<f4": 4, "<i4": 4, "<i8": 8, "<f8": 8}

// readNpy reads the C-order arrays that tests/vectors/generate.py writes: the header is the
// usual Python dict, of which only descr, fortran_order and shape matter.
func readNpy(path string) (npyArray, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return npyArray{}, err
	}
	if len(raw) < 10 || string(raw[:6]) != "\x93NUMPY" || raw[6] != 1 {
		return npyArray{}, fmt.Errorf("%s: not a .npy file of format 1.x", path)
	}
	end := 10 + int(binary.LittleEndian.Uint16(raw[8:10]))
	if end > len(raw) {
		return npyArray{}, fmt.Errorf("%s: truncated header", path)
	}
	header := string(raw[10:end])
	if !strings.Contains(header, "'fortran_order': False") {
		return npyArray{}, fmt.Errorf("%s: not in C order", path)
	}
	descr, err := npyField(header, "'descr': '", "'")
	if err != nil {
		return npyArray{}, fmt.Errorf("%s: %v", path, err)
	}
	dims, err := npyField(header, "'shape': (", ")")
	if err != nil {
		return npyArray{}, fmt.Errorf("%s: %v", path, err)
	}
	a := npyArray{descr: descr, data: raw[end:]}
	count := int64(1)
	for _, dim := range strings.Split(dims, ",") {
		if dim = strings.TrimSpace(dim); dim == "" {
			continue // the trailing comma of a 1-tuple
		}
		n, err := strconv.ParseInt(dim, 10, 64)
		if err != nil {
			return npyArray{}, fmt.Errorf("%s: shape (%s): %v", path, dims, err)
		}
		a.shape = append(a.shape, n)
		count *= n
	}
	size, ok := npyItemSize[descr]
	if !ok {
		return npyArray{}, fmt.Errorf("%s: unexpected descr %q", path, descr)
	}
	if int64(len(a.data)) != count*int64(size) {
		return npyArray{}, fmt.Errorf("%s: %d data bytes for shape (%s) of %s", path, len(a.data), dims, descr)
	}
	return a, nil
}

// npyField is the text between prefix and the next suffix in header.
func npyField(header, prefix, suffix string) (string, error) {
	start := strings.Index(header, prefix)
	if start < 0 {
		return "", fmt.Errorf("no %s in header %q", prefix, header)
	}
	start += len(prefix)
	length := strings.Index(header[start:], suffix)
	if length < 0 {
		return "", fmt.Errorf("unterminated %s in header %q", prefix, header)
	}
	return header[start : start+length], nil
}

func (a npyArray) uint16s() []uint16 {
	out := make([]uint16, len(a.data)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(a.data[2*i:])
	}
	return out
}

func (a npyArray) float32s() []float32 {
	out := make([]float32, len(a.data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.data[4*i:]))
	}
	return out
}

func (a npyArray) int32s() []int32 {
	out := make([]int32, len(a.data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(a.data[4*i:]))
	}
	return out
}

func (a npyArray) int64s() []int64 {
	out := make([]int64, len(a.data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(a.data[8*i:]))
	}
	return out
}

func (a npyArray) float64s() []float64 {
	out := make([]float64, len(a.data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(a.data[8*i:]))
	}
	return out
}

// f16ToFloat64 decodes IEEE binary16 bits exactly.
func f16ToFloat64(h uint16) float64 {
	exponent, mantissa := int(h>>10)&0x1F, float64(h&0x3FF)
	var magnitude float64
	switch exponent {
	case 0x1F:
		if mantissa != 0 {
			return math.NaN()
		}
		magnitude = math.Inf(1)
	case 0:
		magnitude = math.Ldexp(mantissa, -24) // subnormal
	default:
		magnitude = math.Ldexp(mantissa+1024, exponent-25)
	}
	if h&0x8000 != 0 {
		return -magnitude
	}
	return magnitude
}

// bf16ToFloat64 decodes bfloat16 bits: the upper half of a float32.
func bf16ToFloat64(h uint16) float64 {
	return float64(math.Float32frombits(uint32(h) << 16))
}

func TestHalfConversions(t *testing.T) {
	f16 := map[uint16]float64{
		0x0000: 0, 0x8000: math.Copysign(0, -1), 0x3C00: 1, 0xC000: -2, 0x3555: 0.333251953125,
		0x7BFF: 65504, 0x0001: math.Ldexp(1, -24), 0x03FF: math.Ldexp(1023, -24),
		0x0400: math.Ldexp(1, -14), 0x7C00: math.Inf(1), 0xFC00: math.Inf(-1),
	}
	for bits, want := range f16 {
		if got := f16ToFloat64(bits); got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("f16ToFloat64(%#04x) = %g, want %g", bits, got, want)
		}
	}
	if got := f16ToFloat64(0x7E00); !math.IsNaN(got) {
		t.Errorf("f16ToFloat64(0x7e00) = %g, want NaN", got)
	}
	bf16 := map[uint16]float64{
		0x3F80: 1, 0xC000: -2, 0x3EAB: 0.333984375, 0x7F7F: 3.3895313892515355e38,
		0x0001: math.Ldexp(1, -133), 0x7F80: math.Inf(1),
	}
	for bits, want := range bf16 {
		if got := bf16ToFloat64(bits); got != want {
			t.Errorf("bf16ToFloat64(%#04x) = %g, want %g", bits, got, want)
		}
	}
	if got := bf16ToFloat64(0x7FC0); !math.IsNaN(got) {
		t.Errorf("bf16ToFloat64(0x7fc0) = %g, want NaN", got)
	}
}
