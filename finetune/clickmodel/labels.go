package clickmodel

import (
	"fmt"
	"math"
)

// Mode is how clicks become labels.
type Mode string

const (
	// Graded labels each document 0-4 by its attractiveness (round(4α)),
	// weight 1.
	Graded Mode = "graded"
	// IPW labels clicked documents 1, weighted by the mean of 1/θ_k over
	// their clicks (capped at MaxWeight), so clicks deep in the list, which
	// fewer users reached, count more.
	IPW Mode = "ipw"
)

// ParseMode reads a label mode name.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", Graded:
		return Graded, nil
	case IPW:
		return IPW, nil
	}
	return "", fmt.Errorf("click label mode %q: want graded or ipw", s)
}

// DefaultMaxWeight caps inverse-propensity weights: a click at a rank that
// almost nobody examines would otherwise dominate the loss.
const DefaultMaxWeight = 10

// LabelOptions configures Labels.
type LabelOptions struct {
	Mode      Mode
	MaxWeight float64
}

// Label is a training label derived from the log for one (key, document).
type Label struct {
	Key, Query, DocID string
	Label, Weight     float64
	Impressions       int
	Clicks            int
	SkippedAbove      int
	// Attractiveness is α, the click rate had it been shown first; CTR is
	// the raw click rate.
	Attractiveness, CTR float64
}

// Labels derives labels for the documents the log has evidence on: those
// clicked at least once, and those skipped above a click (label 0, whatever
// the mode). Documents only ever shown below the last click, or in searches
// without clicks, may never have been seen and get no label.
func (m *Model) Labels(opt LabelOptions) ([]Label, error) {
	if opt.Mode == "" {
		opt.Mode = Graded
	}
	if opt.Mode != Graded && opt.Mode != IPW {
		return nil, fmt.Errorf("click label mode %q: want graded or ipw", opt.Mode)
	}
	if opt.MaxWeight == 0 {
		opt.MaxWeight = DefaultMaxWeight
	}
	if !(opt.MaxWeight >= 1) || math.IsInf(opt.MaxWeight, 0) {
		return nil, fmt.Errorf("maximum weight %g: want a finite number of at least 1", opt.MaxWeight)
	}
	var out []Label
	for _, d := range m.Docs() {
		if d.Clicks == 0 && d.SkippedAbove == 0 {
			continue
		}
		a, _ := m.Attractiveness(d.Key, d.DocID)
		l := Label{Key: d.Key, Query: d.Query, DocID: d.DocID, Weight: 1,
			Impressions: d.Impressions, Clicks: d.Clicks, SkippedAbove: d.SkippedAbove,
			Attractiveness: a, CTR: d.CTR()}
		switch {
		case d.Clicks == 0:
			l.Label = 0
		case opt.Mode == Graded:
			l.Label = math.Round(4 * a)
		default:
			l.Label = 1
			sum := 0.0
			for _, b := range sortedBuckets(d.clickRanks) {
				sum += float64(d.clickRanks[b]) / m.Theta[b]
			}
			l.Weight = math.Min(opt.MaxWeight, sum/float64(d.Clicks))
		}
		out = append(out, l)
	}
	return out, nil
}
