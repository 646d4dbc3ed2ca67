package checkpoint

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSentenceFolder lays out a plain encoder as all-MiniLM-L6-v2 is
// published: modules.json with Transformer, Pooling and Normalize (whose
// folder is absent), the boolean pooling keys, max_seq_length 256.
func writeSentenceFolder(t *testing.T) string {
	dir := writeEncoder(t)
	writeFile(t, filepath.Join(dir, ModulesFile), `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
		{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
		{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]`)
	writeFile(t, filepath.Join(dir, PoolingDir, "config.json"), `{"word_embedding_dimension":32,"pooling_mode_cls_token":false,
		"pooling_mode_mean_tokens":true,"pooling_mode_max_tokens":false,"pooling_mode_mean_sqrt_len_tokens":false}`)
	writeFile(t, filepath.Join(dir, SentenceBertFile), `{"max_seq_length":256,"do_lower_case":false}`)
	return dir
}

func TestSentenceFolderIsABiEncoder(t *testing.T) {
	dir := writeSentenceFolder(t)
	cfg, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Sentence{Pooling: PoolMean, Normalize: true, Similarity: SimilarityCosine, MaxSeqLength: 256, Dim: 32}
	if cfg.Kind != BiEncoder || cfg.Sentence != want {
		t.Fatalf("kind %v, sentence %+v; want bi-encoder %+v", cfg.Kind, cfg.Sentence, want)
	}
	if _, missing, err := ReadWeights(dir, cfg); err != nil || len(missing) != 2 {
		t.Errorf("a bi-encoder needs no classifier: missing %v, %v", missing, err)
	}
	// sentence-transformers 6's spelling (modules.json as 6.2.0 saves it), dot product, length from the tokenizer config.
	writeFile(t, filepath.Join(dir, ModulesFile), `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.base.modules.transformer.Transformer"},
		{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
		{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.base.modules.normalize.Normalize"}]`)
	writeFile(t, filepath.Join(dir, PoolingDir, "config.json"), `{"embedding_dimension":32,"pooling_mode":"max","include_prompt":true}`)
	writeFile(t, filepath.Join(dir, SentenceBertFile), `{"do_lower_case":false}`)
	writeFile(t, filepath.Join(dir, "tokenizer_config.json"), `{"model_max_length":128}`)
	writeFile(t, filepath.Join(dir, SentenceConfigFile), `{"similarity_fn_name":"dot"}`)
	cfg, err = ReadConfig(dir)
	want = Sentence{Pooling: PoolMax, Normalize: true, Similarity: SimilarityDot, MaxSeqLength: 128, Dim: 32}
	if err != nil || cfg.Sentence != want {
		t.Errorf("new layout: %+v, %v; want %+v", cfg.Sentence, err, want)
	}
}

func TestUnsupportedSentenceFoldersNameTheFile(t *testing.T) {
	for name, c := range map[string]struct{ file, body, want string }{
		"mean_sqrt_len": {filepath.Join(PoolingDir, "config.json"), `{"pooling_mode_mean_sqrt_len_tokens":true}`, "not supported"},
		"two modes":     {filepath.Join(PoolingDir, "config.json"), `{"pooling_mode_mean_tokens":true,"pooling_mode_cls_token":true}`, "not supported"},
		"new mode":      {filepath.Join(PoolingDir, "config.json"), `{"pooling_mode":"weightedmean"}`, "weightedmean"},
		"dimension":     {filepath.Join(PoolingDir, "config.json"), `{"word_embedding_dimension":64,"pooling_mode":"mean"}`, "hidden_size"},
		"dense module": {ModulesFile, `[{"path":"","type":"sentence_transformers.models.Transformer"},{"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
			{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]`, "Dense"},
		"no pooling":  {ModulesFile, `[{"path":"","type":"sentence_transformers.models.Transformer"}]`, "no Pooling"},
		"corrupt":     {ModulesFile, `[{`, "not valid JSON"},
		"similarity":  {SentenceConfigFile, `{"similarity_fn_name":"manhattan"}`, "manhattan"},
		"pool absent": {filepath.Join(PoolingDir, "config.json"), "", "no such file"},
	} {
		dir := writeSentenceFolder(t)
		path := filepath.Join(dir, c.file)
		if c.body == "" {
			os.Remove(path)
		} else {
			writeFile(t, path, c.body)
		}
		_, err := ReadConfig(dir)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %s with %q", name, err, path, c.want)
		}
	}
}

func TestInitBiEncoderRoundTrip(t *testing.T) {
	for name, src := range map[string]string{"sentence folder": writeSentenceFolder(t), "plain encoder": writeEncoder(t)} {
		out := filepath.Join(t.TempDir(), "bi")
		if initialised, err := Init(src, out, BiEncoder, 1); err != nil || len(initialised) != 0 {
			t.Fatalf("%s: initialised %v, %v", name, initialised, err)
		}
		cfg, err := ReadConfig(out)
		if err != nil || cfg.Kind != BiEncoder {
			t.Fatalf("%s: %+v, %v", name, cfg, err)
		}
		if want := (Sentence{Pooling: PoolMean, Normalize: true, Similarity: SimilarityCosine, MaxSeqLength: 256, Dim: 32}); cfg.Sentence != want {
			t.Errorf("%s: sentence %+v, want %+v", name, cfg.Sentence, want)
		}
		raw, err := ReadSafetensors(filepath.Join(out, WeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		for n := range raw {
			if strings.HasPrefix(n, "bert.") || strings.HasPrefix(n, "classifier.") {
				t.Errorf("%s: tensor %q is not named as sentence-transformers saves a BertModel", name, n)
			}
		}
		srcCfg, _ := ReadConfig(src)
		a, _, _ := ReadWeights(src, srcCfg)
		b, _, _ := ReadWeights(out, cfg)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: the weights changed", name)
		}
		// The same folder made a cross-encoder loses the bi-encoder's mark.
		if _, err := Init(out, out, CrossEncoder, 1); err != nil {
			t.Fatal(err)
		}
		if cfg, err := ReadConfig(out); err != nil || cfg.Kind != CrossEncoder {
			t.Errorf("%s: re-initialised as a cross-encoder: %v, %v", name, cfg.Kind, err)
		}
	}
}
