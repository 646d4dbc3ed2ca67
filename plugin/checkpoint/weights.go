package checkpoint

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// HeadTensors are the cross-encoder's tensors beyond a plain encoder; a
// BertModel checkpoint may lack some or all of them.
var HeadTensors = []string{"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}

// Shapes lists every tensor of BertForSequenceClassification (one label)
// under transformers' names, with its shape.
func (c Config) Shapes() map[string][]int64 {
	h, f := int64(c.HiddenSize), int64(c.IntermediateSize)
	s := map[string][]int64{
		"bert.embeddings.word_embeddings.weight":       {int64(c.VocabSize), h},
		"bert.embeddings.position_embeddings.weight":   {int64(c.MaxPositions), h},
		"bert.embeddings.token_type_embeddings.weight": {int64(c.TypeVocabSize), h},
		"bert.embeddings.LayerNorm.weight":             {h},
		"bert.embeddings.LayerNorm.bias":               {h},
		"bert.pooler.dense.weight":                     {h, h},
		"bert.pooler.dense.bias":                       {h},
		"classifier.weight":                            {1, h},
		"classifier.bias":                              {1},
	}
	for i := 0; i < c.NumLayers; i++ {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		for _, lin := range []struct {
			name    string
			out, in int64
		}{
			{"attention.self.query", h, h}, {"attention.self.key", h, h}, {"attention.self.value", h, h},
			{"attention.output.dense", h, h}, {"intermediate.dense", f, h}, {"output.dense", h, f},
		} {
			s[p+lin.name+".weight"] = []int64{lin.out, lin.in}
			s[p+lin.name+".bias"] = []int64{lin.out}
		}
		for _, ln := range []string{"attention.output.LayerNorm", "output.LayerNorm"} {
			s[p+ln+".weight"] = []int64{h}
			s[p+ln+".bias"] = []int64{h}
		}
	}
	return s
}

// ReadWeights reads DIR/model.safetensors, renames tensors to transformers'
// BertForSequenceClassification names (a BertModel's names gain the "bert."
// prefix; old LayerNorm gamma/beta become weight/bias) and checks every shape.
// It returns the head tensors that are missing, which only an Encoder
// checkpoint may lack; anything else missing or mis-shaped is an error
// naming the file and the tensor.
func ReadWeights(dir string, cfg Config) (map[string]Tensor, []string, error) {
	path := filepath.Join(dir, WeightsFile)
	raw, err := ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	want := cfg.Shapes()
	got := make(map[string]Tensor, len(raw))
	for name, t := range raw {
		canon := strings.NewReplacer("LayerNorm.gamma", "LayerNorm.weight", "LayerNorm.beta", "LayerNorm.bias").Replace(name)
		if !strings.HasPrefix(canon, "bert.") && !strings.HasPrefix(canon, "classifier.") {
			canon = "bert." + canon
		}
		if _, ok := want[canon]; !ok {
			continue // e.g. buffers or an MLM head: not part of a cross-encoder
		}
		got[canon] = t
	}
	var missing []string
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t, ok := got[n]
		if !ok {
			if cfg.Kind != CrossEncoder && slices.Contains(HeadTensors, n) {
				missing = append(missing, n)
				continue
			}
			return nil, nil, fmt.Errorf("%s: tensor %q is missing", path, n)
		}
		if !slices.Equal(t.Shape, want[n]) {
			return nil, nil, fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", path, n, t.Shape, want[n])
		}
	}
	return got, missing, nil
}
