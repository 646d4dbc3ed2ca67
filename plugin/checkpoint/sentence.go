package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of a sentence-transformers folder beyond the Hugging Face ones.
const (
	ModulesFile        = "modules.json"
	PoolingDir         = "1_Pooling"
	NormalizeDir       = "2_Normalize"
	SentenceBertFile   = "sentence_bert_config.json"
	SentenceConfigFile = "config_sentence_transformers.json"
)

// Pooling modes and similarity functions a bi-encoder may use.
const (
	PoolMean = "mean"
	PoolCLS  = "cls"
	PoolMax  = "max"

	SimilarityCosine = "cosine"
	SimilarityDot    = "dot"
)

// Module types of sentence-transformers, in the older (models.X) and newer
// (sentence_transformer.modules.X) spellings; both load in sentence-transformers.
// sentence-transformers 6.2 saves the full module paths (base.modules.transformer.Transformer,
// sentence_transformer.modules.pooling.Pooling, base.modules.normalize.Normalize).
var moduleKinds = map[string]string{
	"sentence_transformers.models.Transformer":                           "transformer",
	"sentence_transformers.models.Pooling":                               "pooling",
	"sentence_transformers.models.Normalize":                             "normalize",
	"sentence_transformers.sentence_transformer.modules.Transformer":     "transformer",
	"sentence_transformers.sentence_transformer.modules.Pooling":         "pooling",
	"sentence_transformers.sentence_transformer.modules.Normalize":       "normalize",
	"sentence_transformers.base.modules.Transformer":                     "transformer",
	"sentence_transformers.base.modules.transformer.Transformer":         "transformer",
	"sentence_transformers.sentence_transformer.modules.pooling.Pooling": "pooling",
	"sentence_transformers.base.modules.normalize.Normalize":             "normalize",
}

// Sentence is how a bi-encoder turns token vectors into one embedding and
// compares two embeddings, as its sentence-transformers files say.
type Sentence struct {
	Pooling    string // PoolMean, PoolCLS or PoolMax
	Normalize  bool   // a Normalize module follows the pooling
	Similarity string // SimilarityCosine or SimilarityDot
	// MaxSeqLength truncates each text, in tokens with [CLS] and [SEP]; 0 is
	// the model's max_position_embeddings.
	MaxSeqLength int
	Dim          int // the embedding size (hidden_size)
}

// IsSentenceFolder says whether dir holds a modules.json, the mark of a
// sentence-transformers save (and so of a bi-encoder).
func IsSentenceFolder(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ModulesFile))
	return err == nil
}

// ReadSentence reads the sentence-transformers files of dir: modules.json
// (Transformer at the folder's root, Pooling, optionally Normalize, nothing
// else), the pooling config, the sequence length and the similarity
// function. Anything it cannot honour exactly is an error naming the file.
func ReadSentence(dir string) (Sentence, error) {
	path := filepath.Join(dir, ModulesFile)
	var modules []struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}
	if err := readJSON(path, &modules); err != nil {
		return Sentence{}, err
	}
	var s Sentence
	var poolPath string
	for i, m := range modules {
		kind, ok := moduleKinds[m.Type]
		want := []string{"transformer", "pooling", "normalize"}[min(i, 2)]
		switch {
		case !ok:
			return Sentence{}, fmt.Errorf("%s: module %d of type %q is not supported (only Transformer, Pooling, Normalize)", path, i, m.Type)
		case kind != want:
			return Sentence{}, fmt.Errorf("%s: module %d is a %s; expected Transformer, Pooling and optionally Normalize, in that order", path, i, kind)
		case kind == "transformer" && m.Path != "":
			return Sentence{}, fmt.Errorf("%s: the Transformer module lives in %q; only the folder's root is supported", path, m.Path)
		case kind == "pooling":
			poolPath = filepath.Join(dir, m.Path, "config.json")
		case kind == "normalize":
			s.Normalize = true
		}
	}
	if poolPath == "" {
		return Sentence{}, fmt.Errorf("%s: no Pooling module", path)
	}
	var err error
	if s.Pooling, s.Dim, err = readPooling(poolPath); err != nil {
		return Sentence{}, err
	}
	var sb struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	if err := readOptionalJSON(filepath.Join(dir, SentenceBertFile), &sb); err != nil {
		return Sentence{}, err
	}
	if sb.MaxSeqLength < 0 {
		return Sentence{}, fmt.Errorf("%s: max_seq_length %d is negative", filepath.Join(dir, SentenceBertFile), sb.MaxSeqLength)
	}
	s.MaxSeqLength = sb.MaxSeqLength
	if s.MaxSeqLength == 0 {
		// sentence-transformers 6 keeps it as the tokenizer's model_max_length.
		var tc struct {
			ModelMaxLength float64 `json:"model_max_length"`
		}
		if err := readOptionalJSON(filepath.Join(dir, "tokenizer_config.json"), &tc); err != nil {
			return Sentence{}, err
		}
		if tc.ModelMaxLength > 0 && tc.ModelMaxLength < 1<<20 {
			s.MaxSeqLength = int(tc.ModelMaxLength)
		}
	}
	var sc struct {
		Similarity *string `json:"similarity_fn_name"`
	}
	scPath := filepath.Join(dir, SentenceConfigFile)
	if err := readOptionalJSON(scPath, &sc); err != nil {
		return Sentence{}, err
	}
	s.Similarity = SimilarityCosine // sentence-transformers' default
	if sc.Similarity != nil {
		switch *sc.Similarity {
		case "cosine":
		case "dot", "dot_product":
			s.Similarity = SimilarityDot
		default:
			return Sentence{}, fmt.Errorf("%s: similarity_fn_name %q is not supported (cosine or dot)", scPath, *sc.Similarity)
		}
	}
	return s, nil
}

