// Package bert is a BERT cross-encoder on gotch (libtorch), equal to
// transformers' BertForSequenceClassification with one label. Every method
// must run on the one goroutine that owns the model with its OS thread locked
// (libtorch's grad mode and gotch's error slot are per thread).
package bert

import (
	"fmt"
	"path/filepath"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/checkpoint"
)

type layer struct {
	// query, key and value are fused into one [3H, H] projection: one GEMM
	// instead of three; split again when saving.
	qkvW, qkvB, attnOutW, attnOutB, attnLnW, attnLnB *ts.Tensor
	interW, interB, outW, outB, outLnW, outLnB       *ts.Tensor
}

// Model holds the parameters on Device.
type Model struct {
	Cfg    checkpoint.Config
	Device gotch.Device
	// Precision is the arithmetic of Forward and Embed (FP32 when empty);
	// their results are float32 either way.
	Precision Precision

	wordEmb, posEmb, typeEmb, embLnW, embLnB *ts.Tensor
	layers                                   []layer
	poolW, poolB, clsW, clsB                 *ts.Tensor
	// params lists every parameter once, for the optimizer and for Free.
	params []*ts.Tensor
	// decay marks the params that take weight decay (not biases or LayerNorm).
	decay []bool
}

// New builds a model from weights named as transformers names them (see
// checkpoint.Config.Shapes); every tensor must be present.
func New(cfg checkpoint.Config, w map[string]checkpoint.Tensor, device gotch.Device) (m *Model, err error) {
	defer Guard(&err)
	m = &Model{Cfg: cfg, Device: device}
	param := func(decay bool, names ...string) *ts.Tensor {
		// Several names are concatenated along dim 0 (the fused QKV projection).
		var data []float32
		shape := append([]int64(nil), w[names[0]].Shape...)
		shape[0] = 0
		for _, n := range names {
			t, ok := w[n]
			if !ok {
				panic(torchError{fmt.Errorf("tensor %q is missing", n)})
			}
			data = append(data, t.Data...)
			shape[0] += t.Shape[0]
		}
		t, err := ts.NewTensorFromData(data, shape)
		if err != nil {
			panic(torchError{err})
		}
		if device != gotch.CPU {
			moved, err := t.To(device, true)
			if err != nil {
				panic(torchError{err})
			}
			t = moved
		}
		m.params = append(m.params, t)
		m.decay = append(m.decay, decay)
		return t
	}
	m.wordEmb = param(true, "bert.embeddings.word_embeddings.weight")
	m.posEmb = param(true, "bert.embeddings.position_embeddings.weight")
	m.typeEmb = param(true, "bert.embeddings.token_type_embeddings.weight")
	m.embLnW = param(false, "bert.embeddings.LayerNorm.weight")
	m.embLnB = param(false, "bert.embeddings.LayerNorm.bias")
	for i := 0; i < cfg.NumLayers; i++ {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		qkv := func(suffix string) []string {
			return []string{p + "attention.self.query." + suffix, p + "attention.self.key." + suffix, p + "attention.self.value." + suffix}
		}
		m.layers = append(m.layers, layer{
			qkvW: param(true, qkv("weight")...), qkvB: param(false, qkv("bias")...),
			attnOutW: param(true, p+"attention.output.dense.weight"), attnOutB: param(false, p+"attention.output.dense.bias"),
			attnLnW: param(false, p+"attention.output.LayerNorm.weight"), attnLnB: param(false, p+"attention.output.LayerNorm.bias"),
			interW: param(true, p+"intermediate.dense.weight"), interB: param(false, p+"intermediate.dense.bias"),
			outW: param(true, p+"output.dense.weight"), outB: param(false, p+"output.dense.bias"),
			outLnW: param(false, p+"output.LayerNorm.weight"), outLnB: param(false, p+"output.LayerNorm.bias"),
		})
	}
	if cfg.Kind == checkpoint.BiEncoder {
		return m, nil // embeddings come from pooling the last layer: no head
	}
	m.poolW = param(true, "bert.pooler.dense.weight")
	m.poolB = param(false, "bert.pooler.dense.bias")
	m.clsW = param(true, "classifier.weight")
	m.clsB = param(false, "classifier.bias")
	return m, nil
}

