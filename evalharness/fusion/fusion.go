// Package fusion combines a first-stage (BM25) score with a model score per
// query, as hybrid lexical+semantic rankers do, fits the first stage's weight
// on judged queries, and stores the result as fusion.json beside a checkpoint.
//
// The rules, which every function here follows:
//
//   - Order (and so every ranking made here) is by score descending, ties by
//     input position, i.e. first-stage order: the serving order of
//     host/server, which sorts stably over the first stage's hits. NaN sorts
//     last.
//   - Non-finite inputs (NaN, +Inf, -Inf) in either list are treated as equal
//     to the smallest finite value of that list (0 when it has none): a
//     broken score can only push its document down, never make the fused
//     scores NaN. Fuse never returns a non-finite score for valid Params.
//   - minmax: each list is min-max normalised per query to [0,1]; a list
//     whose (cleaned) values are all equal, one candidate included,
//     normalises to all 0, so it adds nothing to the order. The fused score
//     is a*first + (1-a)*model.
//   - zscore: each list is standardised per query (mean 0, standard
//     deviation 1; a constant list, one candidate included, becomes all 0)
//     and the fused score is a*first + (1-a)*model: less swayed than
//     min-max by one outlying score, which sets a min-max range alone.
//   - rrf: each list is ranked (ranks from 1, ties by input position, so tied
//     scores get distinct ranks) and the fused score is
//     a/(k+rank_first) + (1-a)/(k+rank_model). With a = 0.5 this is classic
//     reciprocal rank fusion, 1/(k+r1) + 1/(k+r2), halved. A constant list
//     ranks in input order, so with candidates given in first-stage order (as
//     Query and the serving path give them) it repeats the first stage's
//     order rather than adding nothing.
//   - Fit measures NDCG@10 with evalharness/metrics on the Order of the fused
//     scores (so, on ties, first-stage order, as served, and not trec_eval's
//     document ID order; where the fused scores have no ties the two agree).
//     Among grid points whose mean is within 1e-12 of the best it picks the
//     middle of the longest run of consecutive such points (ascending grid
//     order; lower middle of an even run; the run of smaller weights when two
//     are as long): NDCG is flat in a over ranges of equal rankings, and the
//     middle of the widest flat optimum is the choice least sensitive to the
//     split it was fitted on.
package fusion

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/rerankloop/rerank/evalharness/metrics"
)

// Methods.
const (
	MinMax = "minmax"
	ZScore = "zscore"
	RRF    = "rrf"
)

// DefaultRRFK is RRF's k when Params.RRFK is 0 (Cormack et al.'s value).
const DefaultRRFK = 60

// Params is how one model version's scores are fused with the first stage;
// stored as fusion.json beside a checkpoint and in the model registry.
type Params struct {
	Method     string  `json:"method"`              // MinMax (also when empty), ZScore or RRF
	BM25Weight float64 `json:"bm25_weight"`         // a: weight on the first stage; 0 = model alone, 1 = first stage alone
	RRFK       float64 `json:"rrf_k,omitempty"`     // RRF's k; 0 means DefaultRRFK; ignored by minmax
	FittedOn   string  `json:"fitted_on,omitempty"` // what a was fitted on, e.g. "scifact train (240 queries)"
	NDCG10     float64 `json:"ndcg10,omitempty"`    // mean NDCG@10 at a on what it was fitted on
}

// Validate checks that the method is known, a is within [0,1], k is 0 (the
// default) or positive, NDCG10 within [0,1], and no number is NaN or infinite.
func (p Params) Validate() error {
	switch p.Method {
	case "", MinMax, ZScore, RRF:
	default:
		return fmt.Errorf("fusion: unknown method %q (want %q, %q or %q)", p.Method, MinMax, ZScore, RRF)
	}
	if !(p.BM25Weight >= 0 && p.BM25Weight <= 1) { // also catches NaN
		return fmt.Errorf("fusion: bm25_weight %v must be within [0,1]", p.BM25Weight)
	}
	if !(p.RRFK >= 0) || math.IsInf(p.RRFK, 0) {
		return fmt.Errorf("fusion: rrf_k %v must be positive (or 0 for the default %d)", p.RRFK, DefaultRRFK)
	}
	if !(p.NDCG10 >= 0 && p.NDCG10 <= 1) {
		return fmt.Errorf("fusion: ndcg10 %v must be within [0,1]", p.NDCG10)
	}
	return nil
}

