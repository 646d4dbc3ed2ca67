package report

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/compare"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// Three queries, two relevant documents each; the candidate puts them first,
// the baseline gets one, BM25 gets them last.
var qrels = dataset.Qrels{
	"q1": {"r1": 1, "r2": 2},
	"q2": {"r1": 1, "r2": 1},
	"q3": {"r1": 1, "r2": 1, "n": 0},
}

func system(role, name string, order ...string) System {
	run := trec.Run{}
	for _, q := range []string{"q1", "q2", "q3"} {
		for i, d := range order {
			run.Add(q, d, float64(len(order)-i))
		}
	}
	return System{Role: role, Name: name, Run: run}
}

func compute(t *testing.T, systems ...System) *Result {
	t.Helper()
	r, err := Compute(Meta{Dataset: "toy", Split: "test", Depth: 4}, qrels, systems, "ndcg@10", compare.Options{Resamples: 200})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompute(t *testing.T) {
	r := compute(t,
		system(FirstStage, "bm25", "n", "x", "r1", "r2"),
		system(Baseline, "base", "r1", "n", "x", "r2"),
		system(Candidate, "cand", "r2", "r1", "n", "x"),
	)
	if r.Queries != 3 || r.Measures[0] != "ndcg@10" || len(r.Measures) != 5 {
		t.Fatalf("queries %d measures %v", r.Queries, r.Measures)
	}
	cand, _ := r.System(Candidate)
	if cand.Means["ndcg@10"] != 1 || cand.Means["recall@100"] != 1 || math.Abs(cand.Means["p@10"]-0.2) > 1e-12 {
		t.Fatalf("candidate means %v", cand.Means)
	}
	if len(r.Comparisons) != 3 {
		t.Fatalf("%d comparisons", len(r.Comparisons))
	}
	m := r.Main()
	if m.Base != Baseline || m.Candidate != Candidate || m.Wins != 3 || !(m.MeanDiff > 0) {
		t.Fatalf("main comparison %+v", m)
	}
	if r.Best().Role != Candidate {
		t.Fatal("best is not the candidate")
	}
	// A primary measure outside the defaults is added in front.
	r2, err := Compute(Meta{}, qrels, []System{system(FirstStage, "bm25", "r1")}, "ndcg@3", compare.Options{})
	if err != nil || r2.Measures[0] != "ndcg@3" || r2.Main() != nil {
		t.Fatalf("%v %v", r2.Measures, err)
	}
}

func TestComputeErrors(t *testing.T) {
	if _, err := Compute(Meta{}, qrels, nil, "ndcg@10", compare.Options{}); err == nil {
		t.Error("no system: want an error")
	}
	if _, err := Compute(Meta{}, qrels, []System{system(FirstStage, "bm25", "r1")}, "bleu", compare.Options{}); err == nil {
		t.Error("bad metric: want an error")
	}
	short := system(Candidate, "cand", "r1")
	delete(short.Run, "q3")
	if _, err := Compute(Meta{}, qrels, []System{system(FirstStage, "bm25", "r1"), short}, "ndcg@10", compare.Options{}); err == nil || !strings.Contains(err.Error(), "same queries") {
		t.Errorf("different query sets: %v", err)
	}
}

func TestRenderings(t *testing.T) {
	r := compute(t,
		system(FirstStage, "bm25", "n", "x", "r1", "r2"),
		system(Candidate, "cand", "r2", "r1", "n", "x"),
	)
	var tab bytes.Buffer
	if err := r.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"toy (test): 3 queries", "ndcg@10", "candidate (cand)", "1.0000", "candidate vs first_stage on ndcg@10", "wins/ties/losses 3/0/0"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}

	path := filepath.Join(t.TempDir(), "r.json")
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, js.Bytes(), 0o644)
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := back.System(Candidate)
	if bc.PerQuery["ndcg@10"]["q2"] != 1 || back.Comparisons[0].Deltas["q1"] <= 0 || back.Primary != "ndcg@10" {
		t.Fatalf("JSON lost data: %+v", back)
	}

	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	if n := strings.Count(h, "<svg"); n != 4 { // bars, deltas, two histograms
		t.Errorf("%d plots, want 4", n)
	}
	for _, bad := range []string{"<script", "src=", "href=", "http://", "https://"} {
		if strings.Contains(h, bad) {
			t.Errorf("report is not self-contained: holds %q", bad)
		}
	}
	if !strings.Contains(h, "relevant (6)") || !strings.Contains(h, "Per-query change in NDCG@10") {
		t.Error("report lacks the score distribution or the delta plot")
	}
	// Rendering a result read back from JSON (no runs) still works.
	page.Reset()
	if err := back.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "No scores") {
		t.Fatalf("HTML from JSON: %v", err)
	}
}

func TestHTMLEscapes(t *testing.T) {
	r := compute(t, system(FirstStage, `<b onload="x">`, "r1"))
	var page bytes.Buffer
	r.WriteHTML(&page)
	if strings.Contains(page.String(), `<b onload`) {
		t.Fatal("system name not escaped")
	}
	// A run holding infinite scores must not break the histogram.
	s := system(FirstStage, "inf", "r1", "r2")
	s.Run["q1"]["r1"] = math.Inf(1)
	r = compute(t, s)
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage": "{", "other json": `{"systems":[]}`, "no per query": `{"systems":[{"role":"first_stage","name":"bm25"}]}`} {
		p := filepath.Join(dir, "x.json")
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := Load(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("absent file: want an error")
	}
}

func TestLatencies(t *testing.T) {
	var took []time.Duration
	for i := 1; i <= 200; i++ {
		took = append(took, time.Duration(i)*time.Millisecond)
	}
	l := Latencies("bm25", took)
	if l.Queries != 200 || l.MeanMS != 100.5 || l.P50MS != 100 || l.P99MS != 198 {
		t.Errorf("%+v, want 200 queries, mean 100.5, p50 100, p99 198", l)
	}
	if l := Latencies("none", nil); l.Queries != 0 || l.MeanMS != 0 {
		t.Errorf("no times: %+v", l)
	}
	r := &Result{Dataset: "d", Latency: []Latency{l, Latencies("cascade", took[:1])}}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "latency per query") || !strings.Contains(b.String(), "cascade") {
		t.Errorf("table without the latency rows:\n%s", b.String())
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "<td>cascade</td><td>1</td>") {
		t.Errorf("HTML report without the latency rows")
	}
}
