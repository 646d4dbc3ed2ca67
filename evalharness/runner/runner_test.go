package runner

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// overlap is a tiny real first stage: documents ranked by the number of
// query words they contain.
type overlap []dataset.Doc

func (o overlap) Search(_ context.Context, query string, k int) ([]Candidate, error) {
	var out []Candidate
	for _, d := range o {
		n := 0
		for _, w := range strings.Fields(strings.ToLower(query)) {
			if strings.Contains(strings.ToLower(d.Text), w) {
				n++
			}
		}
		if n > 0 {
			out = append(out, Candidate{ID: d.ID, Text: d.Text, Score: float64(n)})
		}
	}
	return out, nil // deliberately not cut to k: Retrieve must cut
}

// shortest prefers short documents: a scorer that disagrees with overlap.
type shortest struct{ calls int }

func (s *shortest) Score(_ context.Context, _ string, docs []Candidate) ([]float32, error) {
	s.calls++
	out := make([]float32, len(docs))
	for i, d := range docs {
		out[i] = -float32(len(d.Text))
	}
	return out, nil
}

var corpus = overlap{
	{ID: "a", Text: "aspirin prevents heart attacks in adults"},
	{ID: "b", Text: "aspirin heart"},
	{ID: "c", Text: "statins lower cholesterol"},
}

func TestRetrieveAndRerank(t *testing.T) {
	qs := []dataset.Query{{ID: "1", Text: "aspirin heart attacks"}, {ID: "2", Text: "nothing matches"}}
	var progress bytes.Buffer
	pool, err := Retrieve(context.Background(), qs, corpus, 1, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(pool.Candidates["1"]) != 1 || pool.Candidates["1"][0].ID != "a" || len(pool.Candidates["2"]) != 0 {
		t.Fatalf("pool %+v", pool.Candidates)
	}
	if !strings.Contains(progress.String(), "first stage") {
		t.Fatalf("no progress bar: %q", progress.String())
	}
	run := pool.Run()
	if _, ok := run["2"]; !ok || run["1"]["a"] != 3 {
		t.Fatalf("first-stage run %v", run)
	}

	pool, err = Retrieve(context.Background(), qs, corpus, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &shortest{}
	re, err := Rerank(context.Background(), pool, s, "model", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := trec.Ranked(re["1"]); len(got) != 2 || got[0] != "b" {
		t.Fatalf("reranked %v", got)
	}
	if s.calls != 1 { // no call for a query without candidates
		t.Fatalf("%d scorer calls", s.calls)
	}
	if _, ok := re["2"]; !ok {
		t.Fatal("query without candidates missing from the reranked run")
	}
}

type badScorer struct {
	scores []float32
	err    error
}

func (b badScorer) Score(context.Context, string, []Candidate) ([]float32, error) {
	return b.scores, b.err
}

type dupStage struct{}

func (dupStage) Search(context.Context, string, int) ([]Candidate, error) {
	return []Candidate{{ID: "x"}, {ID: "x"}}, nil
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	qs := []dataset.Query{{ID: "1", Text: "aspirin"}}
	if _, err := Retrieve(ctx, qs, corpus, 0, nil); err == nil {
		t.Error("depth 0: want an error")
	}
	if _, err := Retrieve(ctx, qs, dupStage{}, 10, nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate candidate: %v", err)
	}
	pool, _ := Retrieve(ctx, qs, corpus, 10, nil)
	for name, s := range map[string]badScorer{
		"count": {scores: []float32{1}},
		"nan":   {scores: []float32{1, float32(math.NaN())}},
		"error": {err: errors.New("plugin down")},
	} {
		if _, err := Rerank(ctx, pool, s, "m", nil); err == nil || !strings.Contains(err.Error(), `query "1"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFromJudgments(t *testing.T) {
	js := []dataset.Judgment{
		{QueryID: "q1", Query: "a", DocID: "x", Text: "t1", Label: 0},
		{QueryID: "q2", Query: "b", DocID: "y", Text: "t2", Label: 1},
		{QueryID: "q1", Query: "a", DocID: "z", Text: "t3", Label: 2},
	}
	pool, qrels := FromJudgments(js)
	if len(pool.Queries) != 2 || pool.Queries[0].Text != "a" || qrels["q1"]["z"] != 2 {
		t.Fatalf("pool %+v qrels %v", pool, qrels)
	}
	if got := trec.Ranked(pool.Run()["q1"]); got[0] != "x" || got[1] != "z" {
		t.Fatalf("file order lost: %v", got)
	}
}

// byID scores documents by a fixed table.
type byID map[string]float32

func (b byID) Score(_ context.Context, _ string, docs []Candidate) ([]float32, error) {
	out := make([]float32, len(docs))
	for i, d := range docs {
		out[i] = b[d.ID]
	}
	return out, nil
}

func TestCascade(t *testing.T) {
	ctx := context.Background()
	qs := []dataset.Query{{ID: "1", Text: "q"}, {ID: "2", Text: "none"}}
	pool := &Pool{Queries: qs, Candidates: map[string][]Candidate{"1": {{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}}}
	// The previous stage orders d, c, b, a (c and b tie: trec.Ranked puts c
	// first, as the measures do); it lacks e, which comes last.
	pool.Candidates["1"] = append(pool.Candidates["1"], Candidate{ID: "e"})
	prev := trec.Run{"1": {"a": 1, "b": 2, "c": 2, "d": 3}, "2": {}}
	var took []time.Duration
	s := TimedScorer{Scorer: byID{"a": 9, "b": 1, "c": 5, "d": 2}, Took: &took}
	run, err := Cascade(ctx, pool, prev, s, 2, "cascade", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The top 2 (d, c) reordered by the cascade's scores: c 5 > d 2; b and a
	// stay below them although the cascade would have liked a best.
	if got := trec.Ranked(run["1"]); !slices.Equal(got, []string{"c", "d", "b", "a", "e"}) {
		t.Errorf("cascade order %v, want [c d b a e]", got)
	}
	if _, ok := run["2"]; !ok {
		t.Error("query without candidates missing from the cascade run")
	}
	if len(took) != 1 {
		t.Errorf("%d timed calls, want 1 (one query with candidates)", len(took))
	}
	// A depth over the candidates rescores them all.
	run, err = Cascade(ctx, pool, prev, s, 10, "cascade", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := trec.Ranked(run["1"]); !slices.Equal(got, []string{"a", "c", "d", "b", "e"}) {
		t.Errorf("cascade over all %v, want [a c d b e]", got)
	}
	if _, err := Cascade(ctx, pool, prev, s, 0, "cascade", nil); err == nil {
		t.Error("depth 0: no error")
	}
	if _, err := Cascade(ctx, pool, prev, badScorer{scores: []float32{1}}, 2, "cascade", nil); err == nil {
		t.Error("a score count that does not match: no error")
	}
}
