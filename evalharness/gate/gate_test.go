package gate

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// systems builds per-query NDCG@10 for n queries: base values, and a
// candidate at base + gain + noise, clipped to [0, 1].
func systems(n int, gain, noise float64, seed uint64) (base, cand map[string]float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	base, cand = map[string]float64{}, map[string]float64{}
	for i := range n {
		q := fmt.Sprint(i)
		b := rng.Float64()
		c := b + gain + noise*rng.NormFloat64()
		base[q], cand[q] = b, min(1, max(0, c))
	}
	return base, cand
}

func shift(m map[string]float64, by float64) map[string]float64 {
	out := map[string]float64{}
	for q, v := range m {
		out[q] = v + by
	}
	return out
}

func TestAcceptsClearlyBetter(t *testing.T) {
	serving, cand := systems(300, 0.05, 0.05, 1)
	bm25 := shift(serving, -0.02)
	d, err := Decide(cand, serving, bm25, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Accepted || !strings.HasPrefix(d.Reason, "accepted") {
		t.Fatalf("rejected a clearly better candidate: %s", d.Reason)
	}
	if d.Queries != 300 || d.VsServing.MeanDiff < 0.04 || d.VsServing.PValue >= 0.05 || d.VsServing.Deltas != nil {
		t.Fatalf("numbers %+v", d)
	}
	for _, c := range d.Checks {
		if !c.Passed {
			t.Fatalf("failed check %+v in an accepted decision", c)
		}
	}
}

func TestRejectsWorse(t *testing.T) {
	serving, cand := systems(300, -0.03, 0.05, 2)
	d, err := Decide(cand, serving, shift(serving, -0.1), DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if d.Accepted || !strings.Contains(d.Reason, "margin") {
		t.Fatalf("accepted a worse candidate: %s", d.Reason)
	}
}

func TestRejectsInsignificantlyBetter(t *testing.T) {
	// A mean gain of 0.02, above the margin, lost in the noise of 40 queries
	// that swing by ±0.3.
	serving, cand := map[string]float64{}, map[string]float64{}
	for i := range 40 {
		q := fmt.Sprint(i)
		serving[q], cand[q] = 0.5, 0.52+0.3*float64(1-2*(i%2))
	}
	p := DefaultPolicy()
	d, err := Decide(cand, serving, shift(serving, -0.1), p)
	if err != nil {
		t.Fatal(err)
	}
	if d.VsServing.MeanDiff < p.Margin {
		t.Fatalf("fixture broken: gain %v below the margin", d.VsServing.MeanDiff)
	}
	if d.Accepted || !strings.Contains(d.Reason, "significance") || strings.Contains(d.Reason, "margin") {
		t.Fatalf("want a rejection on significance alone: %s", d.Reason)
	}
}

func TestRejectsBelowMarginEvenIfSignificant(t *testing.T) {
	serving, cand := systems(2000, 0.003, 0.01, 4)
	p := DefaultPolicy()
	p.Resamples = 1000 // 2000 queries: keep the test quick
	d, err := Decide(cand, serving, shift(serving, -0.1), p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Accepted || d.VsServing.PValue >= 0.05 || !strings.Contains(d.Reason, "margin") {
		t.Fatalf("want a rejection on the margin only: %s", d.Reason)
	}
}

func TestRejectsWorseThanBM25(t *testing.T) {
	// Beats a poor serving checkpoint, but BM25 alone is better still.
	serving, cand := systems(300, 0.05, 0.05, 5)
	d, err := Decide(cand, serving, shift(serving, 0.1), DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if d.Accepted || !strings.Contains(d.Reason, "not worse than BM25") || !strings.Contains(d.Reason, "serving without reranking would be better") {
		t.Fatalf("accepted a candidate worse than BM25, or did not say why: %s", d.Reason)
	}

	// Without the floor the same significant step up is taken, flagged as still below BM25.
	p := DefaultPolicy()
	p.BM25Floor = false
	d, err = Decide(cand, serving, shift(serving, 0.1), p)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Accepted || !strings.Contains(d.Reason, "still below BM25 alone") || len(d.Checks) != 2 {
		t.Fatalf("without the floor: accepted %v, %s (%d checks)", d.Accepted, d.Reason, len(d.Checks))
	}
}

func TestNothingServingComparesWithBM25(t *testing.T) {
	bm25, cand := systems(300, 0.04, 0.05, 6)
	d, err := Decide(cand, nil, bm25, DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Accepted || !d.ServingIsBM25 || d.ServingMean != d.BM25Mean {
		t.Fatalf("%+v", d)
	}
	// The decision is a JSON record.
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Decision
	if err := json.Unmarshal(raw, &back); err != nil || back.Accepted != d.Accepted || back.Reason != d.Reason || len(back.Checks) != 3 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

func TestBadInput(t *testing.T) {
	a, b := systems(10, 0, 0.1, 7)
	for name, p := range map[string]Policy{"negative margin": {Margin: -1, Alpha: 0.05}, "zero alpha": {Alpha: 0}, "alpha > 1": {Alpha: 2}} {
		if _, err := Decide(a, b, b, p); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	short := map[string]float64{"0": 1}
	if _, err := Decide(a, b, short, DefaultPolicy()); err == nil {
		t.Error("different query sets: want an error")
	}
}