// readPooling reads 1_Pooling/config.json in either spelling: the boolean
// pooling_mode_* keys or sentence-transformers 6's "pooling_mode".
func readPooling(path string) (mode string, dim int, err error) {
	var raw map[string]any
	if err := readJSON(path, &raw); err != nil {
		return "", 0, err
	}
	for _, k := range []string{"word_embedding_dimension", "embedding_dimension"} {
		if v, ok := raw[k].(float64); ok {
			dim = int(v)
		}
	}
	if m, ok := raw["pooling_mode"].(string); ok {
		switch m {
		case "mean", "cls", "max":
			return m, dim, nil
		}
		return "", 0, fmt.Errorf("%s: pooling_mode %q is not supported (mean, cls or max)", path, m)
	}
	var modes []string
	for key, name := range map[string]string{"pooling_mode_mean_tokens": PoolMean, "pooling_mode_cls_token": PoolCLS,
		"pooling_mode_max_tokens": PoolMax, "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
		"pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"} {
		if on, _ := raw[key].(bool); on {
			modes = append(modes, name)
		}
	}
	if len(modes) != 1 || (modes[0] != PoolMean && modes[0] != PoolCLS && modes[0] != PoolMax) {
		return "", 0, fmt.Errorf("%s: pooling %v is not supported (exactly one of mean, cls or max)", path, modes)
	}
	return modes[0], dim, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	return nil
}

// readOptionalJSON leaves v as it is when the file is absent.
func readOptionalJSON(path string, v any) error {
	if err := readJSON(path, v); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// WriteSentence writes the sentence-transformers files for s into dir, in
// the layout all-MiniLM-L6-v2 is published in, which sentence-transformers
// loads as it is.
func WriteSentence(dir string, s Sentence) error {
	modules := []map[string]any{
		{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
		{"idx": 1, "name": "1", "path": PoolingDir, "type": "sentence_transformers.models.Pooling"},
	}
	if s.Normalize {
		modules = append(modules, map[string]any{"idx": 2, "name": "2", "path": NormalizeDir, "type": "sentence_transformers.models.Normalize"})
	}
	sim := "cosine"
	if s.Similarity == SimilarityDot {
		sim = "dot"
	}
	files := []struct {
		path string
		v    any
	}{
		{filepath.Join(dir, PoolingDir, "config.json"), map[string]any{"word_embedding_dimension": s.Dim,
			"pooling_mode_cls_token": s.Pooling == PoolCLS, "pooling_mode_mean_tokens": s.Pooling == PoolMean,
			"pooling_mode_max_tokens": s.Pooling == PoolMax, "pooling_mode_mean_sqrt_len_tokens": false}},
		{filepath.Join(dir, SentenceBertFile), map[string]any{"max_seq_length": s.MaxSeqLength, "do_lower_case": false}},
		{filepath.Join(dir, SentenceConfigFile), map[string]any{"similarity_fn_name": sim}},
		// modules.json last: its presence marks the folder as a bi-encoder.
		{filepath.Join(dir, ModulesFile), modules},
	}
	for _, f := range files {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := WriteFileDurable(f.path, b); err != nil {
			return err
		}
	}
	return nil
}

// fit checks s against the encoder's config and fills the defaults.
func (s *Sentence) fit(dir string, cfg Config) error {
	if s.Dim == 0 {
		s.Dim = cfg.HiddenSize
	}
	if s.Dim != cfg.HiddenSize {
		return fmt.Errorf("%s: embedding dimension %d differs from the encoder's hidden_size %d", filepath.Join(dir, PoolingDir, "config.json"), s.Dim, cfg.HiddenSize)
	}
	if s.MaxSeqLength == 0 || s.MaxSeqLength > cfg.MaxPositions {
		s.MaxSeqLength = cfg.MaxPositions
	}
	return nil
}

// DefaultSentence is what a plain encoder becomes as a bi-encoder: mean
// pooling, normalised, cosine (sentence-transformers' own choice for a
// BertModel), at most 256 tokens a text as all-MiniLM-L6-v2 uses.
func DefaultSentence(cfg Config) Sentence {
	return Sentence{Pooling: PoolMean, Normalize: true, Similarity: SimilarityCosine,
		MaxSeqLength: min(256, cfg.MaxPositions), Dim: cfg.HiddenSize}
}
