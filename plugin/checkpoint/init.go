package checkpoint

import (
	_ "embed"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// InitTensors fills the named tensors as transformers initialises fresh
// ones: weights N(0, initializer_range), biases zero, drawn from seed with
// Go's PCG so the result is the same on every machine and device.
func InitTensors(cfg Config, w map[string]Tensor, names []string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	shapes := cfg.Shapes()
	for _, n := range names {
		shape := shapes[n]
		size := int64(1)
		for _, d := range shape {
			size *= d
		}
		data := make([]float32, size)
		if len(shape) == 2 { // weights and embeddings; 1-D tensors are biases
			for i := range data {
				data[i] = float32(rng.NormFloat64() * cfg.InitializerRange)
			}
		}
		if len(shape) == 1 && strings.HasSuffix(n, ".weight") {
			for i := range data { // LayerNorm scales start at one
				data[i] = 1
			}
		}
		w[n] = Tensor{Shape: shape, Data: data}
	}
}

// bertUncasedTokenizer is bert-base-uncased's tokenizer.json (WordPiece,
// 30,522 entries), the one MiniLM and ms-marco cross-encoders use.
//
//go:embed bert-base-uncased-tokenizer.json
var bertUncasedTokenizer []byte

// TinyConfig is a small random BERT for tests: real vocabulary, 2 layers, hidden 32.
func TinyConfig() Config {
	return Config{Kind: CrossEncoder, VocabSize: 30522, HiddenSize: 32, NumLayers: 2, NumHeads: 4,
		IntermediateSize: 64, MaxPositions: 512, TypeVocabSize: 2, HiddenAct: "gelu",
		LayerNormEps: 1e-12, InitializerRange: 0.02, Raw: map[string]any{"model_type": "bert"}}
}

// MiniLMConfig has the shape of MiniLM-L6 (6 layers, hidden 384, 12 heads,
// FFN 1536): random weights of this shape are as fast as the real ones.
func MiniLMConfig() Config {
	c := TinyConfig()
	c.HiddenSize, c.NumLayers, c.NumHeads, c.IntermediateSize = 384, 6, 12, 1536
	return c
}

// WriteRandom writes a cross-encoder of the given shape with every tensor
// drawn from seed, and bert-base-uncased's tokenizer.
func WriteRandom(dir string, cfg Config, seed uint64) error {
	w := map[string]Tensor{}
	names := make([]string, 0)
	for n := range cfg.Shapes() {
		names = append(names, n)
	}
	sort.Strings(names) // draw in a fixed order
	InitTensors(cfg, w, names, seed)
	return Write(dir, cfg, w, bertUncasedTokenizer)
}

// WriteTiny writes a random tiny cross-encoder checkpoint drawn from seed.
func WriteTiny(dir string, seed uint64) error { return WriteRandom(dir, TinyConfig(), seed) }

// FromEncoder turns a plain BERT encoder folder (e.g. all-MiniLM-L6-v2) into
// a cross-encoder folder whose missing head is drawn from seed. It returns the
// tensors it initialised. A folder that is already a cross-encoder is copied.
func FromEncoder(src, dst string, seed uint64) ([]string, error) {
	cfg, err := ReadConfig(src)
	if err != nil {
		return nil, err
	}
	w, missing, err := ReadWeights(src, cfg)
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(src, TokenizerFile))
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w (a tokenizer.json is needed)", src, err)
	}
	InitTensors(cfg, w, missing, seed)
	cfg.Kind = CrossEncoder
	return missing, Write(dst, cfg, w, tok)
}

// Write saves a cross-encoder checkpoint: config.json, model.safetensors and tokenizer.json.
func Write(dir string, cfg Config, w map[string]Tensor, tokenizerJSON []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := WriteSafetensors(filepath.Join(dir, WeightsFile), w); err != nil {
		return err
	}
	b, err := cfg.CrossEncoderJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TokenizerFile), tokenizerJSON, 0o644)
}
