// Package distill turns a teacher's scores over each training query's
// candidates into soft listwise targets for a student: the softmax of the
// query's standardised teacher scores (a temperature sharpens or flattens
// it), optionally mixed with the distribution of the judgments' labels.
// Trained with the listwise loss, whose target is proportional to the
// labels, the student minimises the KL divergence to that distribution.
// Only scores cross from teacher to student, so the two may differ in kind
// and tokenizer.
package distill

import (
	"errors"
	"fmt"
	"math"

	"github.com/rerankloop/rerank/finetune/pairs"
)

// Options shape the targets.
type Options struct {
	// Temperature divides the standardised scores before the softmax
	// (0: 1). Lower is sharper.
	Temperature float64
	// LabelWeight is the labels' share of the target: (1-w) teacher + w
	// labels, for queries with a positive label among their candidates.
	LabelWeight float64
}

// Doc is a candidate: its id, the text the student reads, and the label the
// judgments give it (0 when unjudged).
type Doc struct {
	ID, Text string
	Label    float64
}

// Query is a training query, its candidates and the teacher's score of each.
type Query struct {
	ID, Text string
	Docs     []Doc
	Teacher  []float64
}

// Report says what Pairs made.
type Report struct {
	Teacher     string  `json:"teacher"`
	Fused       string  `json:"fused,omitempty"` // the teacher's fusion with BM25, when it has one
	Depth       int     `json:"depth"`           // BM25 candidates per query
	Temperature float64 `json:"temperature"`
	LabelWeight float64 `json:"label_weight"`
	Queries     int     `json:"queries"`
	Pairs       int     `json:"pairs"`
	// Skipped queries have fewer than two candidates: no ranking to learn.
	Skipped int `json:"skipped"`
	// Unlabelled queries got the teacher's target alone although
	// LabelWeight asked for labels: no candidate had a positive label.
	Unlabelled int `json:"unlabelled"`
}

// Text renders the report for people.
func (r *Report) Text() string {
	s := fmt.Sprintf("distillation: teacher %s", r.Teacher)
	if r.Fused != "" {
		s += " fused with BM25 (" + r.Fused + ")"
	}
	s += fmt.Sprintf(", BM25's top %d per query, temperature %g, label weight %g: %d queries, %d pairs; %d queries skipped (fewer than 2 candidates)",
		r.Depth, r.Temperature, r.LabelWeight, r.Queries, r.Pairs, r.Skipped)
	if r.LabelWeight > 0 {
		s += fmt.Sprintf(", %d without a positive label among their candidates (teacher alone)", r.Unlabelled)
	}
	return s + "\n"
}

// Pairs returns one pair per candidate with label = target / the query's
// largest target, in (0, 1]: train on them with the listwise loss and
// LabelMax 1. rep is filled in (Queries, Pairs, Skipped, Unlabelled).
func Pairs(qs []Query, o Options, rep *Report) ([]pairs.Pair, error) {
	if o.Temperature == 0 {
		o.Temperature = 1
	}
	switch {
	case !(o.Temperature > 0) || math.IsInf(o.Temperature, 0):
		return nil, fmt.Errorf("distillation temperature %g: want a positive number", o.Temperature)
	case !(o.LabelWeight >= 0 && o.LabelWeight <= 1):
		return nil, fmt.Errorf("distillation label weight %g: want 0..1", o.LabelWeight)
	}
	rep.Temperature, rep.LabelWeight = o.Temperature, o.LabelWeight
	var out []pairs.Pair
	for _, q := range qs {
		if len(q.Teacher) != len(q.Docs) {
			return nil, fmt.Errorf("query %s: %d teacher scores for %d candidates", q.ID, len(q.Teacher), len(q.Docs))
		}
		if len(q.Docs) < 2 {
			rep.Skipped++
			continue
		}
		target, err := softmax(q.Teacher, o.Temperature)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q.ID, err)
		}
		if o.LabelWeight > 0 {
			if !mixLabels(target, q.Docs, o.LabelWeight) {
				rep.Unlabelled++
			}
		}
		top := 0.0
		for _, t := range target {
			top = max(top, t)
		}
		for i, d := range q.Docs {
			out = append(out, pairs.Pair{QueryID: q.ID, Query: q.Text, DocID: d.ID, Text: d.Text, Label: target[i] / top, Weight: 1})
		}
		rep.Queries++
	}
	rep.Pairs = len(out)
	if len(out) == 0 {
		return nil, errors.New("distillation: no training query has two or more candidates")
	}
	return out, nil
}

// softmax of the standardised scores over temperature t; equal scores give
// the uniform distribution.
func softmax(scores []float64, t float64) ([]float64, error) {
	mean := 0.0
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("the teacher scored candidate %d %v", i, s)
		}
		mean += s
	}
	mean /= float64(len(scores))
	sd := 0.0
	for _, s := range scores {
		sd += (s - mean) * (s - mean)
	}
	sd = math.Sqrt(sd / float64(len(scores)))
	if sd == 0 {
		sd = 1
	}
	out := make([]float64, len(scores))
	hi := math.Inf(-1)
	for i, s := range scores {
		out[i] = (s - mean) / sd / t
		hi = max(hi, out[i])
	}
	sum := 0.0
	for i := range out {
		out[i] = math.Exp(out[i] - hi)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out, nil
}

// mixLabels blends the labels' distribution into target with weight w; it
// reports false (and leaves target) when no candidate has a positive label.
func mixLabels(target []float64, docs []Doc, w float64) bool {
	sum := 0.0
	for _, d := range docs {
		sum += max(d.Label, 0)
	}
	if sum == 0 {
		return false
	}
	for i, d := range docs {
		target[i] = (1-w)*target[i] + w*max(d.Label, 0)/sum
	}
	return true
}
