package checkpoint

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
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

// Init builds a checkpoint of the given kind from an encoder folder (a
// plain BertModel, a sentence-transformers folder or a cross-encoder):
//   - CrossEncoder: a missing head is drawn from seed; Init returns the
//     tensors it initialised. A cross-encoder is copied.
//   - BiEncoder: no new weights; a sentence-transformers folder keeps its
//     pooling and similarity, a plain encoder gets DefaultSentence.
func Init(src, dst string, kind Kind, seed uint64) ([]string, error) {
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
	switch kind {
	case CrossEncoder:
		InitTensors(cfg, w, missing, seed)
	case BiEncoder:
		if cfg.Kind != BiEncoder {
			cfg.Sentence = DefaultSentence(cfg)
		}
		missing = nil
	default:
		return nil, fmt.Errorf("cannot build a %v", kind)
	}
	cfg.Kind = kind
	return missing, Write(dst, cfg, w, tok)
}

// Write saves a checkpoint durably: model.safetensors, tokenizer.json, then
// config.json and, for a bi-encoder, the sentence-transformers files (whose
// modules.json comes last). A cross-encoder's tensors are named as
// BertForSequenceClassification names them; a bi-encoder's as
// sentence-transformers saves a BertModel (no "bert." prefix, no classifier).
func Write(dir string, cfg Config, w map[string]Tensor, tokenizerJSON []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if cfg.Kind == BiEncoder {
		plain := make(map[string]Tensor, len(w))
		for n, t := range w {
			if name, ok := strings.CutPrefix(n, "bert."); ok {
				plain[name] = t
			}
		}
		w = plain
	}
	if err := WriteSafetensors(filepath.Join(dir, WeightsFile), w); err != nil {
		return err
	}
	if err := WriteFileDurable(filepath.Join(dir, TokenizerFile), tokenizerJSON); err != nil {
		return err
	}
	b, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := WriteFileDurable(filepath.Join(dir, ConfigFile), b); err != nil {
		return err
	}
	if cfg.Kind == BiEncoder {
		return WriteSentence(dir, cfg.Sentence)
	}
	// A cross-encoder written over a bi-encoder folder must not keep its mark.
	if err := os.Remove(filepath.Join(dir, ModulesFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
