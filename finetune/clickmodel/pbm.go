// Package clickmodel turns logged searches and clicks into training labels
// that correct for position bias. A position-based model (PBM) is fitted by
// expectation-maximisation: a result at rank k is clicked when it is examined
// (probability θ_k, the same for every query) and found attractive
// (probability α_qd, per query and document). θ and α only enter as a
// product, so the top rank is taken as always examined (θ_1 = 1): θ_k is the
// examination rate of rank k relative to the top, and α the probability of a
// click had the document been shown first. Labels come from α, or from clicks
// weighted by 1/θ_k; results skipped above a click are negatives.
package clickmodel

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/rerankloop/rerank/finetune/pairs"
)

// Result is one shown result of an impression.
type Result struct {
	DocID    string
	Position int // 1-based rank on the page
	Clicked  bool
}

// Impression is one logged search: a query and the results shown.
type Impression struct {
	Query string
	// Key groups impressions whose documents share attractiveness; empty
	// means the normalised query text.
	Key     string
	Results []Result
}

func (im *Impression) key() string {
	if im.Key != "" {
		return im.Key
	}
	return pairs.NormalizeQuery(im.Query)
}

// Options configures Fit. The zero value is usable.
type Options struct {
	// MaxRank pools every rank at or below it into one propensity (default 20).
	MaxRank int
	// MaxIterations bounds EM (default 2000); Tolerance is the largest change
	// of any parameter that counts as converged (default 1e-6).
	MaxIterations int
	Tolerance     float64
	// PriorStrength is the weight, in impressions, of a Beta prior on every
	// attractiveness (default 1), so a document seen once is not judged by
	// one click. The prior's mean is learnt: the mean attractiveness of all
	// documents, re-estimated at every EM step. A fixed mean would bias
	// documents seen a few times towards it, and the propensities with them.
	PriorStrength float64
}

func (o *Options) defaults() error {
	if o.MaxRank == 0 {
		o.MaxRank = 20
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 2000
	}
	if o.Tolerance == 0 {
		o.Tolerance = 1e-6
	}
	if o.PriorStrength == 0 {
		o.PriorStrength = 1
	}
	if o.MaxRank < 1 || o.MaxIterations < 1 || !(o.Tolerance > 0) || !(o.PriorStrength > 0) || math.IsInf(o.PriorStrength, 0) {
		return fmt.Errorf("click model options %+v: want MaxRank, MaxIterations, Tolerance and PriorStrength above 0", *o)
	}
	return nil
}

// DocStats is what the log says about one (key, document).
type DocStats struct {
	Key, Query, DocID string
	Impressions       int
	Clicks            int
	// SkippedAbove counts impressions where the document was shown above the
	// last click and not clicked: it was very likely seen and passed over.
	SkippedAbove int
	// clickRanks counts clicks by rank bucket, for inverse-propensity weights.
	clickRanks map[int]int
	// firstBucket is the rank bucket it was first shown at; varied is set
	// once it is shown at another.
	firstBucket int
	varied      bool
	alpha       float64
	// posterior sum of P(attractive | observation) over impressions (EM scratch).
	attractive float64
}

// CTR is the raw click-through rate.
func (s *DocStats) CTR() float64 { return float64(s.Clicks) / float64(s.Impressions) }

// Model is a fitted position-based click model.
type Model struct {
	// Theta is the examination propensity of rank k at Theta[k-1], relative
	// to the top (Theta[0] = 1); the last entry covers MaxRank and below.
	Theta []float64
	// RankImpressions and RankClicks count results shown and clicked per rank.
	RankImpressions []int
	RankClicks      []int
	Iterations      int
	Converged       bool
	LogLikelihood   float64
	Impressions     int
	// PriorMean is the learnt mean attractiveness the prior pulls towards.
	PriorMean float64
	// VariedPairs counts (key, document) pairs shown at more than one rank.
	// Only they tell position bias from relevance; when there are few, the
	// propensities lean on the prior.
	VariedPairs int

	docs  map[[2]string]*DocStats
	order [][2]string
}