// Fuse returns the fused score of each candidate of one query, in input
// order; first and model hold the candidates' first-stage and model scores,
// also in that order. Rank with Order. See the package documentation for
// the methods and the handling of constant lists and non-finite scores.
//
// Fuse panics when the lengths differ or p is invalid (Validate it, or get it
// from Read or Fit, which do): both are programming errors, and a silently
// wrong ranking would be worse.
func (p Params) Fuse(first, model []float64) []float64 {
	if len(first) != len(model) {
		panic(fmt.Sprintf("fusion: Fuse: %d first-stage scores but %d model scores", len(first), len(model)))
	}
	if err := p.Validate(); err != nil {
		panic(err.Error())
	}
	a := p.BM25Weight
	f, m := clean(first), clean(model)
	out := make([]float64, len(f))
	if p.Method == RRF {
		k := p.RRFK
		if k == 0 {
			k = DefaultRRFK
		}
		rf, rm := ranks(f), ranks(m)
		for i := range out {
			out[i] = a/(k+float64(rf[i])) + (1-a)/(k+float64(rm[i]))
		}
		return out
	}
	scale := normalise
	if p.Method == ZScore {
		scale = standardise
	}
	scale(f)
	scale(m)
	for i := range out {
		out[i] = a*f[i] + (1-a)*m[i]
	}
	return out
}

// Order returns the indexes of scores by descending score, ties by index
// (stable), NaN last.
func Order(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	// cmp.Compare orders NaN before every number, so descending puts it last.
	slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(scores[j], scores[i]) })
	return idx
}

// clean copies xs with every non-finite value replaced by the smallest finite
// one (0 when there is none).
func clean(xs []float64) []float64 {
	lo, found := math.Inf(1), false
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, found = min(lo, x), true
		}
	}
	if !found {
		lo = 0
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			x = lo
		}
		out[i] = x
	}
	return out
}

