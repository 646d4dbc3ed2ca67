// Package runner produces evaluation runs independently of any model: a
// first stage retrieves candidates for every query (once, so that every
// scorer sees the same ones), and optional scorers rerank them.
package runner

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/rerankloop/rerank/evalharness/cascade"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// Candidate is a document proposed by the first stage, with its score there.
type Candidate struct {
	ID, Text string
	Score    float64
}

// FirstStage retrieves up to k candidates for a query, best first.
type FirstStage interface {
	Search(ctx context.Context, query string, k int) ([]Candidate, error)
}

// Scorer scores candidates against a query, one score per candidate in input
// order (higher is more relevant).
type Scorer interface {
	Score(ctx context.Context, query string, docs []Candidate) ([]float32, error)
}

// Pool holds each query's candidates in first-stage order.
type Pool struct {
	Queries    []dataset.Query
	Candidates map[string][]Candidate
	// Took is the first stage's time per query, in Queries' order (Retrieve
	// measures it; nil for a pool that was not retrieved).
	Took []time.Duration
}

// Retrieve asks fs for the top depth candidates of every query. progress, when
// not nil, receives a progress bar.
func Retrieve(ctx context.Context, qs []dataset.Query, fs FirstStage, depth int, progress io.Writer) (*Pool, error) {
	if depth < 1 {
		return nil, fmt.Errorf("depth %d must be at least 1", depth)
	}
	p := &Pool{Queries: qs, Candidates: make(map[string][]Candidate, len(qs))}
	bar := newBar(progress, len(qs), "first stage")
	defer bar.Finish()
	for _, q := range qs {
		t := time.Now()
		cands, err := fs.Search(ctx, q.Text, depth)
		p.Took = append(p.Took, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("first stage, query %q: %w", q.ID, err)
		}
		if len(cands) > depth {
			cands = cands[:depth]
		}
		seen := make(map[string]bool, len(cands))
		for _, c := range cands {
			if seen[c.ID] {
				return nil, fmt.Errorf("first stage returned document %q twice for query %q", c.ID, q.ID)
			}
			seen[c.ID] = true
		}
		p.Candidates[q.ID] = cands
		bar.Add(1)
	}
	return p, nil
}

// FromJudgments makes a pool of a flat judgments file's rows: each query's
// candidates are its rows, in file order, with first-stage scores that keep
// that order (the file's order is the ranking without a model).
func FromJudgments(js []dataset.Judgment) (*Pool, dataset.Qrels) {
	p := &Pool{Candidates: map[string][]Candidate{}}
	for _, g := range dataset.GroupByQuery(js) {
		p.Queries = append(p.Queries, dataset.Query{ID: g.QueryID, Text: g.Query})
		cands := make([]Candidate, len(g.Items))
		for i, j := range g.Items {
			cands[i] = Candidate{ID: j.DocID, Text: j.Text, Score: float64(len(g.Items) - i)}
		}
		p.Candidates[g.QueryID] = cands
	}
	return p, dataset.JudgmentQrels(js)
}

// Run is the first stage's ranking as a run. Every query is present, also
// those for which nothing was found.
func (p *Pool) Run() trec.Run {
	run := make(trec.Run, len(p.Queries))
	for _, q := range p.Queries {
		m := map[string]float64{}
		for _, c := range p.Candidates[q.ID] {
			m[c.ID] = c.Score
		}
		run[q.ID] = m
	}
	return run
}

// Rerank scores every query's candidates with s and returns the resulting run.
func Rerank(ctx context.Context, p *Pool, s Scorer, label string, progress io.Writer) (trec.Run, error) {
	run := make(trec.Run, len(p.Queries))
	bar := newBar(progress, len(p.Queries), label)
	defer bar.Finish()
	for _, q := range p.Queries {
		cands := p.Candidates[q.ID]
		m := make(map[string]float64, len(cands))
		run[q.ID] = m
		if len(cands) == 0 {
			bar.Add(1)
			continue
		}
		scores, err := score(ctx, s, q, cands, label)
		if err != nil {
			return nil, err
		}
		for i, c := range cands {
			m[c.ID] = scores[i]
		}
		bar.Add(1)
	}
	return run, nil
}