// LoadReport says what Load did beyond reading tensors.
type LoadReport struct {
	// Initialised lists head tensors the checkpoint lacked (a plain encoder)
	// and that were drawn from the seed.
	Initialised []string
}

// Load reads a Hugging Face checkpoint folder. A plain BertModel gets a fresh
// pooler/classifier head from seed, and the report says so; a
// sentence-transformers folder is a bi-encoder and needs no head.
func Load(dir string, device gotch.Device, seed uint64) (*Model, LoadReport, error) {
	cfg, err := checkpoint.ReadConfig(dir)
	if err != nil {
		return nil, LoadReport{}, err
	}
	w, missing, err := checkpoint.ReadWeights(dir, cfg)
	if err != nil {
		return nil, LoadReport{}, err
	}
	if cfg.Kind == checkpoint.BiEncoder {
		missing = nil
	}
	checkpoint.InitTensors(cfg, w, missing, seed)
	m, err := New(cfg, w, device)
	if err != nil {
		return nil, LoadReport{}, fmt.Errorf("%s: %w", filepath.Join(dir, checkpoint.WeightsFile), err)
	}
	return m, LoadReport{Initialised: missing}, nil
}

// Weights copies the parameters back to host memory under transformers' names.
func (m *Model) Weights() (w map[string]checkpoint.Tensor, err error) {
	defer Guard(&err)
	w = map[string]checkpoint.Tensor{}
	get := func(t *ts.Tensor, names ...string) {
		c, err := HostCopy(t)
		Check(err)
		rows := c.Shape[0] / int64(len(names)) // fused tensors split evenly along dim 0
		per := int64(len(c.Data)) / int64(len(names))
		for i, name := range names {
			s := append([]int64{rows}, c.Shape[1:]...)
			w[name] = checkpoint.Tensor{Shape: s, Data: c.Data[int64(i)*per : int64(i+1)*per]}
		}
	}
	get(m.wordEmb, "bert.embeddings.word_embeddings.weight")
	get(m.posEmb, "bert.embeddings.position_embeddings.weight")
	get(m.typeEmb, "bert.embeddings.token_type_embeddings.weight")
	get(m.embLnW, "bert.embeddings.LayerNorm.weight")
	get(m.embLnB, "bert.embeddings.LayerNorm.bias")
	for i, l := range m.layers {
		p := fmt.Sprintf("bert.encoder.layer.%d.", i)
		get(l.qkvW, p+"attention.self.query.weight", p+"attention.self.key.weight", p+"attention.self.value.weight")
		get(l.qkvB, p+"attention.self.query.bias", p+"attention.self.key.bias", p+"attention.self.value.bias")
		get(l.attnOutW, p+"attention.output.dense.weight")
		get(l.attnOutB, p+"attention.output.dense.bias")
		get(l.attnLnW, p+"attention.output.LayerNorm.weight")
		get(l.attnLnB, p+"attention.output.LayerNorm.bias")
		get(l.interW, p+"intermediate.dense.weight")
		get(l.interB, p+"intermediate.dense.bias")
		get(l.outW, p+"output.dense.weight")
		get(l.outB, p+"output.dense.bias")
		get(l.outLnW, p+"output.LayerNorm.weight")
		get(l.outLnB, p+"output.LayerNorm.bias")
	}
	if m.clsW != nil {
		get(m.poolW, "bert.pooler.dense.weight")
		get(m.poolB, "bert.pooler.dense.bias")
		get(m.clsW, "classifier.weight")
		get(m.clsB, "classifier.bias")
	}
	return w, nil
}

// HostCopy copies a float32 tensor, on any device, to host memory.
func HostCopy(t *ts.Tensor) (c checkpoint.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	defer s.Free()
	cpu := t
	if t.MustDevice() != gotch.CPU {
		cpu = s.Keep(t.To(gotch.CPU, false))
	}
	c.Shape = cpu.MustSize()
	n := int64(1)
	for _, d := range c.Shape {
		n *= d
	}
	c.Data = make([]float32, n)
	Check(cpu.CopyData(c.Data, uint(n)))
	return c, nil
}