// normalise maps finite xs onto [0,1] in place; a constant list becomes all 0.
func normalise(xs []float64) {
	if len(xs) == 0 {
		return
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if hi == lo {
		clear(xs)
		return
	}
	scale := 1.0
	if math.IsInf(hi-lo, 0) {
		scale = 0.5 // a range too wide for float64: halve before shifting
	}
	span := hi*scale - lo*scale
	for i, x := range xs {
		xs[i] = min((x*scale-lo*scale)/span, 1)
	}
}

// standardise maps finite xs to mean 0 and standard deviation 1 in place; a
// constant list becomes all 0.
func standardise(xs []float64) {
	if len(xs) == 0 {
		return
	}
	// Scaled by the largest magnitude first, so that squares cannot overflow.
	big := max(math.Abs(slices.Min(xs)), math.Abs(slices.Max(xs)))
	if big == 0 {
		return
	}
	mean := 0.0
	for _, x := range xs {
		mean += x / big
	}
	mean /= float64(len(xs))
	sd := 0.0
	for _, x := range xs {
		sd += (x/big - mean) * (x/big - mean)
	}
	sd = math.Sqrt(sd / float64(len(xs)))
	if sd == 0 {
		clear(xs)
		return
	}
	for i, x := range xs {
		xs[i] = (x/big - mean) / sd
	}
}

// ranks gives each position its rank from 1 in Order(xs).
func ranks(xs []float64) []int {
	r := make([]int, len(xs))
	for rank, i := range Order(xs) {
		r[i] = rank + 1
	}
	return r
}

// Query is one judged query: candidates in first-stage order with both scores
// and the judged labels (document ID -> graded label, as dataset.Qrels).
type Query struct {
	ID     string
	DocIDs []string
	First  []float64
	Model  []float64
	Judged map[string]int
}

// GridPoint is one first-stage weight tried, with its mean NDCG@10.
type GridPoint struct {
	BM25Weight float64 `json:"bm25_weight"`
	NDCG10     float64 `json:"ndcg10"`
}

// ndcg10 is the measure Fit optimises.
var ndcg10 = metrics.Measure{Kind: metrics.NDCG, K: 10}

// tieEps treats means this close as equal: floating-point noise.
const tieEps = 1e-12

// DefaultGrid is Fit's grid when none is given: 0, 0.05, ..., 1.
func DefaultGrid() []float64 {
	g := make([]float64, 21)
	for i := range g {
		g[i] = float64(i) / 20
	}
	return g
}

// Evaluate is each query's NDCG@10 (by query ID) when its candidates are
// ranked by Order(p.Fuse(First, Model)), measured by evalharness/metrics
// against the query's judgements. Pass the result to metrics.Mean, or with
// another system's values to compare.Paired. It is an error when there are no
// queries, a query ID repeats or is empty, a query's lists differ in length,
// a document repeats within a query, a query has no judgements, or p is
// invalid.
func Evaluate(p Params, queries []Query) (map[string]float64, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := check(queries); err != nil {
		return nil, err
	}
	return evaluate(p, queries), nil
}

func evaluate(p Params, queries []Query) map[string]float64 {
	out := make(map[string]float64, len(queries))
	for _, q := range queries {
		order := Order(p.Fuse(q.First, q.Model))
		ranked := make([]string, len(order))
		for r, i := range order {
			ranked[r] = q.DocIDs[i]
		}
		out[q.ID] = ndcg10.Query(ranked, q.Judged)
	}
	return out
}

func check(queries []Query) error {
	if len(queries) == 0 {
		return errors.New("fusion: no queries")
	}
	seen := make(map[string]bool, len(queries))
	for _, q := range queries {
		if q.ID == "" {
			return errors.New("fusion: a query has an empty ID")
		}
		if seen[q.ID] {
			return fmt.Errorf("fusion: query %q appears twice", q.ID)
		}
		seen[q.ID] = true
		if len(q.First) != len(q.DocIDs) || len(q.Model) != len(q.DocIDs) {
			return fmt.Errorf("fusion: query %q: %d documents, %d first-stage scores, %d model scores",
				q.ID, len(q.DocIDs), len(q.First), len(q.Model))
		}
		if len(q.Judged) == 0 {
			return fmt.Errorf("fusion: query %q has no judgements", q.ID)
		}
		docs := make(map[string]bool, len(q.DocIDs))
		for _, d := range q.DocIDs {
			if docs[d] {
				return fmt.Errorf("fusion: query %q: document %q appears twice", q.ID, d)
			}
			docs[d] = true
		}
	}
	return nil
}

// Fit tries each first-stage weight of grid (nil or empty: DefaultGrid) with
// method ("" is MinMax; RRF uses DefaultRRFK) and returns the best Params,
// with NDCG10 its mean NDCG@10 (FittedOn is the caller's to fill), and every
// point tried in ascending weight order, duplicates dropped. Ties are settled
// as the package documentation says. It is an error, before anything is
// scored, when method is unknown, a grid value is outside [0,1] or NaN, or
// the queries fail Evaluate's checks.
func Fit(method string, queries []Query, grid []float64) (Params, []GridPoint, error) {
	g, err := fitGrid(method, queries, grid)
	if err != nil {
		return Params{}, nil, err
	}
	// The longest run of consecutive points within tieEps of the best; its
	// middle.
	best := g.points[g.best].NDCG10
	bestStart, bestLen := 0, 0
	for i := 0; i < len(g.points); {
		if g.points[i].NDCG10 < best-tieEps {
			i++
			continue
		}
		j := i
		for j < len(g.points) && g.points[j].NDCG10 >= best-tieEps {
			j++
		}
		if j-i > bestLen {
			bestStart, bestLen = i, j-i
		}
		i = j
	}
	return g.params(bestStart + (bestLen-1)/2), g.points, nil
}

// FitToward is Fit for a model that takes over from one fused with
// first-stage weight ref (the model it was fine-tuned from): among the
// weights whose mean NDCG@10 is within one standard error of the best's (of
// their per-query differences from it), it picks the one nearest ref, the
// higher mean on a tie. It is the one-standard-error rule of model selection
// with "least change from what serves" as the simpler model: a weight the
// validation queries cannot tell from the best is no reason to reorder
// results. (A retrain in the demo fitted a = 0.05 where its base had 0.40,
// on 62 click-labelled validation queries; on the 300 test claims both gave
// the same mean NDCG@10, but 0.05 reordered far more queries, both ways.)
// Errors are Fit's, and ref outside [0,1].
func FitToward(method string, queries []Query, grid []float64, ref float64) (Params, []GridPoint, error) {
	if !(ref >= 0 && ref <= 1) {
		return Params{}, nil, fmt.Errorf("fusion: reference weight %v must be within [0,1]", ref)
	}
	g, err := fitGrid(method, queries, grid)
	if err != nil {
		return Params{}, nil, err
	}
	dist := func(i int) float64 { return math.Abs(g.points[i].BM25Weight - ref) }
	pick := g.best
	for i := range g.points {
		// In query order, as metrics.Mean sums, so that the choice does not
		// depend on map iteration.
		diff := make([]float64, 0, len(queries))
		for _, q := range queries {
			diff = append(diff, g.perQuery[g.best][q.ID]-g.perQuery[i][q.ID])
		}
		if mean, se := meanSE(diff); mean > se+tieEps {
			continue // worse than the best by more than a standard error
		}
		if d := dist(i); d < dist(pick) || d == dist(pick) && g.points[i].NDCG10 > g.points[pick].NDCG10 {
			pick = i
		}
	}
	return g.params(pick), g.points, nil
}

// meanSE is the mean of xs and its standard error (sample standard
// deviation over the square root of the count; 0 for fewer than two).
func meanSE(xs []float64) (mean, se float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/float64(len(xs)-1)) / math.Sqrt(float64(len(xs)))
}

