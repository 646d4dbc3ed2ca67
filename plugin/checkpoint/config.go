// Package checkpoint reads and writes Hugging Face BERT checkpoint folders
// (config.json, model.safetensors, tokenizer.json) without torch, so the
// same files load in transformers, sentence-transformers and our plugin.
package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// File names of the Hugging Face layout.
const (
	ConfigFile    = "config.json"
	WeightsFile   = "model.safetensors"
	TokenizerFile = "tokenizer.json"
)

// Kind says which head a checkpoint carries.
type Kind int

const (
	// CrossEncoder is BertForSequenceClassification with one label.
	CrossEncoder Kind = iota
	// Encoder is a plain BertModel: the classifier must be initialised to
	// make it a cross-encoder.
	Encoder
	// BiEncoder is a BertModel saved by sentence-transformers (modules.json):
	// it embeds query and document apart and compares the embeddings.
	BiEncoder
)

// String names the kind as the CLI and the model info do.
func (k Kind) String() string {
	switch k {
	case CrossEncoder:
		return "cross-encoder"
	case BiEncoder:
		return "bi-encoder"
	}
	return "encoder"
}

// Config is the part of a BERT config.json the model needs. Raw keeps every
// field so a saved checkpoint carries what it was loaded with.
type Config struct {
	Kind             Kind
	VocabSize        int
	HiddenSize       int
	NumLayers        int
	NumHeads         int
	IntermediateSize int
	MaxPositions     int
	TypeVocabSize    int
	HiddenAct        string
	LayerNormEps     float64
	InitializerRange float64
	// Sentence is a bi-encoder's pooling and similarity (zero otherwise).
	Sentence Sentence
	Raw      map[string]any
}

type configJSON struct {
	Architectures    []string          `json:"architectures"`
	ModelType        string            `json:"model_type"`
	VocabSize        int               `json:"vocab_size"`
	HiddenSize       int               `json:"hidden_size"`
	NumLayers        int               `json:"num_hidden_layers"`
	NumHeads         int               `json:"num_attention_heads"`
	IntermediateSize int               `json:"intermediate_size"`
	MaxPositions     int               `json:"max_position_embeddings"`
	TypeVocabSize    int               `json:"type_vocab_size"`
	HiddenAct        string            `json:"hidden_act"`
	LayerNormEps     float64           `json:"layer_norm_eps"`
	InitializerRange float64           `json:"initializer_range"`
	NumLabels        int               `json:"num_labels"`
	ID2Label         map[string]string `json:"id2label"`
}