// Fit estimates the model from imps by EM. Impressions with no results are
// skipped; a result with a position below 1 or a document shown twice in one
// impression is an error.
func Fit(imps []Impression, opt Options) (*Model, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	m := &Model{
		docs:            map[[2]string]*DocStats{},
		Theta:           make([]float64, opt.MaxRank),
		RankImpressions: make([]int, opt.MaxRank),
		RankClicks:      make([]int, opt.MaxRank),
	}
	type obs struct {
		doc     *DocStats
		bucket  int
		clicked bool
	}
	var all []obs
	for i := range imps {
		im := &imps[i]
		if len(im.Results) == 0 {
			continue
		}
		m.Impressions++
		key := im.key()
		last := 0 // position of the last click
		seen := map[string]bool{}
		for _, r := range im.Results {
			if r.Position < 1 {
				return nil, fmt.Errorf("impression %d (query %q): document %q at position %d, want 1 or more", i+1, im.Query, r.DocID, r.Position)
			}
			if seen[r.DocID] {
				return nil, fmt.Errorf("impression %d (query %q): document %q shown twice", i+1, im.Query, r.DocID)
			}
			seen[r.DocID] = true
			if r.Clicked {
				last = max(last, r.Position)
			}
		}
		for _, r := range im.Results {
			id := [2]string{key, r.DocID}
			d := m.docs[id]
			if d == nil {
				d = &DocStats{Key: key, Query: im.Query, DocID: r.DocID, clickRanks: map[int]int{}, firstBucket: -1}
				m.docs[id] = d
				m.order = append(m.order, id)
			}
			b := min(r.Position, opt.MaxRank) - 1
			switch {
			case d.firstBucket < 0:
				d.firstBucket = b
			case b != d.firstBucket && !d.varied:
				d.varied = true
				m.VariedPairs++
			}
			d.Impressions++
			m.RankImpressions[b]++
			if r.Clicked {
				d.Clicks++
				d.clickRanks[b]++
				m.RankClicks[b]++
			} else if r.Position < last {
				d.SkippedAbove++
			}
			all = append(all, obs{d, b, r.Clicked})
		}
	}
	if len(all) == 0 {
		return nil, errors.New("click model: no impressions with results")
	}
	clicks := 0
	for _, c := range m.RankClicks {
		clicks += c
	}
	if clicks == 0 {
		return nil, errors.New("click model: the log has no clicks")
	}

	prior := 0.5
	m.Theta[0] = 1
	for b := 1; b < len(m.Theta); b++ {
		m.Theta[b] = 0.5
	}
	for _, d := range m.docs {
		d.alpha = prior
	}
	examined := make([]float64, opt.MaxRank)
	for m.Iterations = 1; m.Iterations <= opt.MaxIterations; m.Iterations++ {
		// E-step: posteriors of "examined" and "attractive" for every result.
		clear(examined)
		for _, d := range m.docs {
			d.attractive = 0
		}
		for _, o := range all {
			if o.clicked {
				examined[o.bucket]++
				o.doc.attractive++
				continue
			}
			t, a := m.Theta[o.bucket], o.doc.alpha
			den := 1 - t*a
			examined[o.bucket] += t * (1 - a) / den
			o.doc.attractive += a * (1 - t) / den
		}
		// M-step, with the prior as pseudo-counts on attractiveness.
		change := 0.0
		for b, n := range m.RankImpressions {
			if n == 0 || b == 0 {
				continue
			}
			// Laplace smoothing: a rank that got no click in a small log is
			// rarely examined, not never.
			t := clamp((examined[b] + 1) / (float64(n) + 2))
			change = math.Max(change, math.Abs(t-m.Theta[b]))
			m.Theta[b] = t
		}
		sum := 0.0
		for _, id := range m.order { // fixed order: the sum is reproducible
			d := m.docs[id]
			a := clamp((d.attractive + opt.PriorStrength*prior) / (float64(d.Impressions) + opt.PriorStrength))
			change = math.Max(change, math.Abs(a-d.alpha))
			d.alpha = a
			sum += a
		}
		prior = sum / float64(len(m.docs))
		m.PriorMean = prior
		if change < opt.Tolerance {
			m.Converged = true
			break
		}
	}
	m.Iterations = min(m.Iterations, opt.MaxIterations)
	for _, o := range all {
		p := m.Theta[o.bucket] * o.doc.alpha
		if o.clicked {
			m.LogLikelihood += math.Log(p)
		} else {
			m.LogLikelihood += math.Log(1 - p)
		}
	}
	return m, nil
}

