// Package gate decides whether a candidate checkpoint may replace the serving
// one, from per-query NDCG@10 on held-out queries. The rule:
//
//  1. better than serving: mean(candidate) - mean(serving) >= Policy.Margin;
//  2. significantly so: the paired randomization test's two-sided p-value of
//     that difference is below Policy.Alpha;
//  3. with Policy.BM25Floor, never worse than BM25 alone: mean(candidate) >=
//     mean(BM25 first stage without reranking), on the same queries.
//
// All must hold. When nothing is serving yet (serving == nil), BM25 alone is
// what serves, so it takes the serving role in 1 and 2.
//
// Rule 3 only bites when the serving version is itself below BM25 (else 1
// implies it). With the floor such a deployment keeps its model until a
// candidate reaches BM25, and the decision says that reranking off would serve
// users better; without it, the loop may climb from below BM25 one significant
// step at a time, and an accepted candidate still below BM25 is flagged.
package gate

import (
	"fmt"
	"strings"

	"github.com/rerankloop/rerank/evalharness/compare"
)

// Defaults: a candidate must add at least half a point of NDCG@10 and be
// significant at the 5% level (and the BM25 floor is on).
const (
	DefaultMargin = 0.005
	DefaultAlpha  = 0.05
)

// Policy is what the gate demands.
type Policy struct {
	Margin    float64 `json:"margin"`     // minimum mean NDCG@10 gain over serving
	Alpha     float64 `json:"alpha"`      // significance level of the paired randomization test
	Resamples int     `json:"resamples"`  // randomization/bootstrap rounds (0: compare.DefaultResamples)
	Seed      uint64  `json:"seed"`       // resampling seed (0: 1)
	BM25Floor bool    `json:"bm25_floor"` // reject candidates below BM25 alone (rule 3)
}

// DefaultPolicy is the policy with the documented defaults.
func DefaultPolicy() Policy {
	return Policy{Margin: DefaultMargin, Alpha: DefaultAlpha, BM25Floor: true}
}

// Check is one rule's outcome.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Decision is the gate's verdict with the numbers behind it, stored with the
// model version it judged.
type Decision struct {
	Accepted      bool           `json:"accepted"`
	Reason        string         `json:"reason"`
	Metric        string         `json:"metric"`
	Queries       int            `json:"queries"`
	Policy        Policy         `json:"policy"`
	CandidateMean float64        `json:"candidate_mean"`
	ServingMean   float64        `json:"serving_mean"`
	BM25Mean      float64        `json:"bm25_mean"`
	ServingIsBM25 bool           `json:"serving_is_bm25"`
	VsServing     compare.Result `json:"vs_serving"`
	VsBM25        compare.Result `json:"vs_bm25"`
	Checks        []Check        `json:"checks"`
}

// Decide applies p to per-query NDCG@10 of the candidate, the serving
// checkpoint (nil when none serves) and BM25 alone, all on the same queries.
func Decide(candidate, serving, bm25 map[string]float64, p Policy) (Decision, error) {
	if p.Margin < 0 {
		return Decision{}, fmt.Errorf("gate: margin %v must not be negative", p.Margin)
	}
	if !(p.Alpha > 0 && p.Alpha <= 1) {
		return Decision{}, fmt.Errorf("gate: alpha %v must be in (0, 1]", p.Alpha)
	}
	d := Decision{Metric: "ndcg@10", Policy: p, ServingIsBM25: serving == nil}
	if serving == nil {
		serving = bm25
	}
	opt := compare.Options{Resamples: p.Resamples, Seed: p.Seed}
	vsServing, err := compare.Paired(serving, candidate, opt)
	if err != nil {
		return Decision{}, fmt.Errorf("gate: candidate vs serving: %w", err)
	}
	vsBM25, err := compare.Paired(bm25, candidate, opt)
	if err != nil {
		return Decision{}, fmt.Errorf("gate: candidate vs BM25: %w", err)
	}
	d.VsServing, d.VsBM25 = vsServing.Summary(), vsBM25.Summary()
	d.Queries = vsServing.Queries
	d.CandidateMean, d.ServingMean, d.BM25Mean = vsServing.MeanCand, vsServing.MeanBase, vsBM25.MeanBase

	d.Checks = []Check{
		{
			Name:   "margin",
			Passed: vsServing.MeanDiff >= p.Margin,
			Detail: fmt.Sprintf("gain over serving %+.4f, needs >= %+.4f", vsServing.MeanDiff, p.Margin),
		},
		{
			Name:   "significance",
			Passed: vsServing.PValue < p.Alpha,
			Detail: fmt.Sprintf("p = %.4f (paired randomization, %d rounds), needs < %g", vsServing.PValue, vsServing.Resamples, p.Alpha),
		},
	}
	belowBM25 := fmt.Sprintf("candidate %.4f vs BM25 alone %.4f", vsBM25.MeanCand, vsBM25.MeanBase)
	if p.BM25Floor {
		d.Checks = append(d.Checks, Check{Name: "not worse than BM25", Passed: vsBM25.MeanDiff >= 0, Detail: belowBM25})
	}
	var failed []string
	for _, c := range d.Checks {
		if !c.Passed {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	d.Accepted = len(failed) == 0
	if d.Accepted {
		d.Reason = fmt.Sprintf("accepted: NDCG@10 %.4f vs serving %.4f (%+.4f, 95%% CI [%+.4f, %+.4f], p = %.4f) on %d queries",
			d.CandidateMean, d.ServingMean, vsServing.MeanDiff, vsServing.CILow, vsServing.CIHigh, vsServing.PValue, d.Queries)
		if vsBM25.MeanDiff < 0 {
			d.Reason += "; still below BM25 alone (" + belowBM25 + ")"
		}
	} else {
		d.Reason = "rejected: " + strings.Join(failed, "; ")
		if p.BM25Floor && !d.ServingIsBM25 && d.ServingMean < d.BM25Mean {
			d.Reason += fmt.Sprintf("; the serving version (%.4f) is itself below BM25 alone: serving without reranking would be better, "+
				"or turn the BM25 floor off to let retraining improve it step by step", d.ServingMean)
		}
	}
	return d, nil
}