// grid is every weight tried: the points in ascending weight order, each
// one's per-query NDCG@10, and the index of the first best point.
type grid struct {
	base     Params
	points   []GridPoint
	perQuery []map[string]float64
	best     int
}

func (g grid) params(i int) Params {
	out := g.base
	out.BM25Weight, out.NDCG10 = g.points[i].BM25Weight, g.points[i].NDCG10
	return out
}

// fitGrid checks Fit's arguments and evaluates every weight.
func fitGrid(method string, queries []Query, weights []float64) (grid, error) {
	g := grid{base: Params{Method: method}}
	if method == "" {
		g.base.Method = MinMax
	}
	if method == RRF {
		g.base.RRFK = DefaultRRFK
	}
	if err := g.base.Validate(); err != nil {
		return grid{}, err
	}
	if len(weights) == 0 {
		weights = DefaultGrid()
	}
	for _, a := range weights {
		if !(a >= 0 && a <= 1) {
			return grid{}, fmt.Errorf("fusion: grid weight %v must be within [0,1]", a)
		}
	}
	weights = slices.Clone(weights)
	slices.Sort(weights)
	weights = slices.Compact(weights)
	if err := check(queries); err != nil {
		return grid{}, err
	}
	for i, a := range weights {
		p := g.base
		p.BM25Weight = a
		q := evaluate(p, queries)
		g.perQuery = append(g.perQuery, q)
		g.points = append(g.points, GridPoint{BM25Weight: a, NDCG10: metrics.Mean(q)})
		if g.points[i].NDCG10 > g.points[g.best].NDCG10 {
			g.best = i
		}
	}
	return g, nil
}

// String describes p in a report: "minmax a=0.30", "zscore a=0.30" or
// "rrf a=0.50 k=60".
func (p Params) String() string {
	switch p.Method {
	case RRF:
		k := p.RRFK
		if k == 0 {
			k = DefaultRRFK
		}
		return fmt.Sprintf("rrf a=%.2f k=%g", p.BM25Weight, k)
	case ZScore:
		return fmt.Sprintf("zscore a=%.2f", p.BM25Weight)
	}
	return fmt.Sprintf("minmax a=%.2f", p.BM25Weight)
}
