// Package compare compares two systems on the same queries: per-query deltas,
// mean difference, a 95% confidence interval by paired bootstrap and a
// two-sided p-value by paired randomization (sign-flip) test, both seeded so
// that a comparison is reproducible.
package compare

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Options tunes the resampling. Zero values take the defaults.
type Options struct {
	Resamples int    // bootstrap resamples and randomization rounds; default 10000
	Seed      uint64 // default 1
}

// DefaultResamples is the number of bootstrap resamples and of randomization
// rounds when Options leaves it zero: enough for p-values near 0.05 to be
// stable to about ±0.005.
const DefaultResamples = 10000

// tieEps treats deltas this small as ties: floating-point noise, not a change.
const tieEps = 1e-12

// Result compares candidate against base (delta = candidate - base).
type Result struct {
	Queries   int     `json:"queries"`
	MeanBase  float64 `json:"mean_base"`
	MeanCand  float64 `json:"mean_candidate"`
	MeanDiff  float64 `json:"mean_diff"`
	CILow     float64 `json:"ci95_low"`
	CIHigh    float64 `json:"ci95_high"`
	PValue    float64 `json:"p_value"`
	Wins      int     `json:"wins"`
	Ties      int     `json:"ties"`
	Losses    int     `json:"losses"`
	Resamples int     `json:"resamples"`
	Seed      uint64  `json:"seed"`
	// Deltas is each query's candidate - base, omitted from summaries.
	Deltas map[string]float64 `json:"per_query_delta,omitempty"`
}

// Paired compares per-query values of two systems. Both must hold the same
// queries.
func Paired(base, cand map[string]float64, opt Options) (Result, error) {
	if len(base) == 0 {
		return Result{}, fmt.Errorf("compare: no queries")
	}
	if opt.Resamples == 0 {
		opt.Resamples = DefaultResamples
	}
	if opt.Resamples < 0 {
		return Result{}, fmt.Errorf("compare: resamples %d must be positive", opt.Resamples)
	}
	if opt.Seed == 0 {
		opt.Seed = 1
	}
	qids := make([]string, 0, len(base))
	for q := range base {
		if _, ok := cand[q]; !ok {
			return Result{}, fmt.Errorf("compare: query %q has a base value but no candidate value", q)
		}
		qids = append(qids, q)
	}
	if len(cand) != len(base) {
		for q := range cand {
			if _, ok := base[q]; !ok {
				return Result{}, fmt.Errorf("compare: query %q has a candidate value but no base value", q)
			}
		}
	}
	slices.Sort(qids) // fixed order: the same seed gives the same numbers

	r := Result{Queries: len(qids), Resamples: opt.Resamples, Seed: opt.Seed, Deltas: make(map[string]float64, len(qids))}
	d := make([]float64, len(qids))
	for i, q := range qids {
		b, c := base[q], cand[q]
		if math.IsNaN(b) || math.IsNaN(c) {
			return Result{}, fmt.Errorf("compare: query %q has a NaN value", q)
		}
		d[i] = c - b
		r.Deltas[q] = d[i]
		r.MeanBase += b
		r.MeanCand += c
		switch {
		case d[i] > tieEps:
			r.Wins++
		case d[i] < -tieEps:
			r.Losses++
		default:
			r.Ties++
		}
	}
	n := float64(len(d))
	r.MeanBase /= n
	r.MeanCand /= n
	r.MeanDiff = mean(d)
	r.CILow, r.CIHigh = bootstrapCI(d, opt)
	r.PValue = randomization(d, r.MeanDiff, opt)
	return r, nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// bootstrapCI is the percentile 95% interval of the mean delta over
// resamples of the queries with replacement.
func bootstrapCI(d []float64, opt Options) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(opt.Seed, 0x626f6f74)) // "boot"
	means := make([]float64, opt.Resamples)
	for b := range means {
		s := 0.0
		for range d {
			s += d[rng.IntN(len(d))]
		}
		means[b] = s / float64(len(d))
	}
	slices.Sort(means)
	return quantile(means, 0.025), quantile(means, 0.975)
}

// quantile interpolates linearly between order statistics of sorted xs.
func quantile(xs []float64, p float64) float64 {
	pos := p * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i]*(1-f) + xs[i+1]*f
}

// randomization is the two-sided p-value of the paired sign-flip test: under
// the null hypothesis each delta is as likely positive as negative. The +1
// counts the observed assignment, so p is never 0.
func randomization(d []float64, observed float64, opt Options) float64 {
	rng := rand.New(rand.NewPCG(opt.Seed, 0x7065726d)) // "perm"
	obs := math.Abs(observed) - 1e-12                  // equal means count as at least as extreme
	extreme := 0
	for range opt.Resamples {
		s := 0.0
		var bits uint64
		for i, x := range d {
			if i%64 == 0 {
				bits = rng.Uint64() // one random sign per bit
			}
			if bits&1 == 0 {
				s += x
			} else {
				s -= x
			}
			bits >>= 1
		}
		if math.Abs(s/float64(len(d))) >= obs {
			extreme++
		}
	}
	return float64(extreme+1) / float64(opt.Resamples+1)
}

// Summary drops the per-query deltas.
func (r Result) Summary() Result {
	r.Deltas = nil
	return r
}
