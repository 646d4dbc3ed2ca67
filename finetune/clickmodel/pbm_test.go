package clickmodel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// simulation is a click log generated from known relevance and known
// position bias.
type simulation struct {
	imps  []Impression
	rel   map[[2]string]int // (key, doc) -> true grade 0-4
	theta []float64
}

// simulate logs nq queries of ten documents each. Every query has three
// fixed rankings, as if three rankers had served it: the main one takes 80%
// of the traffic and is unrelated to relevance (so raw click rates mostly
// measure where it put a document), the two others 10% each.
func simulate(seed uint64, nq, impsPerQuery int) simulation {
	rng := rand.New(rand.NewPCG(seed, 99))
	attract := []float64{0.05, 0.15, 0.35, 0.6, 0.85}
	const ndocs = 10
	s := simulation{rel: map[[2]string]int{}}
	for k := 1; k <= ndocs; k++ {
		s.theta = append(s.theta, 1/float64(k))
	}
	for q := range nq {
		query := fmt.Sprintf("query %d", q)
		docs := make([]string, ndocs)
		for i := range docs {
			docs[i] = fmt.Sprintf("q%d-d%d", q, i)
			s.rel[[2]string{query, docs[i]}] = rng.IntN(5)
		}
		var rankings [3][]string
		for r := range rankings {
			rankings[r] = append([]string(nil), docs...)
			rng.Shuffle(ndocs, func(i, j int) { rankings[r][i], rankings[r][j] = rankings[r][j], rankings[r][i] })
		}
		for range impsPerQuery {
			ranking := rankings[0]
			if u := rng.Float64(); u > 0.9 {
				ranking = rankings[2]
			} else if u > 0.8 {
				ranking = rankings[1]
			}
			im := Impression{Query: query}
			for i, d := range ranking {
				clicked := rng.Float64() < s.theta[i] && rng.Float64() < attract[s.rel[[2]string{query, d}]]
				im.Results = append(im.Results, Result{DocID: d, Position: i + 1, Clicked: clicked})
			}
			s.imps = append(s.imps, im)
		}
	}
	return s
}

// kendallTauB is Kendall's rank correlation with ties (tau-b).
func kendallTauB(x, y []float64) float64 {
	var conc, disc, tx, ty float64
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			dx, dy := x[i]-x[j], y[i]-y[j]
			switch {
			case dx == 0 && dy == 0:
			case dx == 0:
				tx++
			case dy == 0:
				ty++
			case (dx > 0) == (dy > 0):
				conc++
			default:
				disc++
			}
		}
	}
	den := math.Sqrt((conc + disc + tx) * (conc + disc + ty))
	if den == 0 {
		return 0
	}
	return (conc - disc) / den
}

// meanTau averages, over queries, Kendall's tau between score and the true
// grade of the labelled documents.
func meanTau(s simulation, labels []Label, score func(Label) float64) float64 {
	byQuery := map[string][]Label{}
	for _, l := range labels {
		byQuery[l.Key] = append(byQuery[l.Key], l)
	}
	sum := 0.0
	for _, ls := range byQuery {
		var x, y []float64
		for _, l := range ls {
			x = append(x, score(l))
			y = append(y, float64(s.rel[[2]string{l.Key, l.DocID}]))
		}
		sum += kendallTauB(x, y)
	}
	return sum / float64(len(byQuery))
}

func TestCorrectedLabelsRecoverTrueOrderBetterThanCTR(t *testing.T) {
	s := simulate(1, 60, 400)
	m, err := Fit(s.imps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Converged {
		t.Errorf("EM did not converge in %d iterations", m.Iterations)
	}
	for k := 1; k <= 10; k++ {
		if got, want := m.Propensity(k), s.theta[k-1]; math.Abs(got-want) > 0.05 {
			t.Errorf("propensity at rank %d = %.3f, want %.3f", k, got, want)
		}
	}
	labels, err := m.Labels(LabelOptions{Mode: Graded})
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) < 500 {
		t.Fatalf("only %d of 600 documents labelled", len(labels))
	}
	raw := meanTau(s, labels, func(l Label) float64 { return l.CTR })
	alpha := meanTau(s, labels, func(l Label) float64 { return l.Attractiveness })
	graded := meanTau(s, labels, func(l Label) float64 { return l.Label })
	t.Logf("mean Kendall tau-b against true relevance: raw CTR %.3f, PBM attractiveness %.3f, PBM graded labels %.3f", raw, alpha, graded)
	if alpha < raw+0.15 || graded < raw+0.15 {
		t.Errorf("corrected labels do not beat raw CTR by the margin: CTR %.3f, attractiveness %.3f, graded %.3f", raw, alpha, graded)
	}
	if alpha < 0.8 {
		t.Errorf("attractiveness tau %.3f, want at least 0.8", alpha)
	}
	t.Log("\n" + m.Text())
}

