package fusion

import (
	"cmp"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/trec"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func wantScores(t *testing.T, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d scores %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !near(got[i], want[i]) {
			t.Fatalf("score %d: got %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}

func TestFuseMinMaxHandComputed(t *testing.T) {
	// first normalises to [1, 0, 0.5]; model (min -0.4, range 1.2) to [0.5, 1, 0].
	p := Params{Method: MinMax, BM25Weight: 0.3}
	got := p.Fuse([]float64{10, 4, 7}, []float64{0.2, 0.8, -0.4})
	wantScores(t, got, []float64{0.3*1 + 0.7*0.5, 0.3*0 + 0.7*1, 0.3*0.5 + 0.7*0})
	// The empty method is minmax.
	wantScores(t, Params{BM25Weight: 0.3}.Fuse([]float64{10, 4, 7}, []float64{0.2, 0.8, -0.4}), got)
	// Normalised inputs stay within [0,1], and so do the fused scores,
	// also for ranges too wide for float64.
	wide := Params{BM25Weight: 0.5}.Fuse([]float64{-1e308, 0, 1e308}, []float64{1e308, -1e308, 0})
	wantScores(t, wide, []float64{0.5, 0.25, 0.75})
}

func TestFuseZScoreHandComputed(t *testing.T) {
	// first [10 4 7]: mean 7, sd sqrt(6); model [0.2 0.8 -0.4]: mean 0.2, sd sqrt(0.24).
	p := Params{Method: ZScore, BM25Weight: 0.3}
	got := p.Fuse([]float64{10, 4, 7}, []float64{0.2, 0.8, -0.4})
	zf := []float64{3 / math.Sqrt(6), -3 / math.Sqrt(6), 0}
	zm := []float64{0, 0.6 / math.Sqrt(0.24), -0.6 / math.Sqrt(0.24)}
	wantScores(t, got, []float64{0.3*zf[0] + 0.7*zm[0], 0.3*zf[1] + 0.7*zm[1], 0.3*zf[2] + 0.7*zm[2]})
	// Constant lists add nothing; values near the float64 limits stay finite.
	wantScores(t, p.Fuse([]float64{3, 3, 3}, []float64{7, 7, 7}), []float64{0, 0, 0})
	for _, x := range p.Fuse([]float64{-1e308, 0, 1e308}, []float64{1e308, 1e308, -1e308}) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("non-finite fused score %v", x)
		}
	}
	if s := p.String(); s != "zscore a=0.30" {
		t.Fatalf("String: %q", s)
	}
}

func TestFuseExtremeWeightsReproduceOrders(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, method := range []string{MinMax, ZScore, RRF} {
		for trial := range 200 {
			n := 1 + rng.IntN(40)
			first, model := make([]float64, n), make([]float64, n)
			for i := range n {
				// Integer BM25-like scores, so that ties occur and must
				// keep input order; model scores spread over a wide range.
				first[i] = float64(rng.IntN(8))
				model[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(6)-3))
			}
			if got, want := Order(Params{Method: method, BM25Weight: 1}.Fuse(first, model)), Order(first); !slices.Equal(got, want) {
				t.Fatalf("%s trial %d, a=1: order %v, first-stage order %v (first %v)", method, trial, got, want, first)
			}
			if got, want := Order(Params{Method: method, BM25Weight: 0}.Fuse(first, model)), Order(model); !slices.Equal(got, want) {
				t.Fatalf("%s trial %d, a=0: order %v, model order %v (model %v)", method, trial, got, want, model)
			}
		}
	}
}

func TestFuseConstantLists(t *testing.T) {
	// A constant first stage normalises to all 0: the model alone orders.
	p := Params{BM25Weight: 0.5}
	got := p.Fuse([]float64{3, 3, 3}, []float64{1, 2, 0})
	wantScores(t, got, []float64{0.25, 0.5, 0})
	if o := Order(got); !slices.Equal(o, []int{1, 0, 2}) {
		t.Fatalf("order %v, want the model's [1 0 2]", o)
	}
	// A constant model: the first stage alone orders.
	got = p.Fuse([]float64{1, 5, 3}, []float64{-2, -2, -2})
	wantScores(t, got, []float64{0, 0.5, 0.25})
	// Both constant: all 0, and the order is the input's.
	got = p.Fuse([]float64{3, 3, 3}, []float64{7, 7, 7})
	wantScores(t, got, []float64{0, 0, 0})
	if o := Order(got); !slices.Equal(o, []int{0, 1, 2}) {
		t.Fatalf("order %v, want input order", o)
	}
	// One candidate, and none.
	wantScores(t, p.Fuse([]float64{4}, []float64{9}), []float64{0})
	if got := p.Fuse(nil, nil); len(got) != 0 {
		t.Fatalf("no candidates: got %v", got)
	}
}

