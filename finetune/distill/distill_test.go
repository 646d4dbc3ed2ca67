package distill

import (
	"math"
	"strings"
	"testing"
)

func query(id string, teacher []float64, labels ...float64) Query {
	q := Query{ID: id, Text: "query " + id, Teacher: teacher}
	for i := range teacher {
		d := Doc{ID: string(rune('a' + i)), Text: "doc"}
		if i < len(labels) {
			d.Label = labels[i]
		}
		q.Docs = append(q.Docs, d)
	}
	return q
}

// dist normalises one query's labels to a distribution: what
// the listwise loss trains towards.
func dist(ps []float64) []float64 {
	sum := 0.0
	for _, p := range ps {
		sum += p
	}
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p / sum
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestTargetsAreTheSoftmaxOfStandardisedScores(t *testing.T) {
	var rep Report
	// Scores 1, 2, 3: mean 2, sd sqrt(2/3); the same scores scaled and
	// shifted give the same targets (standardised).
	for _, scores := range [][]float64{{1, 2, 3}, {10, 20, 30}, {-7, -6, -5}} {
		ps, err := Pairs([]Query{query("q", scores)}, Options{}, &rep)
		if err != nil {
			t.Fatal(err)
		}
		sd := math.Sqrt(2.0 / 3)
		e := []float64{math.Exp(-1 / sd), 1, math.Exp(1 / sd)}
		want := dist(e)
		got := dist([]float64{ps[0].Label, ps[1].Label, ps[2].Label})
		for i := range want {
			if !near(got[i], want[i]) {
				t.Errorf("scores %v: target %v, want %v", scores, got, want)
			}
		}
		if ps[2].Label != 1 {
			t.Errorf("the best candidate's label is %g, want 1 (labels are target / max)", ps[2].Label)
		}
	}
	// A lower temperature is sharper.
	cold, _ := Pairs([]Query{query("q", []float64{1, 2, 3})}, Options{Temperature: 0.5}, &rep)
	warm, _ := Pairs([]Query{query("q", []float64{1, 2, 3})}, Options{Temperature: 2}, &rep)
	if !(cold[0].Label < warm[0].Label) {
		t.Errorf("temperature 0.5 gives the worst candidate %g, temperature 2 gives %g", cold[0].Label, warm[0].Label)
	}
	// Equal scores: uniform.
	flat, _ := Pairs([]Query{query("q", []float64{4, 4})}, Options{}, &rep)
	if flat[0].Label != 1 || flat[1].Label != 1 {
		t.Errorf("equal scores give %v, %v", flat[0].Label, flat[1].Label)
	}
}

func TestLabelsMixIn(t *testing.T) {
	var rep Report
	// The teacher prefers b; the judgments say a. Weight 1 is the labels alone.
	ps, err := Pairs([]Query{query("q", []float64{0, 5}, 2, 0), query("r", []float64{0, 5})}, Options{LabelWeight: 1}, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Label != 1 || ps[1].Label != 0 {
		t.Errorf("label weight 1: %g, %g; want the labels' 1, 0", ps[0].Label, ps[1].Label)
	}
	if rep.Unlabelled != 1 || ps[3].Label != 1 {
		t.Errorf("a query without positive labels keeps the teacher's target: unlabelled %d, labels %g %g", rep.Unlabelled, ps[2].Label, ps[3].Label)
	}
	half, _ := Pairs([]Query{query("q", []float64{0, 5}, 2, 0)}, Options{LabelWeight: 0.5}, &rep)
	got := dist([]float64{half[0].Label, half[1].Label})
	teacher, _ := softmax([]float64{0, 5}, 1)
	if want := 0.5*teacher[0] + 0.5; !near(got[0], want) {
		t.Errorf("label weight 0.5: target %v, want a = %g", got, want)
	}
}

func TestBadTeacherScoresAndOptions(t *testing.T) {
	var rep Report
	for name, c := range map[string]struct {
		qs  []Query
		opt Options
	}{
		"NaN score":         {[]Query{query("q", []float64{1, math.NaN()})}, Options{}},
		"infinite score":    {[]Query{query("q", []float64{1, math.Inf(1)})}, Options{}},
		"scores mismatched": {[]Query{{ID: "q", Docs: []Doc{{ID: "a"}, {ID: "b"}}, Teacher: []float64{1}}}, Options{}},
		"negative temp":     {[]Query{query("q", []float64{1, 2})}, Options{Temperature: -1}},
		"label weight 2":    {[]Query{query("q", []float64{1, 2})}, Options{LabelWeight: 2}},
		"nothing to rank":   {[]Query{query("q", []float64{1})}, Options{}},
	} {
		if _, err := Pairs(c.qs, c.opt, &rep); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "NaN score" && !strings.Contains(err.Error(), "query q") {
			t.Errorf("%s: %v does not name the query", name, err)
		}
	}
}