// score asks s for one score per candidate, none NaN.
func score(ctx context.Context, s Scorer, q dataset.Query, cands []Candidate, label string) ([]float64, error) {
	scores, err := s.Score(ctx, q.Text, cands)
	if err != nil {
		return nil, fmt.Errorf("%s, query %q: %w", label, q.ID, err)
	}
	if len(scores) != len(cands) {
		return nil, fmt.Errorf("%s, query %q: %d scores for %d candidates", label, q.ID, len(scores), len(cands))
	}
	out := make([]float64, len(cands))
	for i, c := range cands {
		if out[i] = float64(scores[i]); math.IsNaN(out[i]) {
			return nil, fmt.Errorf("%s, query %q: NaN score for document %q", label, q.ID, c.ID)
		}
	}
	return out, nil
}

// Cascade is the next stage after prev (a run over p's candidates): each
// query's top k in prev's order (trec.Ranked's, which the measures see)
// rescored by s and
// ordered by cascade.Order, the rest kept below them in prev's order. The
// run's scores are ranks (n for the first of n, down to 1), so that it
// ranks exactly in that order.
func Cascade(ctx context.Context, p *Pool, prev trec.Run, s Scorer, k int, label string, progress io.Writer) (trec.Run, error) {
	if k < 1 {
		return nil, fmt.Errorf("%s: cascade depth %d must be at least 1", label, k)
	}
	run := make(trec.Run, len(p.Queries))
	bar := newBar(progress, len(p.Queries), label)
	defer bar.Finish()
	for _, q := range p.Queries {
		cands := prevOrder(p.Candidates[q.ID], prev[q.ID])
		top := cascade.Top(len(cands), k)
		if top > 0 {
			scores, err := score(ctx, s, q, cands[:top], label)
			if err != nil {
				return nil, err
			}
			if cands, err = cascade.Order(cands, scores); err != nil {
				return nil, err
			}
		}
		m := make(map[string]float64, len(cands))
		for i, c := range cands {
			m[c.ID] = float64(len(cands) - i)
		}
		run[q.ID] = m
		bar.Add(1)
	}
	return run, nil
}

// prevOrder is cands in the order of their scores in prev (trec.Ranked),
// those prev lacks last in first-stage order.
func prevOrder(cands []Candidate, prev map[string]float64) []Candidate {
	byID := make(map[string]Candidate, len(cands))
	for _, c := range cands {
		byID[c.ID] = c
	}
	out := make([]Candidate, 0, len(cands))
	for _, id := range trec.Ranked(prev) {
		if c, ok := byID[id]; ok {
			out = append(out, c)
			delete(byID, id)
		}
	}
	for _, c := range cands {
		if _, ok := byID[c.ID]; ok {
			out = append(out, c)
		}
	}
	return out
}

// TimedScorer is a Scorer that appends the duration of each Score call to
// Took: per query, as Rerank and Cascade call it once for each query with
// candidates. Not for concurrent use.
type TimedScorer struct {
	Scorer
	Took *[]time.Duration
}

// Score scores with the wrapped scorer, timing it.
func (t TimedScorer) Score(ctx context.Context, query string, docs []Candidate) ([]float32, error) {
	start := time.Now()
	defer func() { *t.Took = append(*t.Took, time.Since(start)) }()
	return t.Scorer.Score(ctx, query, docs)
}

// newBar draws on w, or nowhere when w is nil.
func newBar(w io.Writer, n int, label string) *progressbar.ProgressBar {
	if w == nil {
		w = io.Discard
	}
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("queries"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// Fuse combines the first stage's scores with a model's run, query by query,
// as fuse says (e.g. fusion.Params.Fuse); candidates the model did not score
// keep its lowest score.
func (p *Pool) Fuse(model trec.Run, fuse func(first, model []float64) []float64) trec.Run {
	run := make(trec.Run, len(p.Queries))
	for _, q := range p.Queries {
		cands := p.Candidates[q.ID]
		first, scores := make([]float64, len(cands)), make([]float64, len(cands))
		for i, c := range cands {
			first[i] = c.Score
			var ok bool
			if scores[i], ok = model[q.ID][c.ID]; !ok {
				scores[i] = math.Inf(-1)
			}
		}
		m := make(map[string]float64, len(cands))
		for i, s := range fuse(first, scores) {
			m[cands[i].ID] = s
		}
		run[q.ID] = m
	}
	return run
}
