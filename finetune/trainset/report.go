package trainset

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/distill"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
)

// Source describes one input.
type Source struct {
	Path   string       `json:"path"`
	Kind   Kind         `json:"kind"`
	Split  string       `json:"split,omitempty"`
	Clicks *ClickReport `json:"clicks,omitempty"`
	// scale is the scale the source's labels are on by construction (click
	// labels); auto for files.
	scale pairs.Scale
}

// ClickReport describes the click model behind click-derived labels.
type ClickReport struct {
	Mode        clickmodel.Mode `json:"mode"`
	MinDwellMS  int64           `json:"min_dwell_ms"`
	Impressions int             `json:"impressions"`
	Iterations  int             `json:"em_iterations"`
	Converged   bool            `json:"em_converged"`
	// Pairs counts logged (query, document) pairs, VariedPairs those shown at
	// more than one rank: the evidence that separates position from relevance.
	Pairs       int                   `json:"pairs"`
	VariedPairs int                   `json:"varied_pairs"`
	Ranks       []clickmodel.RankStat `json:"ranks"`
	Labels      int                   `json:"labels"`
	// MissingDocs counts labels dropped because the document is in neither
	// the index nor the corpus (deleted since it was shown).
	MissingDocs int `json:"missing_docs"`
}

func newClickReport(m *clickmodel.Model, mode clickmodel.Mode, minDwell int64) *ClickReport {
	return &ClickReport{Mode: mode, MinDwellMS: minDwell, Impressions: m.Impressions, Iterations: m.Iterations, Converged: m.Converged, Ranks: m.Ranks(),
		Pairs: m.Pairs(), VariedPairs: m.VariedPairs}
}

// minVariedShare: a click log where fewer than one pair in this many was
// shown at more than one rank gets a warning.
const minVariedShare = 20

// Report is everything Build did, for the model card and for people.
type Report struct {
	Train     Source             `json:"train"`
	Val       *Source            `json:"validation,omitempty"`
	Checks    *pairs.CheckReport `json:"checks"`
	ValChecks *pairs.CheckReport `json:"validation_checks,omitempty"`
	// Leaked* count training queries (and their pairs) removed because a
	// given validation set has them.
	LeakedQueriesRemoved int `json:"leaked_queries_removed"`
	LeakedPairsRemoved   int `json:"leaked_pairs_removed"`
	// Excluded* count training pairs of the queries Options.Exclude names.
	ExcludedQueries int                `json:"excluded_queries,omitempty"`
	ExcludedPairs   int                `json:"excluded_pairs,omitempty"`
	Split           *pairs.SplitReport `json:"split"`
	Negatives       *negatives.Report  `json:"negatives,omitempty"`
	// RandomFrom is where random negatives were drawn from.
	RandomFrom string `json:"random_negatives_from,omitempty"`
	// SampledFrom is how many training pairs there were before MaxPairs
	// sampling (0: no sampling).
	SampledFrom int `json:"sampled_from,omitempty"`
	// Distillation, when set, replaced the training pairs (see Distil).
	Distillation *distill.Report `json:"distillation,omitempty"`
	// Leakage is checked on the final sets, negatives included.
	Leakage     pairs.Leakage  `json:"leakage"`
	TrainPairs  int            `json:"train_pairs"`
	ValPairs    int            `json:"validation_pairs"`
	TrainLabels map[string]int `json:"train_labels"`
	Warnings    []string       `json:"warnings"`
}

func (r *Report) finish(train, val []pairs.Pair) {
	r.TrainPairs, r.ValPairs = len(train), len(val)
	r.TrainLabels, r.Warnings = nil, nil
	// A teacher's soft targets replace the labelled pairs the checks and
	// label counts are about.
	if r.Distillation == nil {
		r.TrainLabels = map[string]int{}
		for _, p := range train {
			r.TrainLabels[strconv.FormatFloat(p.Label, 'g', -1, 64)]++
		}
		r.Warnings = append(r.Warnings, r.Checks.Warnings...)
	}
	if r.ValChecks != nil {
		for _, w := range r.ValChecks.Warnings {
			r.Warnings = append(r.Warnings, "validation: "+w)
		}
	}
	if len(r.TrainLabels) == 1 {
		for l := range r.TrainLabels {
			r.Warnings = append(r.Warnings, fmt.Sprintf("every training pair has label %s: the model cannot learn to separate relevant from irrelevant; add negatives", l))
		}
	}
	if s := r.Split; s.ValQueriesWithPositive < s.ValQueries {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d validation queries have no relevant document: they cannot move NDCG or MRR", s.ValQueries-s.ValQueriesWithPositive, s.ValQueries))
	}
	for _, src := range []*Source{&r.Train, r.Val} {
		if src == nil || src.Clicks == nil {
			continue
		}
		c := src.Clicks
		if c.MissingDocs > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %d click-derived labels dropped, their documents are no longer in the index or corpus", src.Path, c.MissingDocs))
		}
		if c.VariedPairs*minVariedShare < c.Pairs {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: only %d of %d (query, document) pairs were shown at more than one rank, so position bias is barely identifiable and the propensities lean on the prior; log varied rankings (interleaving, exploration, several model versions)", src.Path, c.VariedPairs, c.Pairs))
		}
	}
}

