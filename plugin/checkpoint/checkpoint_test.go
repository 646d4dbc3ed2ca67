package checkpoint

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	in := map[string]Tensor{
		"a":      {Shape: []int64{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		"b.bias": {Shape: []int64{1}, Data: []float32{-0.5}},
	}
	if err := WriteSafetensors(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range in {
		got := out[n]
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) {
			t.Errorf("%s: got %v %v, want %v %v", n, got.Shape, got.Data, want.Shape, want.Data)
		}
	}
	b, _ := os.ReadFile(path)
	if hlen := binary.LittleEndian.Uint64(b); (8+hlen)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", 8+hlen)
	}
}

func TestReadSafetensorsRejectsCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	if err := WriteSafetensors(good, map[string]Tensor{"w": {Shape: []int64{4}, Data: []float32{1, 2, 3, 4}}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	cases := map[string][]byte{
		"empty":          {},
		"huge header":    append(binary.LittleEndian.AppendUint64(nil, 1<<40), b[8:]...),
		"truncated data": b[:len(b)-4],
		"bad json":       append(binary.LittleEndian.AppendUint64(nil, 4), []byte("{nop")...),
	}
	for name, data := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, data, 0o644)
		if _, err := ReadSafetensors(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: want an error naming %s, got %v", name, p, err)
		}
	}
}

func TestHalfPrecisionWidening(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x0001: 5.9604645e-08, 0x7bff: 65504} {
		if got := halfToFloat(h); got != want {
			t.Errorf("halfToFloat(%#x) = %v, want %v", h, got, want)
		}
	}
}

func TestTinyCheckpointReadsBack(t *testing.T) {
	dir := t.TempDir()
	if err := WriteTiny(dir, 7); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != CrossEncoder || cfg.NumLayers != 2 || cfg.HiddenSize != 32 {
		t.Fatalf("config read back as %+v", cfg)
	}
	w, missing, err := ReadWeights(dir, cfg)
	if err != nil || len(missing) != 0 {
		t.Fatalf("weights: missing %v, err %v", missing, err)
	}
	if len(w) != len(cfg.Shapes()) {
		t.Errorf("%d tensors, want %d", len(w), len(cfg.Shapes()))
	}
	if ln := w["bert.encoder.layer.1.output.LayerNorm.weight"].Data; ln[0] != 1 {
		t.Errorf("LayerNorm scale starts at %v, want 1", ln[0])
	}
	// The same seed gives the same model; another seed another.
	other := t.TempDir()
	WriteTiny(other, 7)
	h1, _ := Hash(dir)
	h2, _ := Hash(other)
	WriteTiny(other, 8)
	h3, _ := Hash(other)
	if h1 != h2 || h1 == h3 {
		t.Errorf("hashes for seeds 7, 7, 8: %s %s %s", h1, h2, h3)
	}
}

// writeEncoder writes a plain BertModel folder (no "bert." prefix, no head)
// from a tiny cross-encoder, as all-MiniLM-L6-v2 is laid out.
func writeEncoder(t *testing.T, drop ...string) string {
	t.Helper()
	src := t.TempDir()
	if err := WriteTiny(src, 1); err != nil {
		t.Fatal(err)
	}
	cfg, _ := ReadConfig(src)
	w, _, _ := ReadWeights(src, cfg)
	enc := map[string]Tensor{}
	for n, x := range w {
		if strings.HasPrefix(n, "classifier.") || slices.Contains(drop, n) {
			continue
		}
		enc[strings.TrimPrefix(n, "bert.")] = x
	}
	dir := t.TempDir()
	WriteSafetensors(filepath.Join(dir, WeightsFile), enc)
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"architectures":["BertModel"],"model_type":"bert","vocab_size":30522,
		"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":512,
		"type_vocab_size":2,"hidden_act":"gelu"}`), 0o644)
	os.WriteFile(filepath.Join(dir, TokenizerFile), bertUncasedTokenizer, 0o644)
	return dir
}

func TestFromEncoderInitialisesOnlyTheHead(t *testing.T) {
	enc := writeEncoder(t)
	out := filepath.Join(t.TempDir(), "ce")
	initialised, err := Init(enc, out, CrossEncoder, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(initialised, []string{"classifier.bias", "classifier.weight"}) {
		t.Errorf("initialised %v, want the classifier only (the encoder has a pooler)", initialised)
	}
	cfg, err := ReadConfig(out)
	if err != nil || cfg.Kind != CrossEncoder {
		t.Fatalf("output config: %+v, %v", cfg, err)
	}
	w, _, err := ReadWeights(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, x := range w["classifier.weight"].Data {
		sum += float64(x * x)
	}
	if std := sum / 32; std < 0.0001 || std > 0.0016 { // variance of N(0, 0.02) is 0.0004
		t.Errorf("classifier weight variance %v, want about 0.0004", std)
	}
}

func TestReadWeightsNamesTheBadTensor(t *testing.T) {
	enc := writeEncoder(t, "bert.encoder.layer.1.output.dense.weight")
	cfg, err := ReadConfig(enc)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ReadWeights(enc, cfg)
	if err == nil || !strings.Contains(err.Error(), "bert.encoder.layer.1.output.dense.weight") || !strings.Contains(err.Error(), WeightsFile) {
		t.Errorf("missing tensor: got %v", err)
	}
	cfg.IntermediateSize = 65
	_, _, err = ReadWeights(writeEncoder(t), cfg)
	if err == nil || !strings.Contains(err.Error(), "intermediate.dense.") || !strings.Contains(err.Error(), "shape") {
		t.Errorf("mis-shaped tensor: got %v", err)
	}
}

func TestReadConfigRejectsOtherModels(t *testing.T) {
	for name, body := range map[string]string{
		"roberta":  `{"model_type":"roberta","architectures":["RobertaForSequenceClassification"]}`,
		"2 labels": `{"model_type":"bert","architectures":["BertForSequenceClassification"],"id2label":{"0":"a","1":"b"},"vocab_size":1,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"max_position_embeddings":8}`,
		"mlm":      `{"model_type":"bert","architectures":["BertForMaskedLM"]}`,
		"heads":    `{"model_type":"bert","vocab_size":1,"hidden_size":6,"num_hidden_layers":1,"num_attention_heads":4,"intermediate_size":4,"max_position_embeddings":8}`,
		"not json": `{`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ConfigFile), []byte(body), 0o644)
		if _, err := ReadConfig(dir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
			t.Errorf("%s: want an error naming config.json, got %v", name, err)
		}
	}
}
