package interleave

import (
	"strings"

	"github.com/rerankloop/rerank/finetune/impression"
)

// Arms an experiment's searches are logged under (the click log's Arm field
// holds "<experiment id>:<arm>").
const (
	ArmInterleaved = "interleaved"
	ArmControl     = string(Control)
	ArmTreatment   = string(Treatment)
)

// ArmLabel is what a search of experiment expID in arm records as its Arm.
func ArmLabel(expID, arm string) string { return expID + ":" + arm }

// ParseArm splits a logged Arm into experiment id and arm; ok is false for a
// search outside any experiment.
func ParseArm(label string) (expID, arm string, ok bool) {
	expID, arm, ok = strings.Cut(label, ":")
	return expID, arm, ok && expID != "" && arm != ""
}

// InterleaveResult tallies an interleaving experiment: one outcome per search.
type InterleaveResult struct {
	Searches      int `json:"searches"` // interleaved searches logged
	Clicked       int `json:"clicked"`  // of which with a click: the informative ones
	TreatmentWins int `json:"treatment_wins"`
	ControlWins   int `json:"control_wins"`
	Ties          int `json:"ties"`
	// Clicked results per team, summed over searches.
	ClicksControl   int `json:"clicks_control"`
	ClicksTreatment int `json:"clicks_treatment"`
	ClicksShared    int `json:"clicks_shared"`
	// Delta is Chapelle et al.'s preference, (wins + ties/2) / clicked - 1/2:
	// positive when the treatment is preferred, in [-1/2, 1/2].
	Delta float64 `json:"delta"`
	// PValue is the sign test of treatment wins against control wins.
	PValue float64 `json:"p_value"`
}

// Add counts one exported interleaved search.
func (r *InterleaveResult) Add(e impression.Impression) {
	c := CreditOf(e.Results)
	r.Searches++
	r.ClicksControl += c.Control
	r.ClicksTreatment += c.Treatment
	r.ClicksShared += c.Shared
	switch c.Outcome() {
	case TreatmentWins:
		r.TreatmentWins++
	case ControlWins:
		r.ControlWins++
	case Tie:
		r.Ties++
	default:
		return
	}
	r.Clicked++
}

// Finish computes Delta and PValue from the counts.
func (r *InterleaveResult) Finish() {
	if r.Clicked > 0 {
		r.Delta = (float64(r.TreatmentWins)+float64(r.Ties)/2)/float64(r.Clicked) - 0.5
	}
	r.PValue = SignTest(r.TreatmentWins, r.ControlWins)
}

// Verdict applies rule to the finished tally.
func (r *InterleaveResult) Verdict(rule StopRule) Verdict {
	return rule.Decide(r.Clicked, r.PValue, r.TreatmentWins > r.ControlWins)
}

// SplitResult tallies a split A/B experiment. The unit of analysis is the
// search; a user's searches are correlated, so read p-values from tests with
// many users as approximate.
type SplitResult struct {
	Control   ArmMetrics `json:"control"`
	Treatment ArmMetrics `json:"treatment"`
	// MRRDiff is treatment MRR minus control MRR; PValue its two-sided test.
	MRRDiff float64 `json:"mrr_diff"`
	PValue  float64 `json:"p_value"`
}

// NewSplitResult starts a tally whose clicks@k uses k.
func NewSplitResult(k int) *SplitResult {
	return &SplitResult{Control: ArmMetrics{K: k}, Treatment: ArmMetrics{K: k}}
}

// Add counts one exported search of the given arm (other arms are ignored).
func (r *SplitResult) Add(arm string, e impression.Impression) {
	switch arm {
	case ArmControl:
		r.Control.add(e.Results)
	case ArmTreatment:
		r.Treatment.add(e.Results)
	}
}

// Finish computes the metrics and the test of MRR.
func (r *SplitResult) Finish() {
	r.Control.finish()
	r.Treatment.finish()
	r.MRRDiff = r.Treatment.MRR - r.Control.MRR
	r.PValue = welchP(r.Treatment.MRR, r.Treatment.rrVariance(), r.Treatment.Searches,
		r.Control.MRR, r.Control.rrVariance(), r.Control.Searches)
}

// Verdict applies rule to the finished tally.
func (r *SplitResult) Verdict(rule StopRule) Verdict {
	return rule.Decide(r.Control.Searches+r.Treatment.Searches, r.PValue, r.MRRDiff > 0)
}
