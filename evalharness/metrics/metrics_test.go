package metrics

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// TestMatchesPytrecEval holds every measure to pytrec_eval's values, written
// by ../testdata/make_fixtures.py, to 1e-9.
func TestMatchesPytrecEval(t *testing.T) {
	for _, name := range []string{"handmade", "graded", "binary"} {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("..", "testdata", "fixtures", name)
			run, err := trec.ReadFile(base + ".run")
			if err != nil {
				t.Fatal(err)
			}
			qrels, err := dataset.ReadQrels(base + ".qrels")
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var want struct{ Measures map[string]map[string]float64 }
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			var ms []Measure
			for name := range want.Measures {
				m, err := Parse(name)
				if err != nil {
					t.Fatal(err)
				}
				ms = append(ms, m)
			}
			if len(ms) < 20 {
				t.Fatalf("fixture holds only %d measures", len(ms))
			}
			got, err := Evaluate(run, qrels, ms...)
			if err != nil {
				t.Fatal(err)
			}
			for name, perQuery := range want.Measures {
				if len(got[name]) != len(perQuery) {
					t.Errorf("%s: evaluated %d queries, pytrec_eval %d", name, len(got[name]), len(perQuery))
				}
				for q, v := range perQuery {
					g, ok := got[name][q]
					if !ok || math.Abs(g-v) > 1e-9 {
						t.Errorf("%s query %s: got %v (present %v), pytrec_eval %v", name, q, g, ok, v)
					}
				}
			}
		})
	}
}

func TestHandmadeCases(t *testing.T) {
	// Ties go by document ID descending: c, b, a.
	if got := trec.Ranked(map[string]float64{"a": 1, "b": 1, "c": 1, "d": 2}); got[0] != "d" || got[1] != "c" || got[3] != "a" {
		t.Fatalf("order %v", got)
	}
	judged := map[string]int{"a": 2, "c": 1, "x": 0}
	for _, tc := range []struct {
		m      string
		ranked []string
		want   float64
	}{
		{"ndcg@1", []string{"c", "a"}, 1 / 2.0},
		{"ndcg@2", []string{"a", "c"}, 1},
		{"ndcg@10", nil, 0},
		{"mrr@10", []string{"x", "u", "c"}, 1.0 / 3},
		{"mrr@2", []string{"x", "u", "c"}, 0},
		{"p@4", []string{"a"}, 0.25},
		{"recall@1", []string{"c", "a"}, 0.5},
		{"map@2", []string{"x", "a"}, 0.5 / 2},
	} {
		m, err := Parse(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Query(tc.ranked, judged); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s of %v: got %v, want %v", tc.m, tc.ranked, got, tc.want)
		}
	}
	// A query judged without relevant documents scores 0 everywhere.
	for _, name := range []string{"ndcg@10", "mrr@10", "map@10", "recall@10", "p@10"} {
		m, _ := Parse(name)
		if got := m.Query([]string{"x"}, map[string]int{"x": 0}); got != 0 {
			t.Errorf("%s without relevant documents: %v", name, got)
		}
	}
}

func TestEvaluateQuerySelection(t *testing.T) {
	run := trec.Run{"judged": {"a": 1}, "unjudged": {"a": 1}, "empty": {}}
	qrels := dataset.Qrels{"judged": {"a": 1}, "empty": {"a": 1}, "absent": {"a": 1}}
	got, err := Evaluate(run, qrels, Measure{NDCG, 10})
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for q := range got["ndcg@10"] {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	if len(qs) != 2 || qs[0] != "empty" || qs[1] != "judged" {
		t.Fatalf("evaluated %v, want [empty judged]", qs)
	}
	if m := Mean(got["ndcg@10"]); m != 0.5 {
		t.Fatalf("mean %v", m)
	}
	if _, err := Evaluate(trec.Run{"x": {"a": 1}}, qrels, Measure{NDCG, 10}); err == nil {
		t.Fatal("no common query: want an error")
	}
	if _, err := Evaluate(run, qrels, Measure{"bogus", 1}); err == nil {
		t.Fatal("unknown measure: want an error")
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"NDCG@10": "ndcg@10", "recip_rank": "mrr", "precision@5": "p@5", " map@100 ": "map@100", "r@3": "recall@3"} {
		m, err := Parse(in)
		if err != nil || m.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, m, err, want)
		}
	}
	for _, bad := range []string{"", "ndcg@0", "ndcg@x", "bleu@4", "p", "ndcg@-2"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want an error", bad)
		}
	}
}

// BenchmarkEvaluate scores the graded fixture (40 queries, ~100 documents
// each) on the default measures.
func BenchmarkEvaluate(b *testing.B) {
	run, err := trec.ReadFile("../testdata/fixtures/graded.run")
	if err != nil {
		b.Fatal(err)
	}
	qrels, err := dataset.ReadQrels("../testdata/fixtures/graded.qrels")
	if err != nil {
		b.Fatal(err)
	}
	var ms []Measure
	for _, name := range []string{"ndcg@10", "mrr@10", "map@100", "recall@100", "p@10"} {
		m, _ := Parse(name)
		ms = append(ms, m)
	}
	for b.Loop() {
		if _, err := Evaluate(run, qrels, ms...); err != nil {
			b.Fatal(err)
		}
	}
}