func TestFuseRRFHandComputed(t *testing.T) {
	// first ranks [1 2 3]; model ranks [3 1 2].
	p := Params{Method: RRF, BM25Weight: 0.5}
	got := p.Fuse([]float64{3, 2, 1}, []float64{0.1, 0.9, 0.5})
	want := []float64{0.5/61 + 0.5/63, 0.5/62 + 0.5/61, 0.5/63 + 0.5/62}
	wantScores(t, got, want)
	// At a = 0.5 it is classic RRF, halved.
	classic := []float64{1.0/61 + 1.0/63, 1.0/62 + 1.0/61, 1.0/63 + 1.0/62}
	for i := range got {
		if !near(2*got[i], classic[i]) {
			t.Fatalf("2*fused %v, classic RRF %v", 2*got[i], classic[i])
		}
	}
	// Ties take distinct ranks by input position: first [1 1 2] ranks [2 3 1],
	// model [5 5 5] ranks [1 2 3]; k = 10, a = 0.25.
	p = Params{Method: RRF, BM25Weight: 0.25, RRFK: 10}
	got = p.Fuse([]float64{1, 1, 2}, []float64{5, 5, 5})
	wantScores(t, got, []float64{0.25/12 + 0.75/11, 0.25/13 + 0.75/12, 0.25/11 + 0.75/13})
}

func TestFuseNonFiniteScoresCountAsListMinimum(t *testing.T) {
	first := []float64{5, 4, 3, 2, 1}
	model := []float64{math.NaN(), 0.5, math.Inf(1), math.Inf(-1), 0.2}
	// model cleans to [0.2 0.5 0.2 0.2 0.2], normalising to [0 1 0 0 0];
	// first normalises to [1 .75 .5 .25 0].
	got := Params{BM25Weight: 0.5}.Fuse(first, model)
	wantScores(t, got, []float64{0.5, 0.875, 0.25, 0.125, 0})
	if o := Order(got); !slices.Equal(o, []int{1, 0, 2, 3, 4}) {
		t.Fatalf("order %v", o)
	}
	// RRF: the non-finite model scores rank with the minimum (0.2), by
	// position: model ranks [2 1 3 4 5].
	got = Params{Method: RRF, BM25Weight: 0.5}.Fuse(first, model)
	wantScores(t, got, []float64{0.5/61 + 0.5/62, 0.5/62 + 0.5/61, 0.5/63 + 0.5/63, 0.5/64 + 0.5/64, 0.5/65 + 0.5/65})
	// Nothing finite at all: a constant list. The first stage may be broken too.
	for _, method := range []string{MinMax, RRF} {
		nan := math.NaN()
		got = Params{Method: method, BM25Weight: 0.4}.Fuse([]float64{3, nan, math.Inf(1), 1}, []float64{nan, nan, nan, nan})
		for i, s := range got {
			if math.IsNaN(s) || math.IsInf(s, 0) {
				t.Fatalf("%s: fused score %d is %v", method, i, s)
			}
		}
		// +Inf counts as the minimum too (1), so it does not jump to the top.
		if o := Order(got); !slices.Equal(o, []int{0, 1, 2, 3}) {
			t.Fatalf("%s: order %v, want [0 1 2 3]: the first stage's, broken scores as its minimum", method, o)
		}
	}
}

func TestOrder(t *testing.T) {
	got := Order([]float64{1, 3, 3, math.NaN(), 2, math.Inf(-1)})
	if want := []int{1, 2, 4, 0, 5, 3}; !slices.Equal(got, want) {
		t.Fatalf("Order = %v, want %v (descending, ties by index, NaN last)", got, want)
	}
}

func TestOrderIsStableOnLongLists(t *testing.T) {
	// Long enough for an unstable sort to reorder ties.
	scores := make([]float64, 100)
	for i := range scores {
		scores[i] = float64(i % 3)
	}
	var want []int
	for v := 2; v >= 0; v-- {
		for i := range scores {
			if i%3 == v {
				want = append(want, i)
			}
		}
	}
	if got := Order(scores); !slices.Equal(got, want) {
		t.Fatalf("Order = %v, want %v", got, want)
	}
}

