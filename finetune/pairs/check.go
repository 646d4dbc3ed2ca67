package pairs

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ConflictPolicy says what happens to a (query, document) pair that carries
// different labels.
type ConflictPolicy string

const (
	// ConflictMajority keeps the most frequent label; a tie drops the pair.
	ConflictMajority ConflictPolicy = "majority"
	// ConflictDrop drops every conflicting pair.
	ConflictDrop ConflictPolicy = "drop"
)

// DefaultMinPairs is the size under which Check warns that the set is small.
const DefaultMinPairs = 500

// CheckOptions configures Check. The zero value infers the scale, resolves
// conflicts by majority and warns under DefaultMinPairs pairs.
type CheckOptions struct {
	Scale     Scale
	Conflicts ConflictPolicy
	MinPairs  int
}

// Conflict is one (query, document) pair seen with different labels.
type Conflict struct {
	QueryID string    `json:"query_id"`
	Query   string    `json:"query"`
	DocID   string    `json:"doc_id"`
	Labels  []float64 `json:"labels"` // every label seen, in input order
	Dropped bool      `json:"dropped"`
	Label   float64   `json:"label"` // the label kept when not dropped
}

// CheckReport says what Check found and did.
type CheckReport struct {
	Scale         Scale `json:"scale"`
	ScaleInferred bool  `json:"scale_inferred"`
	InputPairs    int   `json:"input_pairs"`
	OutputPairs   int   `json:"output_pairs"`
	Queries       int   `json:"queries"`
	// QueryVariantsMerged counts query texts or ids folded into an earlier
	// query with the same normalised text.
	QueryVariantsMerged int `json:"query_variants_merged"`
	// QueryIDsRenamed counts queries whose id another query already held.
	QueryIDsRenamed  int            `json:"query_ids_renamed"`
	DuplicatesMerged int            `json:"duplicates_merged"`
	Conflicts        []Conflict     `json:"conflicts"`
	ConflictsDropped int            `json:"conflicts_dropped"`
	Labels           map[string]int `json:"labels"` // label -> pairs, after the checks
	Warnings         []string       `json:"warnings"`
}

// ScaleError rejects a set whose labels are not on the declared scale.
type ScaleError struct {
	Scale Scale
	Count int
	First []Pair // up to five offending pairs
}

func (e *ScaleError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d label(s) outside the %s scale", e.Count, e.Scale)
	for i, p := range e.First {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%squery %s doc %s label %s", sep, p.QueryID, p.DocID, fmtLabel(p.Label))
	}
	if e.Count > len(e.First) {
		b.WriteString(", ...")
	}
	if e.Scale == ScaleBinary {
		b.WriteString(" (declare the graded scale for 0-4 labels)")
	}
	return b.String()
}

// Check validates ps and returns the pairs to train on: one per (normalised
// query, document text), every query under one id and text per normalised
// form. A label off the scale is a *ScaleError; an empty query or text or a
// non-finite label or weight is an error listing the first offenders.
func Check(ps []Pair, opt CheckOptions) ([]Pair, *CheckReport, error) {
	if opt.Conflicts == "" {
		opt.Conflicts = ConflictMajority
	}
	if opt.Conflicts != ConflictMajority && opt.Conflicts != ConflictDrop {
		return nil, nil, fmt.Errorf("conflict policy %q: want majority or drop", opt.Conflicts)
	}
	if opt.MinPairs == 0 {
		opt.MinPairs = DefaultMinPairs
	}
	if len(ps) == 0 {
		return nil, nil, errors.New("no training pairs")
	}
	if err := validate(ps); err != nil {
		return nil, nil, err
	}
	rep := &CheckReport{Scale: opt.Scale, InputPairs: len(ps), Labels: map[string]int{}}
	if rep.Scale == ScaleAuto {
		rep.Scale, rep.ScaleInferred = inferScale(ps), true
	}
	if err := checkScale(ps, rep.Scale); err != nil {
		return nil, nil, err
	}

	queries := canonicalQueries(ps, rep)

	type item struct {
		first  Pair
		labels []float64
		weight float64
	}
	var order []string
	items := map[string]*item{}
	for _, p := range ps {
		nq := NormalizeQuery(p.Query)
		key := nq + "\x00" + strings.TrimSpace(p.Text)
		it, ok := items[key]
		if !ok {
			q := queries[nq]
			p.QueryID, p.Query = q.id, q.text
			it = &item{first: p}
			items[key] = it
			order = append(order, key)
		}
		it.labels = append(it.labels, p.Label)
		it.weight = math.Max(it.weight, p.weight())
	}

	out := make([]Pair, 0, len(order))
	for _, key := range order {
		it := items[key]
		p := it.first
		p.Weight = it.weight
		if kept, same := resolve(it.labels, opt.Conflicts); same {
			rep.DuplicatesMerged += len(it.labels) - 1
		} else {
			c := Conflict{QueryID: p.QueryID, Query: p.Query, DocID: p.DocID, Labels: it.labels}
			if math.IsNaN(kept) {
				c.Dropped = true
				rep.ConflictsDropped++
				rep.Conflicts = append(rep.Conflicts, c)
				continue
			}
			c.Label = kept
			rep.Conflicts = append(rep.Conflicts, c)
			p.Label = kept
		}
		out = append(out, p)
		rep.Labels[fmtLabel(p.Label)]++
	}
	rep.OutputPairs = len(out)
	seen := map[string]bool{}
	for _, p := range out {
		seen[p.QueryID] = true
	}
	rep.Queries = len(seen)

	if rep.OutputPairs < opt.MinPairs {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("only %d training pairs (under %d): expect an unstable fine-tune; add judgments, clicks or negatives", rep.OutputPairs, opt.MinPairs))
	}
	return out, rep, nil
}

