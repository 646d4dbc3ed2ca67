package compare

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func values(xs ...float64) map[string]float64 {
	m := map[string]float64{}
	for i, x := range xs {
		m[fmt.Sprintf("q%02d", i)] = x
	}
	return m
}

func TestCounts(t *testing.T) {
	base := values(0.5, 0.5, 0.5, 0.2)
	cand := values(0.7, 0.5, 0.1, 0.2+1e-15)
	r, err := Paired(base, cand, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Wins != 1 || r.Ties != 2 || r.Losses != 1 || r.Queries != 4 {
		t.Fatalf("wins/ties/losses %d/%d/%d of %d", r.Wins, r.Ties, r.Losses, r.Queries)
	}
	if math.Abs(r.MeanDiff-(-0.05)) > 1e-12 || math.Abs(r.MeanBase-0.425) > 1e-12 || math.Abs(r.MeanCand-0.375) > 1e-12 {
		t.Fatalf("means %+v", r)
	}
	if math.Abs(r.Deltas["q00"]-0.2) > 1e-12 || r.Summary().Deltas != nil || r.Resamples != DefaultResamples {
		t.Fatalf("deltas %v", r.Deltas)
	}
}

// exactP enumerates every sign assignment: the p-value the randomization
// test estimates.
func exactP(d []float64) float64 {
	obs := 0.0
	for _, x := range d {
		obs += x
	}
	n, extreme := 1<<len(d), 0
	for mask := range n {
		s := 0.0
		for i, x := range d {
			if mask&(1<<i) != 0 {
				s -= x
			} else {
				s += x
			}
		}
		if math.Abs(s) >= math.Abs(obs)-1e-12 {
			extreme++
		}
	}
	return float64(extreme) / float64(n)
}

func TestRandomizationMatchesExact(t *testing.T) {
	d := []float64{0.12, 0.05, -0.03, 0.2, 0.0, 0.07, -0.1, 0.15, 0.02, 0.09, 0.01, -0.04}
	base := values(make([]float64, len(d))...)
	r, err := Paired(base, values(d...), Options{Resamples: 40000, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := exactP(d)
	if math.Abs(r.PValue-want) > 0.01 {
		t.Fatalf("p %v, exact %v", r.PValue, want)
	}
}

func TestBootstrapCI(t *testing.T) {
	// 400 deltas from N(0.03, 0.1): the CI should be about mean ± 1.96 * 0.1/20.
	rng := rand.New(rand.NewPCG(9, 9))
	d := make([]float64, 400)
	for i := range d {
		d[i] = 0.03 + 0.1*rng.NormFloat64()
	}
	r, err := Paired(values(make([]float64, len(d))...), values(d...), Options{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	sd := 0.0
	for _, x := range d {
		sd += (x - r.MeanDiff) * (x - r.MeanDiff)
	}
	half := 1.96 * math.Sqrt(sd/float64(len(d)-1)) / math.Sqrt(float64(len(d)))
	if math.Abs(r.CILow-(r.MeanDiff-half)) > 0.003 || math.Abs(r.CIHigh-(r.MeanDiff+half)) > 0.003 {
		t.Fatalf("CI [%v, %v], normal approximation [%v, %v]", r.CILow, r.CIHigh, r.MeanDiff-half, r.MeanDiff+half)
	}
	if r.PValue > 0.001 {
		t.Fatalf("a clear improvement got p %v", r.PValue)
	}
	again, _ := Paired(values(make([]float64, len(d))...), values(d...), Options{Seed: 5})
	if again.CILow != r.CILow || again.PValue != r.PValue {
		t.Fatal("same seed, different numbers")
	}
	other, _ := Paired(values(make([]float64, len(d))...), values(d...), Options{Seed: 6})
	if other.CILow == r.CILow {
		t.Fatal("the seed has no effect")
	}
}

func TestIdenticalSystems(t *testing.T) {
	v := values(0.1, 0.4, 0.9)
	r, err := Paired(v, v, Options{Resamples: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.PValue != 1 || r.CILow != 0 || r.CIHigh != 0 || r.Ties != 3 {
		t.Fatalf("%+v", r)
	}
}

func TestErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		base, cand map[string]float64
		opt        Options
	}{
		"empty":          {values(), values(), Options{}},
		"missing cand":   {values(1, 2), values(1), Options{}},
		"missing base":   {values(1), values(1, 2), Options{}},
		"other query":    {map[string]float64{"a": 1}, map[string]float64{"b": 1}, Options{}},
		"nan":            {values(math.NaN()), values(1), Options{}},
		"negative count": {values(1), values(1), Options{Resamples: -1}},
	} {
		if _, err := Paired(tc.base, tc.cand, tc.opt); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// BenchmarkPaired compares two systems on 300 queries (SciFact test's size)
// with the default 10,000 resamples.
func BenchmarkPaired(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	base, cand := map[string]float64{}, map[string]float64{}
	for i := range 300 {
		q := fmt.Sprint(i)
		base[q], cand[q] = rng.Float64(), rng.Float64()
	}
	for b.Loop() {
		if _, err := Paired(base, cand, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
