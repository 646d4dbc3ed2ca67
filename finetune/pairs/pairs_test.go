package pairs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

func TestNormalizeQuery(t *testing.T) {
	for in, want := range map[string]string{
		"  Hello,   World! ":       "hello world",
		"ＡＳＰＩＲＩＮ\u00a0Heart":       "aspirin heart", // full-width letters, no-break space
		"ﬁbrosis\tand\nlung":       "fibrosis and lung",
		"what's COVID-19?":         "whats covid19",
		"c++ templates":            "c++ templates", // symbols are not punctuation
		"???":                      "???",
		"Ärzte «über» Ärzte":       "ärzte über ärzte",
		"vitamin d: does it help?": "vitamin d does it help",
	} {
		if got := NormalizeQuery(in); got != want {
			t.Errorf("NormalizeQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func pair(qid, q, doc string, label float64) Pair {
	return Pair{QueryID: qid, Query: q, DocID: doc, Text: "text of " + doc, Label: label, Weight: 1}
}

func TestCheckMergesDuplicatesAndReportsConflicts(t *testing.T) {
	in := []Pair{
		pair("q1", "Aspirin heart", "d1", 1),
		pair("q1", "Aspirin heart", "d1", 1),   // exact duplicate
		pair("q9", "aspirin, heart!", "d1", 1), // same query after normalisation, same doc: duplicate
		pair("q1", "Aspirin heart", "d2", 0),
		pair("q2", "statins", "d3", 1), // conflict 1,0,0: majority keeps 0
		pair("q2", "statins", "d3", 0),
		pair("q2", "statins", "d3", 0),
		pair("q2", "statins", "d4", 1), // conflict 1,0: tie, dropped
		pair("q2", "statins", "d4", 0),
	}
	out, rep, err := Check(in, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.DuplicatesMerged != 2 {
		t.Errorf("duplicates merged = %d, want 2", rep.DuplicatesMerged)
	}
	if rep.QueryVariantsMerged != 1 || rep.Queries != 2 {
		t.Errorf("query variants merged = %d, queries = %d; want 1 and 2", rep.QueryVariantsMerged, rep.Queries)
	}
	if len(rep.Conflicts) != 2 || rep.ConflictsDropped != 1 {
		t.Fatalf("conflicts = %+v, dropped %d; want 2 with 1 dropped", rep.Conflicts, rep.ConflictsDropped)
	}
	c := rep.Conflicts[0]
	if c.DocID != "d3" || c.Dropped || c.Label != 0 || !reflect.DeepEqual(c.Labels, []float64{1, 0, 0}) {
		t.Errorf("first conflict = %+v, want d3 labels [1 0 0] kept 0", c)
	}
	if !rep.Conflicts[1].Dropped || rep.Conflicts[1].DocID != "d4" {
		t.Errorf("second conflict = %+v, want d4 dropped", rep.Conflicts[1])
	}
	want := []Pair{pair("q1", "Aspirin heart", "d1", 1), pair("q1", "Aspirin heart", "d2", 0), pair("q2", "statins", "d3", 0)}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("pairs =\n%+v\nwant\n%+v", out, want)
	}
	if rep.Scale != ScaleBinary || !rep.ScaleInferred {
		t.Errorf("scale = %v inferred %v, want binary inferred", rep.Scale, rep.ScaleInferred)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "only 3 training pairs (under 500)") {
		t.Errorf("warnings %q, want the small-set one", rep.Warnings)
	}
	text := rep.Text()
	for _, s := range []string{"duplicate pairs merged: 2", "conflicting labels: 2 pair(s), 1 dropped", `doc d3: labels 1, 0, 0 -> kept 0`, `doc d4: labels 1, 0 -> dropped`} {
		if !strings.Contains(text, s) {
			t.Errorf("report lacks %q:\n%s", s, text)
		}
	}
}

func TestCheckConflictDropPolicy(t *testing.T) {
	in := []Pair{pair("q", "q", "d", 2), pair("q", "q", "d", 2), pair("q", "q", "d", 3), pair("q", "q", "e", 0)}
	out, rep, err := Check(in, CheckOptions{Scale: ScaleGraded, Conflicts: ConflictDrop})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].DocID != "e" || rep.ConflictsDropped != 1 {
		t.Errorf("drop policy kept %+v (dropped %d), want only e", out, rep.ConflictsDropped)
	}
}

func TestCheckRejectsLabelsOffScale(t *testing.T) {
	cases := []struct {
		scale Scale
		bad   []float64
		ok    []float64
	}{
		{ScaleBinary, []float64{2, -1, 0.5}, []float64{0, 1}},
		{ScaleGraded, []float64{5, -1, 1.5, 7}, []float64{0, 1, 2, 3, 4}},
		{ScaleAuto, []float64{5}, []float64{0, 3}}, // auto infers graded, 5 is still off
	}
	for _, c := range cases {
		var in []Pair
		for i, l := range c.ok {
			in = append(in, pair("q", "query", fmt.Sprint("ok", i), l))
		}
		if _, _, err := Check(in, CheckOptions{Scale: c.scale}); err != nil {
			t.Errorf("%v: labels %v rejected: %v", c.scale, c.ok, err)
		}
		for i, l := range c.bad {
			in = append(in, pair("q", "query", fmt.Sprint("bad", i), l))
		}
		_, _, err := Check(in, CheckOptions{Scale: c.scale})
		var se *ScaleError
		if !errors.As(err, &se) {
			t.Fatalf("%v: labels %v accepted (err %v)", c.scale, c.bad, err)
		}
		if se.Count != len(c.bad) || !strings.Contains(err.Error(), "doc bad0 label "+fmtLabel(c.bad[0])) {
			t.Errorf("%v: error %q, want %d offenders naming bad0", c.scale, err, len(c.bad))
		}
	}
}

func TestCheckRejectsUnusablePairs(t *testing.T) {
	for name, p := range map[string]Pair{
		"empty query":         {Query: " ", Text: "x"},
		"empty document text": {Query: "q", Text: ""},
		"weight is not":       {Query: "q", Text: "x", Weight: -1},
	} {
		if _, _, err := Check([]Pair{pair("q", "q", "d", 1), p}, CheckOptions{}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, _, err := Check(nil, CheckOptions{}); err == nil {
		t.Error("empty set accepted")
	}
}

func TestCheckRenamesClashingQueryIDs(t *testing.T) {
	// Two files each numbering their queries from q1.
	in := []Pair{pair("q1", "aspirin", "a", 1), pair("q1", "statins", "b", 1), pair("q1", "statins", "c", 0)}
	out, rep, err := Check(in, CheckOptions{MinPairs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.QueryIDsRenamed != 1 || out[1].QueryID != "q1~2" || out[2].QueryID != "q1~2" || rep.Queries != 2 {
		t.Errorf("ids %s %s %s, renamed %d", out[0].QueryID, out[1].QueryID, out[2].QueryID, rep.QueryIDsRenamed)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("unexpected warnings %v", rep.Warnings)
	}
}

// corpusOf makes nq queries with three pairs each; every fifth query also
// appears as a spelling variant with its own id.
func corpusOf(nq int) []Pair {
	var ps []Pair
	for i := range nq {
		q := fmt.Sprintf("query number %d", i)
		for d := range 3 {
			ps = append(ps, pair(fmt.Sprint("q", i), q, fmt.Sprintf("d%d-%d", i, d), float64(d%2)))
		}
		if i%5 == 0 {
			ps = append(ps, pair(fmt.Sprint("v", i), strings.ToUpper(q)+"?", fmt.Sprintf("d%d-v", i), 0))
		}
	}
	return ps
}

func TestSplitByQueryWithoutLeakage(t *testing.T) {
	ps := corpusOf(100)
	train, val, rep, err := Split(ps, 0.2, 7)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ValQueries != 20 || rep.TrainQueries != 80 || len(train)+len(val) != len(ps) {
		t.Errorf("split %d/%d queries, %d+%d pairs of %d", rep.TrainQueries, rep.ValQueries, len(train), len(val), len(ps))
	}
	if !rep.Leakage.OK {
		t.Fatalf("leakage: %s", rep.Leakage)
	}
	// Re-check independently: a spelling variant must follow its query.
	side := map[string]string{}
	for name, set := range map[string][]Pair{"train": train, "val": val} {
		for _, p := range set {
			nq := NormalizeQuery(p.Query)
			if s, ok := side[nq]; ok && s != name {
				t.Fatalf("query %q on both sides", nq)
			}
			side[nq] = name
		}
	}
	if !strings.Contains(rep.Text(), "leakage check passed: none of the 20 validation queries") {
		t.Errorf("report: %s", rep.Text())
	}
}

func TestSplitReproducibleBySeed(t *testing.T) {
	ps := corpusOf(60)
	t1, v1, _, err := Split(ps, 0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	t2, v2, _, _ := Split(ps, 0.2, 42)
	if !reflect.DeepEqual(t1, t2) || !reflect.DeepEqual(v1, v2) {
		t.Error("same seed, different split")
	}
	// Input order does not matter: the same queries go to validation.
	shuffled := append([]Pair(nil), ps...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	_, v3, _, _ := Split(shuffled, 0.2, 42)
	if !reflect.DeepEqual(queriesOf(v1), queriesOf(v3)) {
		t.Error("shuffled input, different validation queries")
	}
	_, v4, _, _ := Split(ps, 0.2, 43)
	if reflect.DeepEqual(queriesOf(v1), queriesOf(v4)) {
		t.Error("seeds 42 and 43 chose the same validation queries")
	}
}

func queriesOf(ps []Pair) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		m[NormalizeQuery(p.Query)] = true
	}
	return m
}

func TestSplitBadInput(t *testing.T) {
	if _, _, _, err := Split(corpusOf(1), 0.2, 1); err == nil {
		t.Error("one query split")
	}
	for _, f := range []float64{-0.1, 1, 1.5} {
		if _, _, _, err := Split(corpusOf(10), f, 1); err == nil {
			t.Errorf("fraction %g accepted", f)
		}
	}
	// Two queries: one each side, whatever the fraction.
	_, _, rep, err := Split(corpusOf(2), 0.01, 1)
	if err != nil || rep.TrainQueries != 1 || rep.ValQueries != 1 {
		t.Errorf("two queries split %+v, err %v", rep, err)
	}
}

func TestCheckLeakageFindsSharedQueries(t *testing.T) {
	train := []Pair{pair("a", "Vitamin D", "d1", 1), pair("b", "aspirin", "d2", 1)}
	val := []Pair{pair("x", "vitamin d?", "d1", 1), pair("y", "statins", "d3", 1)}
	l := CheckLeakage(train, val)
	if l.OK || l.SharedCount != 1 || l.SharedPairs != 1 || !reflect.DeepEqual(l.Shared, []string{"vitamin d"}) {
		t.Errorf("leakage = %+v", l)
	}
	if !strings.Contains(l.String(), "FAILED: 1 of 2 validation queries") {
		t.Errorf("message %q", l)
	}
	kept, nq, np := RemoveLeaks(train, val)
	if nq != 1 || np != 1 || len(kept) != 1 || !CheckLeakage(kept, val).OK {
		t.Errorf("RemoveLeaks kept %+v (%d queries, %d pairs removed)", kept, nq, np)
	}
}

func TestReadJudgmentsAndQrels(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.jsonl")
	data := `{"query": "aspirin heart", "text": "Aspirin lowers heart attack risk.", "label": 2}
{"query": "aspirin heart", "text": "Statins lower cholesterol.", "label": 0}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := ReadJudgments(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Label != 2 || ps[0].QueryID != ps[1].QueryID || ps[1].Weight != 1 {
		t.Errorf("pairs %+v", ps)
	}

	texts := map[string]string{"d1": dataset.DocText("Title", "body"), "d2": dataset.DocText("", "only body")}
	lookup := func(id string) (string, bool) { s, ok := texts[id]; return s, ok }
	qs := []dataset.Query{{ID: "1", Text: "first"}, {ID: "2", Text: "second"}}
	got, err := FromQrels(qs, dataset.Qrels{"1": {"d2": 1, "d1": 0}, "2": {"d1": 1}}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{
		{QueryID: "1", Query: "first", DocID: "d1", Text: "Title body", Label: 0, Weight: 1},
		{QueryID: "1", Query: "first", DocID: "d2", Text: "only body", Label: 1, Weight: 1},
		{QueryID: "2", Query: "second", DocID: "d1", Text: "Title body", Label: 1, Weight: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromQrels =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := FromQrels(qs, dataset.Qrels{"1": {"nope": 1}}, lookup); err == nil || !strings.Contains(err.Error(), "nope (query 1)") {
		t.Errorf("missing document: err = %v", err)
	}
}

func TestJSONLRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	in := []Pair{pair("q1", "Ünïcode \"quoted\" <b>", "d1", 3), {QueryID: "q2", Query: "w", DocID: "d2", Text: "t", Label: 1, Weight: 2.5}}
	path := filepath.Join(dir, "p.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteJSONL(f, in); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back, err := ReadJSONL(path)
	if err != nil || !reflect.DeepEqual(back, in) {
		t.Errorf("read back %+v, err %v", back, err)
	}
	if q := Qrels(in); q["q2"]["d2"] != 1 || q["q1"]["d1"] != 3 {
		t.Errorf("qrels %v", q)
	}
	if qs := Queries(append(in, in[0])); len(qs) != 2 || qs[0].ID != "q1" || qs[1].Text != "w" {
		t.Errorf("queries %v", qs)
	}
	for name, line := range map[string]string{
		"no label":      `{"query": "q", "text": "t"}`,
		"unknown field": `{"query": "q", "text": "t", "label": 1, "score": 2}`,
		"not json":      `query,text,label`,
	} {
		bad := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(bad, []byte(line+"\n"), 0o644)
		if _, err := ReadJSONL(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