// Save writes the checkpoint folder (config.json, model.safetensors and the
// given tokenizer.json) as transformers' save_pretrained lays it out.
func (m *Model) Save(dir string, tokenizerJSON []byte) error {
	w, err := m.Weights()
	if err != nil {
		return err
	}
	return checkpoint.Write(dir, m.Cfg, w, tokenizerJSON)
}

// Params returns every parameter and whether it takes weight decay.
func (m *Model) Params() ([]*ts.Tensor, []bool) { return m.params, m.decay }

// Free releases the parameters now rather than at the next GC.
func (m *Model) Free() {
	for _, p := range m.params {
		p.Drop()
	}
	m.params = nil
}

// Batch is a padded batch of encoded pairs in row-major [Size, Len] order.
type Batch struct {
	Size, Len int
	IDs       []int64
	TypeIDs   []int64
	// Lengths holds each row's real length; positions past it are padding.
	Lengths []int
}

// Forward returns one logit per row of b, shape [Size]. With train set,
// dropout is applied (hidden and attention probabilities, p from config) and
// autograd records the graph; the caller frees the result.
func (m *Model) Forward(b Batch, train bool) (logits *ts.Tensor, err error) {
	if m.clsW == nil {
		return nil, fmt.Errorf("a %v has no classification head: it embeds, it does not score pairs", m.Cfg.Kind)
	}
	err = withAutocast(m.Device, m.Precision, func() (err error) {
		logits, err = m.forward(b, train)
		return err
	})
	return logits, err
}

func (m *Model) forward(b Batch, train bool) (logits *ts.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	defer s.Free()
	x := s.Keep(m.encode(b, train))
	// The head runs in float32 whatever the precision: it costs B x H x H,
	// and a bf16 logit would be rounded to 2^-8 of its size.
	cls := s.Keep(s.Keep(x.Select(1, 0, false)).Totype(gotch.Float, false))
	err = withAutocast(m.Device, FP32, func() (err error) {
		logits, err = m.head(cls, int64(b.Size), train)
		return err
	})
	return logits, err
}

// head is the pooler and classifier on the [CLS] vectors: [Size] logits.
func (m *Model) head(cls *ts.Tensor, B int64, train bool) (logits *ts.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	defer s.Free()
	pooled := s.Keep(linear(&s, cls, m.poolW, m.poolB, noActivation).Tanh(false))
	pooled = m.dropout(&s, pooled, "classifier_dropout", train)
	out := linear(&s, pooled, m.clsW, m.clsB, noActivation)
	logits = s.Keep(out.View([]int64{B}, false))
	s.Free(logits)
	return logits, nil
}