// Text renders the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	writeSource(&b, "training source", &r.Train)
	b.WriteString(r.Checks.Text())
	if r.Val != nil {
		writeSource(&b, "validation source", r.Val)
		b.WriteString(strings.Replace(r.ValChecks.Text(), "checks:", "validation checks:", 1))
		fmt.Fprintf(&b, "training queries also in validation, removed: %d (%d pairs)\n", r.LeakedQueriesRemoved, r.LeakedPairsRemoved)
	}
	if r.ExcludedQueries > 0 {
		fmt.Fprintf(&b, "held-out queries removed from training: %d (%d pairs)\n", r.ExcludedQueries, r.ExcludedPairs)
	}
	b.WriteString(r.Split.Text())
	if r.Negatives != nil {
		b.WriteString(r.Negatives.Text())
	}
	if r.RandomFrom != "" {
		fmt.Fprintf(&b, "random negatives drawn from %s\n", r.RandomFrom)
	}
	if r.SampledFrom > 0 {
		fmt.Fprintf(&b, "training pairs sampled: %d of %d\n", r.TrainPairs, r.SampledFrom)
	}
	if r.Distillation != nil {
		b.WriteString(r.Distillation.Text())
	}
	labels := "labels " + labelCounts(r.TrainLabels)
	if r.Distillation != nil {
		labels = "soft targets from the teacher"
	}
	fmt.Fprintf(&b, "final: %d training pairs (%s), %d validation pairs\n", r.TrainPairs, labels, r.ValPairs)
	fmt.Fprintf(&b, "final %s\n", r.Leakage)
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	return b.String()
}

func writeSource(b *strings.Builder, name string, s *Source) {
	fmt.Fprintf(b, "%s: %s (%s", name, s.Path, s.Kind)
	if s.Split != "" {
		fmt.Fprintf(b, ", split %s", s.Split)
	}
	b.WriteString(")\n")
	if c := s.Clicks; c != nil {
		fmt.Fprintf(b, "click model: position-based, EM %d iterations (converged: %v), %d impressions, %d (query, document) pairs of which %d shown at more than one rank, labels %s",
			c.Iterations, c.Converged, c.Impressions, c.Pairs, c.VariedPairs, c.Mode)
		if c.MinDwellMS > 0 {
			fmt.Fprintf(b, ", clicks under %d ms ignored", c.MinDwellMS)
		}
		fmt.Fprintf(b, "; %d labelled pairs, %d dropped (document gone)\n", c.Labels, c.MissingDocs)
		b.WriteString(clickmodel.FormatRanks(c.Ranks))
	}
}

func labelCounts(m map[string]int) string {
	var parts []string
	for l := 0.0; l <= 4; l++ {
		k := strconv.FormatFloat(l, 'g', -1, 64)
		if n, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s: %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// Files written by WriteDir.
const (
	TrainFile      = "train.jsonl"
	ValidationFile = "validation.jsonl"
	ReportJSON     = "data_report.json"
	ReportText     = "data_report.txt"
)

// WriteDir writes the pairs (JSONL, see pairs.WriteJSONL) and the report
// (JSON and text) into dir, creating it.
func (res *Result) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, ps := range map[string][]pairs.Pair{TrainFile: res.Train, ValidationFile: res.Validation} {
		if err := writeFile(filepath.Join(dir, name), func(f *os.File) error { return pairs.WriteJSONL(f, ps) }); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ReportJSON), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ReportText), []byte(res.Report.Text()), 0o644)
}

func writeFile(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
