package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/fixture"
)

// BenchmarkTrainStep measures the trainer's steps with all-MiniLM-L6-v2
// (RERANK_MINILM_DIR; skipped without it) on the SciFact pairs of
// ../../testdata/parity, one epoch, batch 16, max_length 256, every core:
//
//	kind=bi  the bi-encoder, contrastive: units of (claim, relevant abstract,
//	         one other abstract as its negative)
//	kind=ce  a cross-encoder (the encoder with a seeded head), BCE on the
//	         same claims' relevant and negative pairs
//
// It reports pairs/s as the trainer counts them (a unit's positive and
// negative; a cross-encoder's pairs) and the seconds per step spent in the
// forward pass, the backward pass and the update. With
// RERANK_BENCH_TRAIN_PLAN=DIR it writes DIR/train-<kind>.json: the batches
// in the order trained, as texts, and the settings, for
// plugin/testdata/reference/bench_train.py to train sentence-transformers'
// side on the same batches (make bench-model prints both).
func BenchmarkTrainStep(b *testing.B) {
	enc := os.Getenv("RERANK_MINILM_DIR")
	if enc == "" {
		b.Skip("RERANK_MINILM_DIR not set (make bench-model finds all-MiniLM-L6-v2)")
	}
	bert.SetThreads(runtime.NumCPU())
	for _, kind := range []string{"bi", "ce"} {
		b.Run("kind="+kind, func(b *testing.B) {
			req := benchTrainRequest(b, enc, kind)
			for range b.N {
				req.OutDir = filepath.Join(b.TempDir(), "out")
				res, err := finetune(b, req, nil)
				if err != nil {
					b.Fatal(err)
				}
				var rep report
				raw, err := os.ReadFile(res.ReportPath)
				if err == nil {
					err = json.Unmarshal(raw, &rep)
				}
				if err != nil {
					b.Fatal(err)
				}
				steps := float64(res.Steps)
				b.ReportMetric(res.PairsPerSecond, "pairs/s")
				b.ReportMetric(rep.StepSeconds.Forward/steps, "forward-s/step")
				b.ReportMetric(rep.StepSeconds.Backward/steps, "backward-s/step")
				b.ReportMetric(rep.StepSeconds.Update/steps, "update-s/step")
			}
			if dir := os.Getenv("RERANK_BENCH_TRAIN_PLAN"); dir != "" {
				writeTrainPlan(b, filepath.Join(dir, "train-"+kind+".json"), kind, req)
			}
		})
	}
}

// benchTrainRequest is one epoch over the parity claims with a relevant
// abstract: each relevant pair, and the same claim with the abstract of one
// of the other pairs as a negative.
func benchTrainRequest(b *testing.B, enc, kind string) contract.FinetuneRequest {
	type parityPair struct {
		Kind    string `json:"kind"`
		QueryID string `json:"query_id"`
		Query   string `json:"query"`
		Text    string `json:"text"`
	}
	pairs := fixture.ReadJSONL[parityPair](b, "../../testdata/parity/pairs.jsonl")
	var docs []contract.Document
	var relevant, other []int
	for i, p := range pairs {
		docs = append(docs, contract.Document{ID: fmt.Sprint(i), Text: p.Text})
		if p.Kind == "relevant" {
			relevant = append(relevant, i)
		} else {
			other = append(other, i)
		}
	}
	var train []contract.TrainPair
	for n, i := range relevant {
		p := pairs[i]
		train = append(train, contract.TrainPair{QueryID: p.QueryID, Query: p.Query, Doc: i, Label: 1},
			contract.TrainPair{QueryID: p.QueryID, Query: p.Query, Doc: other[n%len(other)], Label: 0})
	}
	base := enc // the folder is a sentence-transformers bi-encoder
	if kind == "ce" {
		base = filepath.Join(b.TempDir(), "ce")
		if _, err := checkpoint.Init(enc, base, checkpoint.CrossEncoder, 42); err != nil {
			b.Fatal(err)
		}
	}
	cfg := contract.TrainConfig{Epochs: 1, LearningRate: 2e-5, BatchSize: 16, MaxLength: 256, EvalSteps: 1000, Seed: 42}
	if kind == "bi" {
		cfg.Loss = contract.LossContrastive
	}
	return contract.FinetuneRequest{BaseModel: base, Docs: docs, Train: train, Config: cfg, DataSource: "parity pairs"}
}

// writeTrainPlan writes the batches req trains, as texts, with the settings
// that shape a step.
func writeTrainPlan(b *testing.B, path, kind string, req contract.FinetuneRequest) {
	cfg, ex := planInputs(b, req)
	var batches [][][]any
	for _, st := range plan(ex, cfg)[0] {
		var batch [][]any
		for _, u := range st {
			if kind == "bi" { // query, positive, negative
				row := []any{req.Train[u[0]].Query}
				for _, i := range u {
					row = append(row, req.Docs[req.Train[i].Doc].Text)
				}
				batch = append(batch, row)
				continue
			}
			for _, i := range u {
				p := req.Train[i]
				batch = append(batch, []any{p.Query, req.Docs[p.Doc].Text, p.Label})
			}
		}
		batches = append(batches, batch)
	}
	raw, err := json.Marshal(map[string]any{"kind": kind, "max_length": cfg.MaxLength, "lr": cfg.LearningRate,
		"weight_decay": cfg.WeightDecay, "warmup_ratio": cfg.WarmupRatio, "max_grad_norm": cfg.MaxGradNorm,
		"seed": cfg.Seed, "scale": similarityScale, "batches": batches})
	if err == nil {
		err = os.WriteFile(path, raw, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// planInputs settles req's configuration and numbers its pairs' queries as
// the trainer does (every pair encodes), for plan.
func planInputs(t testing.TB, req contract.FinetuneRequest) (contract.TrainConfig, []example) {
	labels := make([]float64, len(req.Train))
	for i, p := range req.Train {
		labels[i] = p.Label
	}
	cfg, _, err := settle(req.Config, labels)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{}
	ex := make([]example, len(req.Train))
	for i, p := range req.Train {
		ex[i] = example{target: float32(p.Label / cfg.LabelMax), label: p.Label, group: groupOf(groups, p)}
	}
	return cfg, ex
}
