package train

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/rerankloop/rerank/plugin/contract"
)

// TestDumpContrastivePlan writes the contrastive trainer's batches for a
// `rerank finetune` run's OUT/data/request.json, so the sentence-transformers
// reference (finetune/testdata/reference/train_st_bi.py --plan) trains on the
// very same units and batches. Skipped unless RERANK_DUMP_PLAN=request.json
// (RERANK_DUMP_PLAN_OUT names the output, default plan.json):
//
//	RERANK_DUMP_PLAN=OUT/data/request.json RERANK_DUMP_PLAN_OUT=plan.json go test ./plugin/internal/train -run DumpContrastivePlan
//
// Each epoch is a list of batches, each batch a list of units, each unit the
// indexes into request.json's Train (= the lines of train.jsonl) of a
// positive followed by its negative. Examples are grouped by query as
// encodeTrain groups them (no pair is skipped: every training query has a
// token).
func TestDumpContrastivePlan(t *testing.T) {
	in := os.Getenv("RERANK_DUMP_PLAN")
	if in == "" {
		t.Skip("RERANK_DUMP_PLAN not set")
	}
	out := os.Getenv("RERANK_DUMP_PLAN_OUT")
	if out == "" {
		out = "plan.json"
	}
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var req contract.FinetuneRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	c, ex := planInputs(t, req)
	plan := planContrastive(ex, c)
	b, err = json.Marshal(map[string]any{"seed": c.Seed, "batch_size": c.BatchSize, "epochs": plan})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for e, st := range plan {
		t.Logf("epoch %d: %d batches", e+1, len(st))
	}
}
