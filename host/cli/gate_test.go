package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/compare"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/evalharness/report"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// saveResult writes an eval --json result over 60 queries with one relevant
// document each, which every system ranks at the given position per query.
func saveResult(t *testing.T, name string, systems map[string]func(q int) int) string {
	t.Helper()
	qrels := dataset.Qrels{}
	for q := range 60 {
		qrels[fmt.Sprint(q)] = map[string]int{"rel": 1}
	}
	var list []report.System
	for _, role := range []string{report.FirstStage, report.Baseline, report.Candidate} {
		rank, ok := systems[role]
		if !ok {
			continue
		}
		run := trec.Run{}
		for q := range 60 {
			for i := range 10 {
				doc := fmt.Sprint("d", i)
				if i == rank(q) {
					doc = "rel"
				}
				run.Add(fmt.Sprint(q), doc, float64(10-i))
			}
		}
		list = append(list, report.System{Role: role, Name: role, Run: run})
	}
	r, err := report.Compute(report.Meta{Dataset: "toy", Split: "test", Depth: 10}, qrels, list, "ndcg@10", compare.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := writeFileWith(path, r.WriteJSON); err != nil {
		t.Fatal(err)
	}
	return path
}

func at(pos int) func(int) int { return func(int) int { return pos } }

func TestGate(t *testing.T) {
	// BM25 puts the relevant document 5th, the serving model 3rd, a good
	// candidate 1st, a worse one 4th.
	good := saveResult(t, "good.json", map[string]func(int) int{report.FirstStage: at(4), report.Candidate: at(0)})
	serving := saveResult(t, "serving.json", map[string]func(int) int{report.FirstStage: at(4), report.Candidate: at(2)})
	worse := saveResult(t, "worse.json", map[string]func(int) int{report.FirstStage: at(4), report.Baseline: at(2), report.Candidate: at(3)})
	bm25Only := saveResult(t, "bm25.json", map[string]func(int) int{report.FirstStage: at(4)})

	out, err := evalCLI(t, "gate", "--candidate", good, "--serving", serving)
	if err != nil || !strings.Contains(out, "accepted:") {
		t.Fatalf("good candidate: %v\n%s", err, out)
	}
	// Without --serving and without a baseline, BM25 alone serves.
	out, err = evalCLI(t, "gate", "--candidate", good, "--json")
	var d gate.Decision
	if err != nil || json.Unmarshal([]byte(out), &d) != nil || !d.Accepted || !d.ServingIsBM25 {
		t.Fatalf("vs BM25: %v %+v", err, d)
	}
	// The candidate file's baseline is the serving model when --serving is absent.
	decision := filepath.Join(t.TempDir(), "decision.json")
	out, err = evalCLI(t, "gate", "--candidate", worse, "--out", decision)
	if err == nil || !strings.Contains(err.Error(), "rejected") || !strings.Contains(out, "FAIL margin") {
		t.Fatalf("worse candidate: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(decision)
	if json.Unmarshal(raw, &d) != nil || d.Accepted || d.ServingIsBM25 || d.Queries != 60 {
		t.Fatalf("decision file %s", raw)
	}
	// A stricter margin turns the good candidate down.
	if _, err := evalCLI(t, "gate", "--candidate", good, "--serving", serving, "--margin", "0.6"); err == nil {
		t.Fatal("margin 0.6: want a rejection (the gain is 0.5)")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gate"}, "--candidate is required"},
		{[]string{"gate", "--candidate", bm25Only}, "no candidate model"},
		{[]string{"gate", "--candidate", good, "--serving", filepath.Join(t.TempDir(), "absent.json")}, "absent.json"},
		{[]string{"gate", "--candidate", good, "--alpha", "0"}, "alpha"},
	} {
		if _, err := evalCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
