package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// Tensor is one named float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// maxHeader bounds the JSON header; real files stay far below (a BERT-large header is ~40 KB).
const maxHeader = 100 << 20

type tensorEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

var dtypeSize = map[string]int64{"F32": 4, "F16": 2, "BF16": 2, "I64": 8}

// ReadSafetensors reads every floating-point tensor of a .safetensors file as
// float32 (F16 and BF16 are widened). Integer tensors (e.g. position_ids
// buffers) are skipped. Errors name the file and the tensor.
func ReadSafetensors(path string) (map[string]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var hlen uint64
	if err := binary.Read(f, binary.LittleEndian, &hlen); err != nil {
		return nil, fmt.Errorf("%s: not a safetensors file (no header length): %w", path, err)
	}
	if hlen == 0 || hlen > maxHeader || int64(hlen)+8 > st.Size() {
		return nil, fmt.Errorf("%s: corrupt safetensors header length %d (file is %d bytes)", path, hlen, st.Size())
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, fmt.Errorf("%s: truncated header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%s: corrupt safetensors header: %w", path, err)
	}
	dataStart := 8 + int64(hlen)
	dataLen := st.Size() - dataStart
	out := make(map[string]Tensor, len(raw))
	type span struct {
		lo, hi int64
		name   string
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			continue
		}
		var e tensorEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: bad header entry: %w", path, name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: unsupported dtype %s", path, name, e.DType)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt32/d) {
				return nil, fmt.Errorf("%s: tensor %q: bad shape %v", path, name, e.Shape)
			}
			n *= d
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > dataLen || hi-lo != n*size {
			return nil, fmt.Errorf("%s: tensor %q: data offsets [%d, %d) do not fit shape %v of %s in %d data bytes",
				path, name, lo, hi, e.Shape, e.DType, dataLen)
		}
		if hi > lo {
			spans = append(spans, span{lo, hi, name})
		}
		if e.DType == "I64" {
			continue
		}
		buf := make([]byte, hi-lo)
		if _, err := f.ReadAt(buf, dataStart+lo); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		out[name] = Tensor{Shape: e.Shape, Data: decode(buf, e.DType, n)}
	}
	// Two tensors sharing bytes would alias each other's weights.
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if a, b := spans[i-1], spans[i]; b.lo < a.hi {
			return nil, fmt.Errorf("%s: tensors %q [%d, %d) and %q [%d, %d) overlap", path, a.name, a.lo, a.hi, b.name, b.lo, b.hi)
		}
	}
	return out, nil
}

func decode(buf []byte, dtype string, n int64) []float32 {
	v := make([]float32, n)
	switch dtype {
	case "F32":
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case "BF16":
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[2*i:])) << 16)
		}
	case "F16":
		for i := range v {
			v[i] = halfToFloat(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	}
	return v
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// WriteSafetensors writes tensors as F32 in name order, the layout that
// transformers' save_pretrained produces, with {"format": "pt"} metadata.
// It writes durably (writeDurable), so a crash never leaves a half file.
func WriteSafetensors(path string, tensors map[string]Tensor) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, n := range names {
		t := tensors[n]
		size := int64(len(t.Data)) * 4
		header[n] = tensorEntry{DType: "F32", Shape: t.Shape, Offsets: [2]int64{off, off + size}}
		off += size
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hdr)%8 != 0 { // keep the data 8-byte aligned, as the reference writer does
		hdr = append(hdr, ' ')
	}
	err = writeDurable(path, func(w io.Writer) error {
		binary.Write(w, binary.LittleEndian, uint64(len(hdr)))
		w.Write(hdr)
		var b [4]byte
		for _, n := range names {
			for _, x := range tensors[n].Data {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
				if _, err := w.Write(b[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