// encode runs embeddings and encoder layers: the last hidden state
// [Size, Len, H], owned by the caller.
func (m *Model) encode(b Batch, train bool) (x *ts.Tensor, err error) {
	defer Guard(&err)
	if len(b.IDs) != b.Size*b.Len || len(b.TypeIDs) != len(b.IDs) || len(b.Lengths) != b.Size {
		return nil, fmt.Errorf("malformed batch: %d ids, %d type ids, %d lengths for %d x %d", len(b.IDs), len(b.TypeIDs), len(b.Lengths), b.Size, b.Len)
	}
	if b.Len > m.Cfg.MaxPositions {
		return nil, fmt.Errorf("sequence length %d exceeds the model's %d positions", b.Len, m.Cfg.MaxPositions)
	}
	for _, id := range b.IDs {
		if id < 0 || id >= int64(m.Cfg.VocabSize) {
			return nil, fmt.Errorf("token id %d outside the vocabulary of %d", id, m.Cfg.VocabSize)
		}
	}
	B, T, H := int64(b.Size), int64(b.Len), int64(m.Cfg.HiddenSize)
	// in holds the inputs; s holds the current stage and is emptied after
	// every layer (autograd keeps its own references to what backward needs).
	var in, s Scope
	defer in.Free()
	defer s.Free()
	ids := m.onDevice(&in, in.Keep(ts.NewTensorFromData(b.IDs, []int64{B, T})))
	types := m.onDevice(&in, in.Keep(ts.NewTensorFromData(b.TypeIDs, []int64{B, T})))
	var attnMask *ts.Tensor // none without padding, as transformers passes none
	if mask := keyMask(b); mask != nil {
		attnMask = m.onDevice(&in, in.Keep(ts.NewTensorFromData(mask, []int64{B, 1, 1, T})))
	}
	x = s.Keep(ts.Embedding(m.wordEmb, ids, -1, false, false))
	x = s.Keep(x.Add(s.Keep(ts.Embedding(m.typeEmb, types, -1, false, false)), false))
	x = s.Keep(x.Add(s.Keep(m.posEmb.Narrow(0, 0, T, false)), false))
	x = s.Keep(ts.LayerNorm(x, []int64{H}, m.embLnW, m.embLnB, m.Cfg.LayerNormEps, false))
	x = m.dropout(&s, x, "hidden_dropout_prob", train)
	for i := range m.layers {
		next, err := m.layer(&m.layers[i], x, attnMask, B, T, train)
		if err != nil {
			return nil, err
		}
		s.Free()
		x = s.Keep(next, nil)
	}
	s.Free(x)
	return x, nil
}

// keyMask is true where a key is a real token, so that padding gets exactly
// zero attention whatever the autocast type (a float mask would have to match
// it); nil when no row is padded.
func keyMask(b Batch) []bool {
	padded := false
	for _, n := range b.Lengths {
		padded = padded || n < b.Len
	}
	if !padded {
		return nil
	}
	mask := make([]bool, b.Size*b.Len)
	for i, n := range b.Lengths {
		for j := range n {
			mask[i*b.Len+j] = true
		}
	}
	return mask
}

// onDevice moves an input tensor to the model's device, kept in s.
func (m *Model) onDevice(s *Scope, t *ts.Tensor) *ts.Tensor {
	if m.Device != gotch.CPU {
		t = s.Keep(t.To(m.Device, false))
	}
	return t
}

// Embed returns one embedding per row of b, [Size, H]: the last hidden
// state pooled over each row's real tokens as sentence.Pooling says (mean,
// the [CLS] vector, or max), then L2-normalised if sentence.Normalize, as
// sentence-transformers' Pooling and Normalize modules compute them.
func (m *Model) Embed(b Batch, sentence checkpoint.Sentence, train bool) (emb *ts.Tensor, err error) {
	err = withAutocast(m.Device, m.Precision, func() (err error) {
		emb, err = m.embed(b, sentence, train)
		return err
	})
	return emb, err
}

func (m *Model) embed(b Batch, sentence checkpoint.Sentence, train bool) (emb *ts.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	defer s.Free()
	B, T := int64(b.Size), int64(b.Len)
	x := s.Keep(s.Keep(m.encode(b, train)).Totype(gotch.Float, false))
	valid := make([]float32, b.Size*b.Len) // 1 on real tokens, 0 on padding
	for i, n := range b.Lengths {
		for j := range n {
			valid[i*b.Len+j] = 1
		}
	}
	mask := m.onDevice(&s, s.Keep(ts.NewTensorFromData(valid, []int64{B, T, 1})))
	switch sentence.Pooling {
	case checkpoint.PoolMean:
		sum := s.Keep(s.Keep(x.Mul(mask, false)).SumDimIntlist([]int64{1}, false, gotch.Float, false))
		count := s.Keep(s.Keep(mask.SumDimIntlist([]int64{1}, false, gotch.Float, false)).ClampMin(ts.FloatScalar(1e-9), false))
		emb = s.Keep(sum.Div(count, false))
	case checkpoint.PoolCLS:
		emb = s.Keep(x.Select(1, 0, false))
	case checkpoint.PoolMax:
		// Padding gets -1e9 first, as sentence-transformers does.
		pad := s.Keep(s.Keep(mask.SubScalar(ts.FloatScalar(1), false)).MulScalar(ts.FloatScalar(1e9), false))
		emb = s.Keep(s.Keep(x.Add(pad, false)).Amax([]int64{1}, false, false))
	default:
		return nil, fmt.Errorf("pooling %q is not supported", sentence.Pooling)
	}
	if sentence.Normalize {
		emb = UnitRows(&s, emb)
	}
	s.Free(emb)
	return emb, nil
}

