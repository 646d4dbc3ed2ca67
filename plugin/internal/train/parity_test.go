package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// adamwSteps is testdata/adamw_steps.json, written by
// ../testdata/reference/make_train_vectors.py with PyTorch and transformers.
type adamwSteps struct {
	Pairs []struct {
		Query, Text   string
		Label, Weight float64
	}
	Steps []struct {
		LR       float64 `json:"lr"`
		Loss     float64 `json:"loss"`
		GradNorm float64 `json:"grad_norm"`
	}
	Tensors map[string]struct {
		Sum        float64 `json:"sum"`
		SumSquares float64 `json:"sum_squares"`
	}
}

// TestStepsMatchPyTorch replays three steps of PyTorch's AdamW on one batch
// of the tiny model with dropout off: the schedule's learning rates, the
// weighted BCE loss, the gradient norm before clipping and the weights
// after the steps agree (the key biases aside: see below).
func TestStepsMatchPyTorch(t *testing.T) {
	var ref adamwSteps
	b, err := os.ReadFile("testdata/adamw_steps.json")
	if err == nil {
		err = json.Unmarshal(b, &ref)
	}
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "tiny")
	copyDir(t, "../../testdata/tiny-ce", base)
	var cfg map[string]any
	b, _ = os.ReadFile(filepath.Join(base, checkpoint.ConfigFile))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"} {
		cfg[k] = 0.0
	}
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(base, checkpoint.ConfigFile), b, 0o644)

	req := contract.FinetuneRequest{BaseModel: base, OutDir: filepath.Join(t.TempDir(), "out"),
		Config: contract.TrainConfig{Epochs: 3, BatchSize: len(ref.Pairs), LearningRate: 1e-3, WarmupRatio: 0.1, MaxLength: 32, EvalSteps: 100}}
	for i, p := range ref.Pairs {
		req.Docs = append(req.Docs, contract.Document{ID: fmt.Sprint(i), Text: p.Text})
		req.Train = append(req.Train, contract.TrainPair{QueryID: p.Query, Query: p.Query, Doc: i, Label: p.Label, Weight: p.Weight})
	}
	var got []contract.FinetuneProgress
	res, err := finetune(t, req, func(p contract.FinetuneProgress) {
		if p.Step > 0 && p.Message == "" && p.Eval == nil {
			got = append(got, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ref.Steps) {
		t.Fatalf("%d steps, want %d", len(got), len(ref.Steps))
	}
	for i, want := range ref.Steps {
		g := got[i]
		if math.Abs(g.LearningRate-want.LR) > 1e-12 || math.Abs(g.Loss-want.Loss) > 1e-5*want.Loss || math.Abs(g.GradNorm-want.GradNorm) > 1e-4*want.GradNorm {
			t.Errorf("step %d: lr %g, loss %.7f, gradient norm %.6f; PyTorch %g, %.7f, %.6f", i+1, g.LearningRate, g.Loss, g.GradNorm, want.LR, want.Loss, want.GradNorm)
		}
	}
	w := readWeights(t, res.LastCheckpoint)
	worst := 0.0
	for name, want := range ref.Tensors {
		x, ok := w[name]
		if !ok {
			t.Errorf("checkpoint lacks %s", name)
			continue
		}
		var sum, sq float64
		for _, v := range x.Data {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		if strings.HasSuffix(name, "attention.self.key.bias") {
			// Softmax ignores the key bias: its gradient is rounding noise,
			// which Adam scales to steps of about the learning rate in both
			// implementations, in different directions.
			if bound := 3e-3 * math.Sqrt(float64(len(x.Data))); math.Sqrt(sq) > bound {
				t.Errorf("%s: norm %.3g above %.3g", name, math.Sqrt(sq), bound)
			}
			continue
		}
		// Relative to the tensor's norm: float32 sums of many terms.
		scale := math.Sqrt(want.SumSquares) + 1e-3
		d := math.Max(math.Abs(sum-want.Sum)/scale, math.Abs(math.Sqrt(sq)-math.Sqrt(want.SumSquares))/scale)
		worst = math.Max(worst, d)
		if d > 1e-4 {
			t.Errorf("%s: sum %.6g, norm %.6g; PyTorch %.6g, %.6g", name, sum, math.Sqrt(sq), want.Sum, math.Sqrt(want.SumSquares))
		}
	}
	t.Logf("%d tensors after 3 steps, worst relative difference %.2g", len(ref.Tensors), worst)
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
