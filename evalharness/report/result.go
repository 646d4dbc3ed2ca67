// Package report turns runs into an evaluation result (every measure, per
// query, and the paired comparisons between systems) and renders it three
// ways: a terminal table, a JSON object (what `rerank gate` reads back) and a
// self-contained HTML page with inline SVG plots.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/rerankloop/rerank/evalharness/compare"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/trec"
)

// Role names of the systems in a result.
const (
	FirstStage = "first_stage" // BM25, or a flat file's own order
	Baseline   = "baseline"    // --baseline-model
	Candidate  = "candidate"   // --model
	Cascade    = "cascade"     // --cascade-model on the candidate's top
	// ModelAlone suffixes the role of a fused model's own ranking, reported
	// beside the fused one (which keeps the plain role the gate reads).
	ModelAlone = "_model"
)

// DefaultMeasures are computed on every evaluation; ndcg@10 is what the gate reads.
var DefaultMeasures = []string{"ndcg@10", "mrr@10", "map@100", "recall@100", "p@10"}

// System is one evaluated ranking.
type System struct {
	Role     string             `json:"role"`
	Name     string             `json:"name"` // e.g. "bm25" or the model folder
	Means    map[string]float64 `json:"metrics"`
	PerQuery metrics.PerQuery   `json:"per_query"`
	// Run is the ranking itself; the HTML report plots its score distributions.
	Run trec.Run `json:"-"`
}

// Comparison is a paired comparison of two systems on the primary measure.
type Comparison struct {
	Base      string `json:"base"`      // role
	Candidate string `json:"candidate"` // role
	Metric    string `json:"metric"`
	compare.Result
}

// Result is a whole evaluation.
type Result struct {
	Dataset     string       `json:"dataset"`
	Split       string       `json:"split,omitempty"`
	Queries     int          `json:"queries"` // evaluated: in the run and judged
	Depth       int          `json:"depth"`
	Primary     string       `json:"primary_metric"`
	Measures    []string     `json:"measures"`
	Systems     []System     `json:"systems"`
	Comparisons []Comparison `json:"comparisons"`
	// Latency is each stage's time per query, measured in this run.
	Latency []Latency `json:"latency,omitempty"`

	qrels dataset.Qrels // for score distributions by relevance
}

// Latency is one stage's time per query: mean, median and 99th percentile
// (nearest rank), in milliseconds.
type Latency struct {
	Stage   string  `json:"stage"`
	Queries int     `json:"queries"`
	MeanMS  float64 `json:"mean_ms"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
}

// Latencies summarises a stage's per-query times.
func Latencies(stage string, took []time.Duration) Latency {
	l := Latency{Stage: stage, Queries: len(took)}
	if len(took) == 0 {
		return l
	}
	ms := make([]float64, len(took))
	for i, d := range took {
		ms[i] = float64(d.Microseconds()) / 1000
		l.MeanMS += ms[i] / float64(len(ms))
	}
	slices.Sort(ms)
	rank := func(p float64) float64 { return ms[max(0, int(math.Ceil(p*float64(len(ms))))-1)] }
	l.P50MS, l.P99MS = rank(0.5), rank(0.99)
	return l
}

// Meta describes what was evaluated.
type Meta struct {
	Dataset, Split string
	Depth          int
}

// Compute evaluates systems (the first one being the first stage) with the
// default measures plus primary, and compares each later system with the
// first, the candidate with the baseline and the cascade with the candidate
// when both are present.
func Compute(meta Meta, qrels dataset.Qrels, systems []System, primary string, opt compare.Options) (*Result, error) {
	if len(systems) == 0 {
		return nil, fmt.Errorf("report: no system to evaluate")
	}
	pm, err := metrics.Parse(primary)
	if err != nil {
		return nil, err
	}
	names := append([]string{pm.String()}, DefaultMeasures...)
	var ms []metrics.Measure
	seen := map[string]bool{}
	for _, n := range names {
		m, _ := metrics.Parse(n) // DefaultMeasures parse
		if !seen[m.String()] {
			seen[m.String()] = true
			ms = append(ms, m)
		}
	}
	r := &Result{Dataset: meta.Dataset, Split: meta.Split, Depth: meta.Depth, Primary: pm.String(), qrels: qrels}
	for _, m := range ms {
		r.Measures = append(r.Measures, m.String())
	}
	for i, s := range systems {
		per, err := metrics.Evaluate(s.Run, qrels, ms...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		s.PerQuery = per
		s.Means = map[string]float64{}
		for name, vals := range per {
			s.Means[name] = metrics.Mean(vals)
		}
		if i == 0 {
			r.Queries = len(per[r.Primary])
		} else if n := len(per[r.Primary]); n != r.Queries {
			return nil, fmt.Errorf("%s evaluated %d queries, %s %d: systems must run the same queries", s.Name, n, systems[0].Name, r.Queries)
		}
		r.Systems = append(r.Systems, s)
	}
	pair := func(base, cand System) error {
		c, err := compare.Paired(base.PerQuery[r.Primary], cand.PerQuery[r.Primary], opt)
		if err != nil {
			return err
		}
		r.Comparisons = append(r.Comparisons, Comparison{Base: base.Role, Candidate: cand.Role, Metric: r.Primary, Result: c})
		return nil
	}
	for _, s := range r.Systems[1:] {
		if err := pair(r.Systems[0], s); err != nil {
			return nil, err
		}
	}
	// The candidate against the baseline, and the cascade against the stage it follows.
	for _, p := range [][2]string{{Baseline, Candidate}, {Candidate, Cascade}} {
		b, okB := r.System(p[0])
		c, okC := r.System(p[1])
		if okB && okC {
			if err := pair(*b, *c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// System finds a system by role.
func (r *Result) System(role string) (*System, bool) {
	for i := range r.Systems {
		if r.Systems[i].Role == role {
			return &r.Systems[i], true
		}
	}
	return nil, false
}

// Main is the comparison a person looks at first: candidate vs baseline when
// both exist, else the last system vs the first stage; nil for one system.
func (r *Result) Main() *Comparison {
	if len(r.Comparisons) == 0 {
		return nil
	}
	return &r.Comparisons[len(r.Comparisons)-1]
}

// Best is the system a gate judges from this result: the candidate model if
// any, else the baseline model, else the first stage.
func (r *Result) Best() *System {
	for _, role := range []string{Candidate, Baseline} {
		if s, ok := r.System(role); ok {
			return s
		}
	}
	return &r.Systems[0]
}

// Load reads a result written with --json.
func Load(path string) (*Result, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: not an evaluation result: %w", path, err)
	}
	if len(r.Systems) == 0 || r.Systems[0].Role != FirstStage {
		return nil, fmt.Errorf("%s: not an evaluation result of `rerank eval --json` (no first-stage system)", path)
	}
	for _, s := range r.Systems {
		if len(s.PerQuery) == 0 {
			return nil, fmt.Errorf("%s: system %q has no per-query values", path, s.Name)
		}
	}
	return &r, nil
}