// UnitRows scales each row of x to length 1, the norm floored at 1e-12 as
// F.normalize does (sentence-transformers' Normalize and cos_sim); the
// result is kept in s.
func UnitRows(s *Scope, x *ts.Tensor) *ts.Tensor {
	norm := s.Keep(s.Keep(x.NormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false)).ClampMin(ts.FloatScalar(1e-12), false))
	return s.Keep(x.Div(norm, false))
}

func (m *Model) layer(l *layer, x, attnMask *ts.Tensor, B, T int64, train bool) (out *ts.Tensor, err error) {
	defer Guard(&err)
	var s Scope
	defer s.Free()
	H := int64(m.Cfg.HiddenSize)
	nh := int64(m.Cfg.NumHeads)
	dh := H / nh
	// [B, T, 3H] -> [B, T, 3, nh, dh] -> [3, B, nh, T, dh]
	qkv := linear(&s, x, l.qkvW, l.qkvB, noActivation)
	qkv = s.Keep(s.Keep(qkv.View([]int64{B, T, 3, nh, dh}, false)).Permute([]int64{2, 0, 3, 1, 4}, false))
	q := s.Keep(qkv.Select(0, 0, false))
	k := s.Keep(qkv.Select(0, 1, false))
	v := s.Keep(qkv.Select(0, 2, false))
	// Fused attention (flash / memory-efficient kernels): no [B, nh, T, T]
	// score tensor, and the padding mask applied inside the kernel.
	p := 0.0
	if train {
		p = m.dropoutP("attention_probs_dropout_prob")
	}
	ctx := attention(&s, q, k, v, attnMask, p)                                        // [B, nh, T, dh]
	ctx = s.Keep(s.Keep(ctx.Transpose(1, 2, false)).Reshape([]int64{B, T, H}, false)) // [B, T, H]
	attn := linear(&s, ctx, l.attnOutW, l.attnOutB, noActivation)
	attn = m.dropout(&s, attn, "hidden_dropout_prob", train)
	attn = s.Keep(ts.LayerNorm(s.Keep(attn.Add(x, false)), []int64{H}, l.attnLnW, l.attnLnB, m.Cfg.LayerNormEps, false))
	inter := linear(&s, attn, l.interW, l.interB, m.gelu())
	o := linear(&s, inter, l.outW, l.outB, noActivation)
	o = m.dropout(&s, o, "hidden_dropout_prob", train)
	out = s.Keep(ts.LayerNorm(s.Keep(o.Add(attn, false)), []int64{H}, l.outLnW, l.outLnB, m.Cfg.LayerNormEps, false))
	s.Free(out)
	return out, nil
}

func (m *Model) gelu() activation {
	if m.Cfg.HiddenAct == "gelu" {
		return geluExact // erf
	}
	return geluTanh
}

// dropout applies training-time dropout with the probability config.json
// gives for key; at inference it is the identity.
func (m *Model) dropout(s *Scope, x *ts.Tensor, key string, train bool) *ts.Tensor {
	p := m.dropoutP(key)
	if !train || p == 0 {
		return x
	}
	return s.Keep(ts.Dropout(x, p, true))
}

// dropoutP reads a dropout probability from config.json; transformers'
// default 0.1 applies when absent, and classifier_dropout falls back to
// hidden_dropout_prob as in BertForSequenceClassification.
func (m *Model) dropoutP(key string) float64 {
	if v, ok := m.Cfg.Raw[key].(float64); ok {
		return v
	}
	if key == "classifier_dropout" {
		return m.dropoutP("hidden_dropout_prob")
	}
	return 0.1
}