// validate rejects pairs that cannot be trained on at all.
func validate(ps []Pair) error {
	var bad []string
	n := 0
	for i, p := range ps {
		var why string
		switch {
		case strings.TrimSpace(p.Query) == "":
			why = "empty query"
		case strings.TrimSpace(p.Text) == "":
			why = "empty document text"
		case math.IsNaN(p.Label) || math.IsInf(p.Label, 0):
			why = "label is not a number"
		case math.IsNaN(p.Weight) || math.IsInf(p.Weight, 0) || p.Weight < 0:
			why = "weight is not a finite non-negative number"
		default:
			continue
		}
		n++
		if len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("pair %d (query %s doc %s): %s", i+1, p.QueryID, p.DocID, why))
		}
	}
	if n == 0 {
		return nil
	}
	more := ""
	if n > len(bad) {
		more = ", ..."
	}
	return fmt.Errorf("%d invalid training pair(s): %s%s", n, strings.Join(bad, "; "), more)
}

func inferScale(ps []Pair) Scale {
	for _, p := range ps {
		if !ScaleBinary.Allows(p.Label) {
			return ScaleGraded
		}
	}
	return ScaleBinary
}

func checkScale(ps []Pair, s Scale) error {
	if s != ScaleBinary && s != ScaleGraded {
		return fmt.Errorf("label scale %q: want binary or graded", string(s))
	}
	e := &ScaleError{Scale: s}
	for _, p := range ps {
		if !s.Allows(p.Label) {
			e.Count++
			if len(e.First) < 5 {
				e.First = append(e.First, p)
			}
		}
	}
	if e.Count > 0 {
		return e
	}
	return nil
}

type canonical struct{ id, text string }

// canonicalQueries maps each normalised query to the id and text it was
// first seen with, keeping ids unique across different normalised queries.
func canonicalQueries(ps []Pair, rep *CheckReport) map[string]canonical {
	out := map[string]canonical{}
	variants := map[[2]string]bool{} // (id, text) forms seen
	usedID := map[string]bool{}
	for _, p := range ps {
		nq := NormalizeQuery(p.Query)
		form := [2]string{p.QueryID, p.Query}
		if _, ok := out[nq]; !ok {
			id := p.QueryID
			if id == "" {
				id = nq
			}
			if usedID[id] {
				base := id
				for n := 2; usedID[id]; n++ {
					id = base + "~" + strconv.Itoa(n)
				}
				rep.QueryIDsRenamed++
			}
			usedID[id] = true
			out[nq] = canonical{id: id, text: p.Query}
		} else if !variants[form] {
			rep.QueryVariantsMerged++
		}
		variants[form] = true
	}
	return out
}

// resolve returns the label to keep and whether all labels agree. Under
// ConflictDrop, or on a majority tie, it returns NaN.
func resolve(labels []float64, policy ConflictPolicy) (float64, bool) {
	counts := map[float64]int{}
	for _, l := range labels {
		counts[l]++
	}
	if len(counts) == 1 {
		return labels[0], true
	}
	if policy == ConflictDrop {
		return math.NaN(), false
	}
	best, bestN, tie := 0.0, 0, false
	for l, n := range counts {
		switch {
		case n > bestN:
			best, bestN, tie = l, n, false
		case n == bestN:
			tie = true
		}
	}
	if tie {
		return math.NaN(), false
	}
	return best, false
}

func fmtLabel(l float64) string { return strconv.FormatFloat(l, 'g', -1, 64) }

// Text renders the report for people, without the warnings: callers print
// those where they gather them.
func (r *CheckReport) Text() string {
	var b strings.Builder
	inferred := ""
	if r.ScaleInferred {
		inferred = " (inferred)"
	}
	fmt.Fprintf(&b, "checks: %d pairs in, %d out, %d queries, labels %s%s\n", r.InputPairs, r.OutputPairs, r.Queries, r.Scale, inferred)
	labels := make([]string, 0, len(r.Labels))
	for l := range r.Labels {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		a, _ := strconv.ParseFloat(labels[i], 64)
		c, _ := strconv.ParseFloat(labels[j], 64)
		return a < c
	})
	for i, l := range labels {
		labels[i] = fmt.Sprintf("%s: %d", l, r.Labels[l])
	}
	fmt.Fprintf(&b, "  label counts: %s\n", strings.Join(labels, ", "))
	fmt.Fprintf(&b, "  duplicate pairs merged: %d\n", r.DuplicatesMerged)
	fmt.Fprintf(&b, "  query variants merged (same text after normalisation): %d\n", r.QueryVariantsMerged)
	if r.QueryIDsRenamed > 0 {
		fmt.Fprintf(&b, "  query ids renamed (one id, two different queries): %d\n", r.QueryIDsRenamed)
	}
	fmt.Fprintf(&b, "  conflicting labels: %d pair(s), %d dropped, %d kept by majority\n", len(r.Conflicts), r.ConflictsDropped, len(r.Conflicts)-r.ConflictsDropped)
	const maxListed = 20
	for i, c := range r.Conflicts {
		if i == maxListed {
			fmt.Fprintf(&b, "    ... %d more in the JSON report\n", len(r.Conflicts)-maxListed)
			break
		}
		ls := make([]string, len(c.Labels))
		for j, l := range c.Labels {
			ls[j] = fmtLabel(l)
		}
		outcome := "dropped"
		if !c.Dropped {
			outcome = "kept " + fmtLabel(c.Label)
		}
		fmt.Fprintf(&b, "    query %s %q doc %s: labels %s -> %s\n", c.QueryID, clip(c.Query, 60), c.DocID, strings.Join(ls, ", "), outcome)
	}
	return b.String()
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}
