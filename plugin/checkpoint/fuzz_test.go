package checkpoint

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// safetensorsFile lays out a header and data as the format does.
func safetensorsFile(header string, data []byte) []byte {
	return append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(header))), header...), data...)
}

// Two tensors over the same bytes would alias each other's weights.
func TestReadSafetensorsRejectsOverlappingTensors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "overlap.safetensors")
	os.WriteFile(p, safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), 0o644)
	if _, err := ReadSafetensors(p); err == nil || !strings.Contains(err.Error(), "overlap") || !strings.Contains(err.Error(), p) {
		t.Fatalf("overlapping tensors: %v", err)
	}
}

// Sizes are bounded before anything is allocated from them.
func TestReadConfigBoundsSizes(t *testing.T) {
	for _, field := range []string{"num_hidden_layers", "hidden_size", "vocab_size", "max_position_embeddings", "intermediate_size", "type_vocab_size"} {
		dir := t.TempDir()
		body := `{"model_type":"bert","architectures":["BertModel"],"vocab_size":30522,"hidden_size":32,"num_hidden_layers":2,
			"num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":512,"type_vocab_size":2}`
		body = strings.Replace(body, `"`+field+`":`, `"`+field+`":1000000000,"x_`+field+`":`, 1)
		os.WriteFile(filepath.Join(dir, ConfigFile), []byte(body), 0o644)
		if _, err := ReadConfig(dir); err == nil || !strings.Contains(err.Error(), field+" 1000000000 exceeds") {
			t.Errorf("%s of 1e9: %v", field, err)
		}
	}
}

// FuzzReadSafetensors: any file is a tensor map or an error naming it;
// never a panic or an allocation beyond the file's size.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(safetensorsFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(safetensorsFile(`{"w":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},"__metadata__":{"format":"pt"}}`, make([]byte, 4)))
	f.Add(safetensorsFile(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"I64","shape":[1],"data_offsets":[2,10]}}`, make([]byte, 10)))
	f.Add(safetensorsFile(`{"w":{"dtype":"F32","shape":[9223372036854775807,2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add([]byte{1, 2, 3})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "f.safetensors")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tensors, err := ReadSafetensors(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		total := 0
		for _, x := range tensors {
			total += len(x.Data)
		}
		if total*2 > len(data) { // at least 2 bytes a value (F16/BF16) came from the file
			t.Fatalf("%d values from a %d-byte file", total, len(data))
		}
	})
}

// FuzzReadConfig: any config.json is a valid config or an error naming it.
func FuzzReadConfig(f *testing.F) {
	f.Add(`{"model_type":"bert","architectures":["BertForSequenceClassification"],"num_labels":1,"vocab_size":30522,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":64,"max_position_embeddings":512}`)
	f.Add(`{"model_type":"bert","vocab_size":-1}`)
	f.Add(`{"model_type":"bert","hidden_size":30,"num_attention_heads":7,"vocab_size":1,"num_hidden_layers":1,"intermediate_size":1,"max_position_embeddings":1}`)
	f.Add(`[]`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		os.WriteFile(filepath.Join(dir, ConfigFile), []byte(body), 0o644)
		cfg, err := ReadConfig(dir)
		if err != nil {
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("error does not name the folder: %v", err)
			}
			return
		}
		if cfg.HiddenSize%cfg.NumHeads != 0 || cfg.NumLayers > configLimits["num_hidden_layers"] || cfg.VocabSize <= 0 {
			t.Fatalf("accepted %+v", cfg)
		}
	})
}
