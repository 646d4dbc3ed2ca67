package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const trials = 20000

// clickRates runs b on grades many times and returns the click rate per rank.
func clickRates(b Behaviour, grades []int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	counts := make([]float64, len(grades))
	for range trials {
		for _, c := range b.Clicks(grades, 1, rng) {
			counts[c.Index]++
		}
	}
	for i := range counts {
		counts[i] /= trials
	}
	return counts
}

// near checks an observed rate against its expectation within four standard
// errors of a binomial proportion.
func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	se := math.Sqrt(want * (1 - want) / trials)
	if math.Abs(got-want) > 4*se+1e-9 {
		t.Errorf("%s: rate %.4f, want %.4f (±%.4f)", what, got, want, 4*se)
	}
}

func fill(n, g int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = g
	}
	return out
}

func TestPBMPositionBias(t *testing.T) {
	for _, eta := range []float64{1, 2} {
		b := DefaultBehaviour(PBM)
		b.Eta, b.ClickRelevant = eta, 1
		rates := clickRates(b, fill(10, 1), 1)
		for k, r := range rates {
			near(t, fmt.Sprintf("pbm eta %v rank %d", eta, k+1), r, math.Pow(float64(k+1), -eta))
		}
	}
	// Relevance with noise: examined relevant results are clicked 0.8 of the
	// time, others 0.1, on top of the examination probability.
	b := DefaultBehaviour(PBM)
	rates := clickRates(b, []int{0, 1, 0, 1}, 2)
	for k, r := range rates {
		p := 0.1
		if k%2 == 1 {
			p = 0.8
		}
		near(t, "pbm with noise", r, p/float64(k+1))
	}
}

func TestCascade(t *testing.T) {
	// Nothing relevant: no click satisfies, every rank is examined.
	b := DefaultBehaviour(Cascade)
	for k, r := range clickRates(b, fill(8, 0), 3) {
		near(t, fmt.Sprintf("cascade, nothing relevant, rank %d", k+1), r, 0.1)
	}
	// Everything relevant, clicked half the time, always satisfying: rank k is
	// clicked only if the k-1 above were not.
	b.ClickRelevant, b.StopRelevant = 0.5, 1
	for k, r := range clickRates(b, fill(8, 1), 4) {
		near(t, "cascade, all relevant", r, math.Pow(0.5, float64(k+1)))
	}
	// At most one relevant click per search when every such click satisfies.
	rng := rand.New(rand.NewPCG(5, 5))
	for range 1000 {
		rel := 0
		for _, c := range b.Clicks([]int{0, 1, 0, 1, 1}, 1, rng) {
			if c.Index%2 == 1 || c.Index == 4 {
				rel++
			}
		}
		if rel > 1 {
			t.Fatal("cascade went on after a satisfying click")
		}
	}
}

func TestGradesAndDwell(t *testing.T) {
	b := DefaultBehaviour(PBM)
	b.Eta = 10 // only rank 1 is examined, almost surely
	rng := rand.New(rand.NewPCG(6, 6))
	var dwellRel, dwellNon []time.Duration
	clicks := map[int]int{}
	for range trials {
		for _, g := range []int{0, 1, 2} {
			for _, c := range b.Clicks([]int{g}, 2, rng) {
				clicks[g]++
				if g > 0 {
					dwellRel = append(dwellRel, c.Dwell)
				} else {
					dwellNon = append(dwellNon, c.Dwell)
				}
			}
		}
	}
	near(t, "grade 0", float64(clicks[0])/trials, 0.1)
	near(t, "grade 1 of 2", float64(clicks[1])/trials, 0.45)
	near(t, "grade 2 of 2", float64(clicks[2])/trials, 0.8)
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	if m := median(dwellRel); m < 55*time.Second || m > 65*time.Second {
		t.Errorf("median dwell on relevant documents %s, want about 60s", m)
	}
	if m := median(dwellNon); m < 7*time.Second || m > 9*time.Second {
		t.Errorf("median dwell on other documents %s, want about 8s", m)
	}
}

func TestBehaviourCheck(t *testing.T) {
	for _, edit := range []func(*Behaviour){
		func(b *Behaviour) { b.Model = "dbn" },
		func(b *Behaviour) { b.Eta = 0 },
		func(b *Behaviour) { b.ClickRelevant = 1.5 },
		func(b *Behaviour) { b.ClickNonRelevant = -0.1 },
		func(b *Behaviour) { b.StopRelevant = math.NaN() },
		func(b *Behaviour) { b.DwellRelevant = -time.Second },
	} {
		b := DefaultBehaviour(PBM)
		edit(&b)
		if b.Check() == nil {
			t.Errorf("accepted %+v", b)
		}
	}
	if err := DefaultBehaviour(Cascade).Check(); err != nil {
		t.Fatal(err)
	}
}