// clamp keeps probabilities off 0 and 1, where the E-step divides by zero
// and the likelihood is -Inf.
func clamp(p float64) float64 { return math.Min(math.Max(p, 1e-6), 1-1e-6) }

// Propensity is θ_k: how often rank k is examined relative to the top result.
func (m *Model) Propensity(rank int) float64 {
	return m.Theta[min(max(rank, 1), len(m.Theta))-1]
}

// Attractiveness is α for (key, doc): the probability of a click had the
// document been shown first. ok is false for a pair not in the log.
func (m *Model) Attractiveness(key, docID string) (a float64, ok bool) {
	d := m.docs[[2]string{key, docID}]
	if d == nil {
		return 0, false
	}
	return d.alpha, true
}

// Pairs is the number of (key, document) pairs in the log.
func (m *Model) Pairs() int { return len(m.docs) }

// Docs lists every (key, document) of the log in order of first appearance.
func (m *Model) Docs() []*DocStats {
	out := make([]*DocStats, len(m.order))
	for i, id := range m.order {
		out[i] = m.docs[id]
	}
	return out
}

// RankStat is one rank's row of the propensity table.
type RankStat struct {
	Rank int `json:"rank"`
	// AndBelow marks the last row, which pools MaxRank and every rank below.
	AndBelow   bool    `json:"and_below,omitempty"`
	Shown      int     `json:"shown"`
	Clicks     int     `json:"clicks"`
	CTR        float64 `json:"ctr"`
	Propensity float64 `json:"propensity"`
}

// Ranks lists the ranks the log showed, with raw CTR and fitted propensity.
func (m *Model) Ranks() []RankStat {
	var out []RankStat
	for i, n := range m.RankImpressions {
		if n > 0 {
			out = append(out, RankStat{Rank: i + 1, AndBelow: i == len(m.Theta)-1 && i > 0, Shown: n, Clicks: m.RankClicks[i],
				CTR: float64(m.RankClicks[i]) / float64(n), Propensity: m.Theta[i]})
		}
	}
	return out
}

// FormatRanks renders rows of Ranks as a text table.
func FormatRanks(rows []RankStat) string {
	var b strings.Builder
	b.WriteString("  rank  shown  clicks    CTR  propensity\n")
	for _, r := range rows {
		rank := fmt.Sprint(r.Rank)
		if r.AndBelow {
			rank += "+"
		}
		fmt.Fprintf(&b, "  %4s  %5d  %6d  %.3f  %.3f\n", rank, r.Shown, r.Clicks, r.CTR, r.Propensity)
	}
	return b.String()
}

// Text renders the fit and its propensities.
func (m *Model) Text() string {
	return fmt.Sprintf("position-based click model: %d impressions, %d (query, document) pairs (%d shown at more than one rank), EM %d iterations (converged: %v), log-likelihood %.1f, mean attractiveness %.3f\n",
		m.Impressions, len(m.docs), m.VariedPairs, m.Iterations, m.Converged, m.LogLikelihood, m.PriorMean) + FormatRanks(m.Ranks())
}

// sortedBuckets lists a click-rank histogram's buckets in order.
func sortedBuckets(h map[int]int) []int {
	out := make([]int, 0, len(h))
	for b := range h {
		out = append(out, b)
	}
	sort.Ints(out)
	return out
}