func TestEvaluateIsNDCGAt10(t *testing.T) {
	// 12 candidates in first-stage order; at a = 1 the ranking is that order.
	// Graded labels at ranks 5 (2) and 11 (1, beyond the cutoff) and an
	// unretrieved judged document (3) that belongs in the ideal ranking.
	q := Query{ID: "q", Judged: map[string]int{"d4": 2, "d10": 1, "gone": 3, "d0": 0}}
	for i := range 12 {
		q.DocIDs = append(q.DocIDs, "d"+strconv.Itoa(i))
		q.First = append(q.First, float64(12-i))
		q.Model = append(q.Model, float64(i))
	}
	got, err := Evaluate(Params{BM25Weight: 1}, []Query{q})
	if err != nil {
		t.Fatal(err)
	}
	want := (2 / math.Log2(6)) / (3/math.Log2(2) + 2/math.Log2(3) + 1/math.Log2(4))
	if !near(got["q"], want) {
		t.Fatalf("NDCG@10 %v, want %v", got["q"], want)
	}
}

func TestFusePanicsOnMisuse(t *testing.T) {
	for name, f := range map[string]func(){
		"length mismatch": func() { Params{BM25Weight: 0.5}.Fuse([]float64{1, 2}, []float64{1}) },
		"invalid params":  func() { Params{BM25Weight: 2}.Fuse([]float64{1}, []float64{1}) },
		"NaN weight":      func() { Params{BM25Weight: math.NaN()}.Fuse([]float64{1}, []float64{1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Fuse did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{
		{}, {Method: MinMax, BM25Weight: 1}, {Method: RRF, BM25Weight: 0.5, RRFK: 60},
		{Method: RRF, RRFK: 0.5}, {BM25Weight: 0.2, NDCG10: 1, FittedOn: "x"},
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, p := range []Params{
		{Method: "linear"}, {Method: "MinMax"}, {BM25Weight: -0.01}, {BM25Weight: 1.01},
		{BM25Weight: math.NaN()}, {BM25Weight: math.Inf(1)}, {Method: RRF, RRFK: -1},
		{Method: RRF, RRFK: math.NaN()}, {Method: RRF, RRFK: math.Inf(1)},
		{NDCG10: math.NaN()}, {NDCG10: 1.5}, {NDCG10: -0.1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
}

// Two docs per query compete, R (relevant) and N; Z is an irrelevant anchor
// at 0 in both lists. All scores already span [0,1], so normalisation leaves
// them as they are.
//
// favourFirst: R = (f 1, m 0.63), N = (f 0, m 1): R first iff
// a + 0.63(1-a) > 1-a, i.e. a > 0.37/1.37 = 0.2701.
// favourModel: N = (f 1, m 0.5), R = (f 0, m 1): R first iff
// 1-a > a + 0.5(1-a), i.e. a < 1/3.
// So both are right only for a in (0.2701, 0.3333): on the default grid,
// only at 0.3.
func favourFirst(id string) Query {
	return Query{ID: id, DocIDs: []string{"r", "n", "z"}, First: []float64{1, 0, 0}, Model: []float64{0.63, 1, 0},
		Judged: map[string]int{"r": 1, "n": 0, "z": 0}}
}

func favourModel(id string) Query {
	return Query{ID: id, DocIDs: []string{"n", "r", "z"}, First: []float64{1, 0, 0}, Model: []float64{0.5, 1, 0},
		Judged: map[string]int{"r": 1, "n": 0, "z": 0}}
}

// directNDCG computes a mean NDCG@10 the long way, with the metrics package.
func directNDCG(t *testing.T, p Params, qs []Query) float64 {
	t.Helper()
	m, err := metrics.Parse("ndcg@10")
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]float64{}
	for _, q := range qs {
		var ranked []string
		for _, i := range Order(p.Fuse(q.First, q.Model)) {
			ranked = append(ranked, q.DocIDs[i])
		}
		per[q.ID] = m.Query(ranked, q.Judged)
	}
	return metrics.Mean(per)
}

func TestFitFindsInteriorBest(t *testing.T) {
	var qs []Query
	for i := range 3 {
		qs = append(qs, favourFirst("f"+string(rune('a'+i))), favourModel("m"+string(rune('a'+i))))
	}
	p, points, err := Fit("", qs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != MinMax || p.BM25Weight != 0.3 || p.RRFK != 0 || p.FittedOn != "" {
		t.Fatalf("Fit = %+v, want minmax at a = 0.3", p)
	}
	if len(points) != 21 || points[0].BM25Weight != 0 || points[20].BM25Weight != 1 {
		t.Fatalf("grid points: %v", points)
	}
	second := 1 / math.Log2(3) // NDCG@10 with the one relevant document second
	for _, pt := range points {
		want := (1 + second) / 2
		if pt.BM25Weight == 0.3 {
			want = 1
		}
		if !near(pt.NDCG10, want) {
			t.Errorf("a = %v: NDCG@10 %v, want %v", pt.BM25Weight, pt.NDCG10, want)
		}
		if d := directNDCG(t, Params{BM25Weight: pt.BM25Weight}, qs); pt.NDCG10 != d {
			t.Errorf("a = %v: Fit reports %v, the metrics package %v", pt.BM25Weight, pt.NDCG10, d)
		}
	}
	if p.NDCG10 != 1 {
		t.Fatalf("fitted NDCG@10 %v, want 1", p.NDCG10)
	}
	// The fused scores at 0.3 have no ties, so trec_eval's order agrees: the
	// harness's own evaluation of the fused run gives the same number.
	run, qrels := trec.Run{}, dataset.Qrels{}
	for _, q := range qs {
		for i, s := range p.Fuse(q.First, q.Model) {
			run.Add(q.ID, q.DocIDs[i], s)
		}
		qrels[q.ID] = q.Judged
	}
	m, _ := metrics.Parse("ndcg@10")
	per, err := metrics.Evaluate(run, qrels, m)
	if err != nil {
		t.Fatal(err)
	}
	if got := metrics.Mean(per[m.String()]); got != p.NDCG10 {
		t.Fatalf("metrics.Evaluate on the fused run: %v, Fit: %v", got, p.NDCG10)
	}
	// Evaluate gives the per-query values behind the mean.
	vals, err := Evaluate(p, qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != len(qs) || metrics.Mean(vals) != p.NDCG10 {
		t.Fatalf("Evaluate: %v", vals)
	}
}

func TestFitRRF(t *testing.T) {
	qs := []Query{favourFirst("f"), favourModel("m")}
	p, points, err := Fit(RRF, qs, []float64{0, 0.5, 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != RRF || p.RRFK != DefaultRRFK || len(points) != 3 {
		t.Fatalf("Fit = %+v, %v", p, points)
	}
	for _, pt := range points {
		if d := directNDCG(t, Params{Method: RRF, BM25Weight: pt.BM25Weight}, qs); pt.NDCG10 != d {
			t.Errorf("a = %v: Fit reports %v, the metrics package %v", pt.BM25Weight, pt.NDCG10, d)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFitTiesAreDeterministic(t *testing.T) {
	// Everything ties (both lists agree): the middle of the whole grid.
	agree := Query{ID: "q", DocIDs: []string{"a", "b"}, First: []float64{2, 1}, Model: []float64{5, 3}, Judged: map[string]int{"a": 2}}
	p, _, err := Fit(MinMax, []Query{agree}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.BM25Weight != 0.5 {
		t.Fatalf("all tied: a = %v, want 0.5", p.BM25Weight)
	}
	// Only favourFirst: best for every a > 0.2701, i.e. 0.3 .. 1 (15 points):
	// the middle one, 0.65.
	p, _, err = Fit(MinMax, []Query{favourFirst("f")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !near(p.BM25Weight, 0.65) {
		t.Fatalf("plateau 0.3..1: a = %v, want 0.65", p.BM25Weight)
	}
	// Two equally long optimal runs, a < 0.1935 (R model-favoured: N =
	// (f 1, m 0.76), R = (f 0, m 1)) and a > 0.8065 (R first-stage favoured:
	// R = (f 1, m 0), N = (f 0.76, m 1)): four points each; the smaller
	// run's lower middle, 0.05. Grid order and query order do not matter.
	low := Query{ID: "low", DocIDs: []string{"n", "r", "z"}, First: []float64{1, 0, 0}, Model: []float64{0.76, 1, 0}, Judged: map[string]int{"r": 1}}
	high := Query{ID: "high", DocIDs: []string{"r", "n", "z"}, First: []float64{1, 0.76, 0}, Model: []float64{0, 1, 0}, Judged: map[string]int{"r": 1}}
	grid := DefaultGrid()
	var first GridPoint
	for i := range 5 {
		qs := []Query{low, high}
		if i%2 == 1 {
			qs = []Query{high, low}
		}
		g := slices.Clone(grid)
		rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(g), func(a, b int) { g[a], g[b] = g[b], g[a] })
		g = append(g, g[:3]...) // duplicates are dropped
		p, points, err := Fit(MinMax, qs, g)
		if err != nil {
			t.Fatal(err)
		}
		if p.BM25Weight != 0.05 {
			t.Fatalf("run %d: a = %v, want 0.05 (points %v)", i, p.BM25Weight, points)
		}
		if len(points) != 21 || !slices.IsSortedFunc(points, func(a, b GridPoint) int { return cmp.Compare(a.BM25Weight, b.BM25Weight) }) {
			t.Fatalf("run %d: points not the sorted, deduplicated grid: %v", i, points)
		}
		if i == 0 {
			first = points[1]
		} else if points[1] != first {
			t.Fatalf("run %d: %v, first run %v", i, points[1], first)
		}
		if points[0].NDCG10 != points[20].NDCG10 || points[3].NDCG10 != points[17].NDCG10 || points[4].NDCG10 >= points[3].NDCG10 {
			t.Fatalf("run %d: the constructed optimum is not two 4-point runs: %v", i, points)
		}
	}
}

func TestFitErrors(t *testing.T) {
	good := favourFirst("q")
	mod := func(f func(q *Query)) []Query {
		q := good
		q.DocIDs, q.First, q.Model = slices.Clone(q.DocIDs), slices.Clone(q.First), slices.Clone(q.Model)
		f(&q)
		return []Query{q}
	}
	for name, c := range map[string]struct {
		method string
		qs     []Query
		grid   []float64
		want   string
	}{
		"no queries":         {qs: nil, want: "no queries"},
		"first too short":    {qs: mod(func(q *Query) { q.First = q.First[:2] }), want: `query "q": 3 documents, 2 first-stage scores, 3 model scores`},
		"model too long":     {qs: mod(func(q *Query) { q.Model = append(q.Model, 1) }), want: "4 model scores"},
		"ids too short":      {qs: mod(func(q *Query) { q.DocIDs = q.DocIDs[:1] }), want: "1 documents"},
		"duplicate document": {qs: mod(func(q *Query) { q.DocIDs[2] = "r" }), want: `document "r" appears twice`},
		"duplicate query":    {qs: []Query{good, good}, want: `query "q" appears twice`},
		"empty query id":     {qs: mod(func(q *Query) { q.ID = "" }), want: "empty ID"},
		"no judgements":      {qs: mod(func(q *Query) { q.Judged = nil }), want: "no judgements"},
		"unknown method":     {method: "sum", qs: []Query{good}, want: "unknown method"},
		"grid above 1":       {qs: []Query{good}, grid: []float64{0.5, 1.5}, want: "grid weight 1.5"},
		"grid NaN":           {qs: []Query{good}, grid: []float64{math.NaN()}, want: "grid weight NaN"},
	} {
		_, _, err := Fit(c.method, c.qs, c.grid)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
	if _, err := Evaluate(Params{BM25Weight: 0.5}, mod(func(q *Query) { q.First = nil })); err == nil {
		t.Error("Evaluate accepted mismatched lengths")
	}
	if _, err := Evaluate(Params{BM25Weight: 5}, []Query{good}); err == nil {
		t.Error("Evaluate accepted invalid params")
	}
}

func TestReadWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := Params{Method: RRF, BM25Weight: 0.35, RRFK: 20, FittedOn: "scifact train (240 queries)", NDCG10: 0.6843}
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	got, found, err := Read(dir)
	if err != nil || !found || got != want {
		t.Fatalf("Read = %+v, %v, %v; want %+v", got, found, err, want)
	}
	// Overwriting replaces it, and no temporary file stays behind.
	want = Params{Method: MinMax, BM25Weight: 0}
	if err := Write(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, found, err = Read(dir); err != nil || !found || got != want {
		t.Fatalf("after overwrite Read = %+v, %v, %v; want %+v", got, found, err, want)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != File {
		t.Fatalf("directory holds %v, want only %s", ents, File)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	// a = 0 is written out: a reader must not have to guess it.
	if !strings.Contains(string(data), `"bm25_weight": 0`) || !strings.HasSuffix(string(data), "}\n") {
		t.Fatalf("file:\n%s", data)
	}
	if fi, err := os.Stat(filepath.Join(dir, File)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestReadAbsent(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "no-such-checkpoint")} {
		p, found, err := Read(dir)
		if err != nil || found || p != (Params{}) {
			t.Fatalf("%s: Read = %+v, %v, %v; want not found, no error", dir, p, found, err)
		}
	}
}

func TestReadRefusesBadFiles(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"corrupt":        {`{"method": "minmax", "bm25_weight": 0.`, "unexpected EOF"},
		"not json":       {"method=minmax\n", "invalid character"},
		"empty":          {"", "EOF"},
		"missing weight": {`{"method": "minmax"}`, "bm25_weight is missing"},
		"unknown field":  {`{"method": "rrf", "bm25_weight": 0.5, "rrfk": 20}`, `unknown field "rrfk"`},
		"trailing data":  {`{"bm25_weight": 0.5} {"bm25_weight": 0.6}`, "data after"},
		"weight range":   {`{"method": "minmax", "bm25_weight": 1.5}`, "bm25_weight 1.5"},
		"unknown method": {`{"method": "sum", "bm25_weight": 0.5}`, "unknown method"},
		"negative k":     {`{"method": "rrf", "bm25_weight": 0.5, "rrf_k": -3}`, "rrf_k -3"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, File)
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		p, found, err := Read(dir)
		if err == nil || found || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Read = %+v, %v, %v; want an error naming %s and containing %q", name, p, found, err, path, c.want)
		}
	}
	// fusion.json that is a directory.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, File), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, found, err := Read(dir); err == nil || found || !strings.Contains(err.Error(), filepath.Join(dir, File)) {
		t.Errorf("directory: %v, %v", found, err)
	}
}

func TestWriteRefusesInvalidParams(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []Params{{BM25Weight: 1.2}, {BM25Weight: math.NaN()}, {Method: "sum"}, {Method: RRF, RRFK: -1}} {
		err := Write(dir, p)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, File)) {
			t.Errorf("%+v: Write error %v, want one naming the file", p, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("invalid params left %v behind", ents)
	}
	if err := Write(filepath.Join(dir, "missing"), Params{}); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

// TestFitTowardKeepsWhatServesWithinNoise: FitToward moves from the serving
// weight only to a weight that beats it by more than a standard error.
func TestFitTowardKeepsWhatServesWithinNoise(t *testing.T) {
	var mixed, model []Query
	for i := range 5 {
		id := strconv.Itoa(i)
		model = append(model, favourModel("m"+id))
		if i < 3 {
			mixed = append(mixed, favourModel("m"+id)) // right at a = 0.1, not at 0.6
		} else {
			mixed = append(mixed, favourFirst("f"+id)) // right at 0.6, not at 0.1
		}
	}
	var interior []Query
	for i := range 3 {
		interior = append(interior, favourFirst("f"+strconv.Itoa(i)), favourModel("m"+strconv.Itoa(i)))
	}
	for _, c := range []struct {
		name string
		qs   []Query
		grid []float64
		ref  float64
		fit  float64 // Fit's choice
		want float64 // FitToward's
	}{
		// 0.1 leads by 0.074 on average, a standard error of 0.18: noise.
		{"within noise", mixed, []float64{0.1, 0.6}, 0.6, 0.1, 0.6},
		// 0.1 is better on every query.
		{"better everywhere", model, []float64{0.1, 0.6}, 0.6, 0.1, 0.1},
		// Only 0.3 ranks all six right; 0.25 and 0.35 lose 3 of them.
		{"clear interior best", interior, nil, 0.35, 0.3, 0.3},
		{"reference is best", mixed, []float64{0.1, 0.6}, 0.1, 0.1, 0.1},
	} {
		p, _, err := Fit("", c.qs, c.grid)
		if err != nil || p.BM25Weight != c.fit {
			t.Fatalf("%s: Fit %+v %v, want a = %v", c.name, p, err, c.fit)
		}
		p, points, err := FitToward("", c.qs, c.grid, c.ref)
		if err != nil || p.BM25Weight != c.want {
			t.Errorf("%s: FitToward(%v) %+v %v, want a = %v", c.name, c.ref, p, err, c.want)
		}
		n := len(c.grid)
		if n == 0 {
			n = len(DefaultGrid())
		}
		if d := directNDCG(t, Params{BM25Weight: p.BM25Weight}, c.qs); p.NDCG10 != d || len(points) != n {
			t.Errorf("%s: NDCG@10 %v, the metrics package %v; %d points", c.name, p.NDCG10, d, len(points))
		}
	}
	for _, ref := range []float64{-0.1, 1.5, math.NaN()} {
		if _, _, err := FitToward("", mixed, nil, ref); err == nil || !strings.Contains(err.Error(), "reference weight") {
			t.Errorf("reference %v: error %v", ref, err)
		}
	}
}
