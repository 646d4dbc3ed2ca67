package interleave

import (
	"fmt"
	"math"
)

// SignTest is the exact two-sided binomial sign test of wins against losses
// under the null hypothesis that each is equally likely (ties are left out):
// twice the probability of a split at least as uneven, capped at 1.
func SignTest(wins, losses int) float64 {
	n := wins + losses
	k := min(wins, losses)
	if n == 0 || 2*k == n {
		return 1
	}
	// Sum C(n, i) / 2^n for i <= k in log space: n may be large.
	lnHalfN := float64(n) * math.Ln2
	lgN := lgamma(float64(n) + 1)
	tail := 0.0
	for i := 0; i <= k; i++ {
		tail += math.Exp(lgN - lgamma(float64(i)+1) - lgamma(float64(n-i)+1) - lnHalfN)
	}
	return math.Min(1, 2*tail)
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// welchP is the two-sided p-value of a difference in means between two
// samples given their means, variances and sizes (Welch's statistic, normal
// approximation: the arms hold hundreds of searches or the rule waits).
func welchP(m1, v1 float64, n1 int, m2, v2 float64, n2 int) float64 {
	if n1 < 2 || n2 < 2 {
		return 1
	}
	se := math.Sqrt(v1/float64(n1) + v2/float64(n2))
	if se == 0 {
		if m1 == m2 {
			return 1
		}
		return 0
	}
	z := math.Abs(m1-m2) / se
	return math.Erfc(z / math.Sqrt2)
}

// StopRule says when an experiment has its answer.
type StopRule struct {
	// MinSearches is how many informative searches (interleaving: searches
	// with a click; split: searches in both arms together) must be seen
	// before any verdict: an early lucky streak does not end a test.
	MinSearches int `json:"min_searches"`
	// Alpha is the final look's threshold (at MaxSearches). Before it a
	// winner needs p < InterimAlpha (Haybittle-Peto): a rule looked at again
	// and again would otherwise find winners between equal rankers far more
	// often than Alpha (11.5% of A/A runs with p < 0.05 at six looks).
	Alpha float64 `json:"alpha"`
	// MaxSearches stops without a winner after this many informative
	// searches (0: never).
	MaxSearches int `json:"max_searches,omitempty"`
}

// InterimAlpha is the threshold of every look before MaxSearches.
const InterimAlpha = 0.001

// DefaultStopRule waits for 100 informative searches and stops at p < 0.001
// (p < 0.05 at MaxSearches, when one is set).
func DefaultStopRule() StopRule { return StopRule{MinSearches: 100, Alpha: 0.05} }

// Check reports what is wrong with the rule.
func (r StopRule) Check() error {
	if r.MinSearches < 0 || r.MaxSearches < 0 {
		return fmt.Errorf("stop rule: search counts must not be negative (min %d, max %d)", r.MinSearches, r.MaxSearches)
	}
	if r.MaxSearches > 0 && r.MaxSearches < r.MinSearches {
		return fmt.Errorf("stop rule: max searches %d is below min searches %d", r.MaxSearches, r.MinSearches)
	}
	if !(r.Alpha > 0 && r.Alpha < 1) {
		return fmt.Errorf("stop rule: alpha %v must be in (0, 1)", r.Alpha)
	}
	return nil
}

// Verdict is the stopping rule's answer at one point of an experiment.
type Verdict struct {
	Stop   bool   `json:"stop"`
	Winner Team   `json:"winner,omitempty"` // Control or Treatment; empty: none (yet)
	Reason string `json:"reason"`
}

// Decide applies the rule to n informative searches, a p-value and which arm
// is ahead: at any look before MaxSearches a winner needs p < InterimAlpha,
// at MaxSearches p < Alpha, so the rule may be looked at after every search.
func (r StopRule) Decide(n int, p float64, treatmentAhead bool) Verdict {
	final := r.MaxSearches > 0 && n >= r.MaxSearches
	alpha := min(InterimAlpha, r.Alpha)
	if final {
		alpha = r.Alpha
	}
	switch {
	case n < r.MinSearches:
		return Verdict{Reason: fmt.Sprintf("%d of the %d searches needed so far", n, r.MinSearches)}
	case p < alpha:
		w := Control
		if treatmentAhead {
			w = Treatment
		}
		return Verdict{Stop: true, Winner: w, Reason: fmt.Sprintf("%s is better: p = %.3g < %g after %d searches", w, p, alpha, n)}
	case final:
		return Verdict{Stop: true, Reason: fmt.Sprintf("no significant difference after %d searches (p = %.3g)", n, p)}
	}
	return Verdict{Reason: fmt.Sprintf("no significant difference yet (p = %.3g after %d searches; a winner before %s needs p < %g)", p, n, r.finalLook(), alpha)}
}

// String states the rule as a person reads it.
func (r StopRule) String() string {
	if r.MaxSearches > 0 {
		return fmt.Sprintf("at least %d searches with clicks; a winner at p < %g before %d, at p < %g there", r.MinSearches, min(InterimAlpha, r.Alpha), r.MaxSearches, r.Alpha)
	}
	return fmt.Sprintf("at least %d searches with clicks; a winner at p < %g", r.MinSearches, min(InterimAlpha, r.Alpha))
}

func (r StopRule) finalLook() string {
	if r.MaxSearches > 0 {
		return fmt.Sprintf("%d searches", r.MaxSearches)
	}
	return "the end"
}
