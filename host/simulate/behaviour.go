// Package simulate plays users against a running host through its HTTP API:
// they issue a dataset's queries (GET/POST /search), look at the results with
// position bias, click by the dataset's relevance judgements with noise, and
// report each click with a dwell time (POST /click). Their searches and
// clicks go through the real endpoints into the real click log, so retraining,
// gating and experiments can be exercised end to end without people.
package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ClickModel is how a simulated user examines a result list.
type ClickModel string

const (
	// PBM is the position-based model: rank k is examined with probability
	// 1/k^Eta, independently of the rest; an examined result is clicked with
	// its relevance's click probability. Several clicks per search are common.
	PBM ClickModel = "pbm"
	// Cascade examines top-down and stops after a satisfying click (a click
	// on a relevant result satisfies with probability StopRelevant; a click
	// on a non-relevant one never does), or at the end of the page.
	Cascade ClickModel = "cascade"
)

// Behaviour sets how users examine, click and read. Start from
// DefaultBehaviour.
type Behaviour struct {
	Model ClickModel
	// Eta is the PBM's position-bias exponent.
	Eta float64
	// ClickRelevant is P(click | examined) for a result of the highest grade;
	// lower grades interpolate towards ClickNonRelevant.
	ClickRelevant float64
	// ClickNonRelevant is P(click | examined) for an unjudged or grade-0
	// result: the noise that keeps clicks from being a copy of the qrels.
	ClickNonRelevant float64
	// StopRelevant is the cascade's P(stop | clicked a relevant result).
	StopRelevant float64
	// Median dwell times; each click's dwell is log-normal around its median.
	DwellRelevant, DwellNonRelevant time.Duration
}

// DefaultBehaviour: eta 1, clicks 0.8 on relevant and 0.1 on other examined
// results, the cascade stopping after 90% of relevant clicks, dwell 60 s on
// relevant and 8 s on other documents.
func DefaultBehaviour(m ClickModel) Behaviour {
	return Behaviour{Model: m, Eta: 1, ClickRelevant: 0.8, ClickNonRelevant: 0.1, StopRelevant: 0.9,
		DwellRelevant: 60 * time.Second, DwellNonRelevant: 8 * time.Second}
}

// Check reports the first setting out of range.
func (b Behaviour) Check() error {
	if b.Model != PBM && b.Model != Cascade {
		return fmt.Errorf("click model %q: want pbm or cascade", b.Model)
	}
	if !(b.Eta > 0) || b.Eta > 10 {
		return fmt.Errorf("eta %v: want more than 0 and at most 10", b.Eta)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"relevant click probability", b.ClickRelevant}, {"non-relevant click probability", b.ClickNonRelevant}, {"stop probability", b.StopRelevant}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%s %v: want 0 to 1", p.name, p.v)
		}
	}
	if b.DwellRelevant < 0 || b.DwellNonRelevant < 0 {
		return fmt.Errorf("dwell times must not be negative")
	}
	return nil
}

// Click is one simulated click: the index of the result in the list shown and
// the time spent on the document.
type Click struct {
	Index int
	Dwell time.Duration
}

// Clicks simulates one user on a list whose results have the given relevance
// grades (0: not relevant), maxGrade being the dataset's highest grade.
func (b Behaviour) Clicks(grades []int, maxGrade int, rng *rand.Rand) []Click {
	var out []Click
	for k, g := range grades {
		if b.Model == PBM && rng.Float64() >= math.Pow(float64(k+1), -b.Eta) {
			continue // not examined
		}
		if rng.Float64() >= b.clickProb(g, maxGrade) {
			continue
		}
		out = append(out, Click{Index: k, Dwell: b.dwell(g > 0, rng)})
		if b.Model == Cascade && g > 0 && rng.Float64() < b.StopRelevant {
			break
		}
	}
	return out
}

func (b Behaviour) clickProb(grade, maxGrade int) float64 {
	if grade <= 0 || maxGrade <= 0 {
		return b.ClickNonRelevant
	}
	f := math.Min(1, float64(grade)/float64(maxGrade))
	return b.ClickNonRelevant + f*(b.ClickRelevant-b.ClickNonRelevant)
}

// dwell is log-normal around the median (sigma 0.5): mostly within a factor
// of 2.7 of it, never negative.
func (b Behaviour) dwell(relevant bool, rng *rand.Rand) time.Duration {
	m := b.DwellNonRelevant
	if relevant {
		m = b.DwellRelevant
	}
	return time.Duration(float64(m) * math.Exp(0.5*rng.NormFloat64())).Round(time.Millisecond)
}