// ReadConfig reads and validates DIR/config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	var c configJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	cfg := Config{VocabSize: c.VocabSize, HiddenSize: c.HiddenSize, NumLayers: c.NumLayers, NumHeads: c.NumHeads,
		IntermediateSize: c.IntermediateSize, MaxPositions: c.MaxPositions, TypeVocabSize: c.TypeVocabSize,
		HiddenAct: c.HiddenAct, LayerNormEps: c.LayerNormEps, InitializerRange: c.InitializerRange, Raw: raw}
	if c.ModelType != "bert" {
		return Config{}, fmt.Errorf("%s: model_type %q is not supported (only \"bert\")", path, c.ModelType)
	}
	switch {
	case slices.Contains(c.Architectures, "BertForSequenceClassification"):
		labels := c.NumLabels
		if len(c.ID2Label) > 0 {
			labels = len(c.ID2Label)
		}
		if labels != 1 {
			return Config{}, fmt.Errorf("%s: a cross-encoder needs exactly 1 label, found %d", path, labels)
		}
		cfg.Kind = CrossEncoder
	case len(c.Architectures) == 0 || slices.Contains(c.Architectures, "BertModel"):
		cfg.Kind = Encoder
		if IsSentenceFolder(dir) {
			cfg.Kind = BiEncoder
		}
	default:
		return Config{}, fmt.Errorf("%s: architecture %v is not supported (want BertForSequenceClassification or BertModel)", path, c.Architectures)
	}
	if cfg.LayerNormEps == 0 {
		cfg.LayerNormEps = 1e-12
	}
	if cfg.InitializerRange == 0 {
		cfg.InitializerRange = 0.02
	}
	if cfg.TypeVocabSize == 0 {
		cfg.TypeVocabSize = 2
	}
	if cfg.HiddenAct == "" {
		cfg.HiddenAct = "gelu"
	}
	if err := cfg.validate(path); err != nil {
		return Config{}, err
	}
	if cfg.Kind == BiEncoder {
		if cfg.Sentence, err = ReadSentence(dir); err != nil {
			return Config{}, err
		}
		if err := cfg.Sentence.fit(dir, cfg); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

// configLimits bound a config.json's sizes before anything is allocated
// from them: far above any BERT (BERT-large: 24 layers, hidden 1024), far
// below what would exhaust memory.
var configLimits = map[string]int{"vocab_size": 1 << 20, "hidden_size": 8192, "num_hidden_layers": 128,
	"num_attention_heads": 256, "intermediate_size": 65536, "max_position_embeddings": 1 << 16, "type_vocab_size": 1024}

func (c Config) validate(path string) error {
	for name, v := range map[string]int{"vocab_size": c.VocabSize, "hidden_size": c.HiddenSize,
		"num_hidden_layers": c.NumLayers, "num_attention_heads": c.NumHeads, "type_vocab_size": c.TypeVocabSize,
		"intermediate_size": c.IntermediateSize, "max_position_embeddings": c.MaxPositions} {
		if v <= 0 {
			return fmt.Errorf("%s: %s must be positive, got %d", path, name, v)
		}
		if v > configLimits[name] {
			return fmt.Errorf("%s: %s %d exceeds the limit of %d", path, name, v, configLimits[name])
		}
	}
	if c.HiddenSize%c.NumHeads != 0 {
		return fmt.Errorf("%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c.HiddenSize, c.NumHeads)
	}
	switch c.HiddenAct {
	case "gelu", "gelu_new", "gelu_pytorch_tanh":
	default:
		return fmt.Errorf("%s: hidden_act %q is not supported", path, c.HiddenAct)
	}
	return nil
}

// JSON is the config.json of the model this Config describes: the loaded
// fields kept; a cross-encoder's architecture and label set to
// BertForSequenceClassification with one label so transformers and
// sentence-transformers load it as a cross-encoder, any other kind a BertModel.
func (c Config) JSON() ([]byte, error) {
	raw := map[string]any{}
	for k, v := range c.Raw {
		raw[k] = v
	}
	if c.Kind != CrossEncoder {
		raw["architectures"] = []string{"BertModel"}
		for _, k := range []string{"id2label", "label2id", "num_labels"} {
			delete(raw, k)
		}
	} else {
		raw["architectures"] = []string{"BertForSequenceClassification"}
		raw["id2label"] = map[string]string{"0": "LABEL_0"}
		raw["label2id"] = map[string]int{"LABEL_0": 0}
		delete(raw, "num_labels")
	}
	raw["model_type"] = "bert"
	raw["vocab_size"] = c.VocabSize
	raw["hidden_size"] = c.HiddenSize
	raw["num_hidden_layers"] = c.NumLayers
	raw["num_attention_heads"] = c.NumHeads
	raw["intermediate_size"] = c.IntermediateSize
	raw["max_position_embeddings"] = c.MaxPositions
	raw["type_vocab_size"] = c.TypeVocabSize
	raw["hidden_act"] = c.HiddenAct
	raw["layer_norm_eps"] = c.LayerNormEps
	raw["initializer_range"] = c.InitializerRange
	return json.MarshalIndent(raw, "", "  ")
}

// Hash is the sha256 of a checkpoint's weights file: the identity of a model version.
func Hash(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