func TestIPWWeightsFollowPropensity(t *testing.T) {
	s := simulate(2, 30, 300)
	m, err := Fit(s.imps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	labels, err := m.Labels(LabelOptions{Mode: IPW, MaxWeight: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labels {
		switch {
		case l.Clicks == 0 && (l.Label != 0 || l.Weight != 1):
			t.Fatalf("unclicked %+v: want label 0 weight 1", l)
		case l.Clicks > 0 && (l.Label != 1 || l.Weight < 0.9 || l.Weight > 5):
			t.Fatalf("clicked %+v: want label 1, weight in [0.9, 5]", l)
		}
	}
	// A document clicked only at rank 4 weighs about θ1/θ4 = 4.
	m2, err := Fit(append(s.imps, Impression{Query: "extra", Results: []Result{
		{DocID: "a", Position: 1}, {DocID: "b", Position: 2}, {DocID: "c", Position: 3}, {DocID: "deep", Position: 4, Clicked: true}}}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := m2.Labels(LabelOptions{Mode: IPW})
	for _, l := range ls {
		if l.DocID == "deep" && math.Abs(l.Weight-1/m2.Propensity(4)) > 1e-9 {
			t.Errorf("weight %.3f, want 1/propensity(4) = %.3f", l.Weight, 1/m2.Propensity(4))
		}
	}
}

func TestSkippedAboveAreNegatives(t *testing.T) {
	imps := []Impression{
		{Query: "Flu shots", Results: []Result{{"d1", 1, false}, {"d2", 2, false}, {"d3", 3, true}, {"d4", 4, false}}},
		{Query: "flu shots?", Results: []Result{{"d5", 1, false}, {"d3", 2, false}}}, // no click: no evidence
		{Query: "other", Results: []Result{{"x", 1, true}}},
	}
	m, err := Fit(imps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	labels, err := m.Labels(LabelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Label{}
	for _, l := range labels {
		got[l.DocID] = l
	}
	for _, d := range []string{"d1", "d2"} {
		if l, ok := got[d]; !ok || l.Label != 0 || l.SkippedAbove != 1 {
			t.Errorf("%s: %+v, want a negative skipped once", d, l)
		}
	}
	if l := got["d3"]; l.Clicks != 1 || l.Impressions != 2 || l.Key != "flu shots" {
		t.Errorf("d3: %+v, want 1 click in 2 impressions under the normalised query", l)
	}
	if m.VariedPairs != 1 || m.Pairs() != 6 {
		t.Errorf("%d of %d pairs shown at two ranks, want d3 only of 6", m.VariedPairs, m.Pairs())
	}
	for _, d := range []string{"d4", "d5"} {
		if _, ok := got[d]; ok {
			t.Errorf("%s labelled without evidence", d)
		}
	}
}

func TestFitBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		imps []Impression
		opt  Options
		want string
	}{
		"position": {[]Impression{{Query: "q", Results: []Result{{"a", 0, true}}}}, Options{}, "position 0"},
		"twice":    {[]Impression{{Query: "q", Results: []Result{{"a", 1, true}, {"a", 2, false}}}}, Options{}, "shown twice"},
		"noclicks": {[]Impression{{Query: "q", Results: []Result{{"a", 1, false}}}}, Options{}, "no clicks"},
		"empty":    {[]Impression{{Query: "q"}}, Options{}, "no impressions"},
		"options":  {[]Impression{{Query: "q", Results: []Result{{"a", 1, true}}}}, Options{MaxRank: -1}, "MaxRank"},
	} {
		if _, err := Fit(c.imps, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	m, _ := Fit([]Impression{{Query: "q", Results: []Result{{"a", 1, true}}}}, Options{})
	if _, err := m.Labels(LabelOptions{Mode: "ctr"}); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := m.Labels(LabelOptions{MaxWeight: 0.5}); err == nil {
		t.Error("maximum weight under 1 accepted")
	}
}
