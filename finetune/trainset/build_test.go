package trainset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/search"
)

// sample is the repository's SciFact sample (BEIR layout, 1,000 documents,
// 100 train and 100 test claims).
const sample = "../../testdata/scifact-sample"

var (
	indexOnce sync.Once
	indexDir  string
	index     *search.Index
	indexErr  error
)

// withIndex is how a host hands its open BM25 index to Build.
func withIndex(opt Options, idx *search.Index) Options {
	opt.Retriever, opt.Docs = search.Stage{Index: idx}, idx.DocText
	return opt
}

// sampleIndex builds and opens the sample's BM25 index once for the
// package's tests.
func sampleIndex(t *testing.T) *search.Index {
	t.Helper()
	indexOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trainset-index-")
		if err != nil {
			indexErr = err
			return
		}
		indexDir = filepath.Join(dir, "index")
		read := func(fn func(search.Doc) error) error {
			return dataset.ReadCorpus(filepath.Join(sample, "corpus.jsonl"), fn)
		}
		if indexErr = search.Build(context.Background(), indexDir, read, search.Options{}, nil); indexErr == nil {
			index, indexErr = search.Open(indexDir)
		}
	})
	if indexErr != nil {
		t.Fatal(indexErr)
	}
	return index
}

func TestMain(m *testing.M) {
	code := m.Run()
	if index != nil {
		index.Close()
	}
	if indexDir != "" {
		os.RemoveAll(filepath.Dir(indexDir))
	}
	os.Exit(code)
}

func TestBuildFromBEIR(t *testing.T) {
	opt := withIndex(Options{Train: sample, Seed: 1,
		Negatives: negatives.Options{Hard: 3, Depth: 20, Random: 1}}, sampleIndex(t))
	res, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if rep.Train.Kind != KindBEIR || rep.Train.Split != "train" || rep.Split.TrainQueries != 80 || rep.Split.ValQueries != 20 {
		t.Errorf("source %+v, split %d/%d queries; want BEIR train, 80/20", rep.Train, rep.Split.TrainQueries, rep.Split.ValQueries)
	}
	if !rep.Leakage.OK || !pairs.CheckLeakage(res.Train, res.Validation).OK {
		t.Fatalf("leakage: %s", rep.Leakage)
	}
	// Validation holds only judged pairs; training gets the negatives.
	for _, p := range res.Validation {
		if p.Label != 1 {
			t.Fatalf("validation pair %+v is not a SciFact judgment", p)
		}
	}
	neg := 0
	for _, p := range res.Train {
		if p.Label == 0 {
			neg++
		}
	}
	if neg != rep.Negatives.Hard+rep.Negatives.Random || rep.Negatives.Random != 80 || rep.Negatives.Hard < 200 {
		t.Errorf("%d negatives in training, report %+v; want 3 hard and 1 random for each of 80 queries", neg, rep.Negatives)
	}
	if rep.TrainPairs != len(res.Train) || rep.TrainPairs != rep.Split.TrainPairs+neg {
		t.Errorf("train pairs %d, report %d, split %d + negatives %d", len(res.Train), rep.TrainPairs, rep.Split.TrainPairs, neg)
	}
	if !hasWarning(rep, "under 500") {
		t.Errorf("no small-set warning for %d judged pairs: %v", rep.Checks.OutputPairs, rep.Warnings)
	}

	if hasWarning(rep, "every training pair") {
		t.Errorf("single-label warning with negatives added: %v", rep.Warnings)
	}
	positives, err := Build(context.Background(), Options{Train: sample})
	if err != nil || !hasWarning(positives.Report, "every training pair has label 1") {
		t.Errorf("no single-label warning without negatives (err %v)", err)
	}

	again, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Train, res.Train) || !reflect.DeepEqual(again.Validation, res.Validation) {
		t.Error("same options and seed, different training data")
	}
	opt.Seed = 2
	other, err := Build(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(other.Validation, res.Validation) {
		t.Error("seeds 1 and 2 gave the same validation set")
	}

	dir := t.TempDir()
	if err := res.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	back, err := pairs.ReadJSONL(filepath.Join(dir, TrainFile))
	if err != nil || !reflect.DeepEqual(back, res.Train) {
		t.Errorf("train.jsonl does not read back (err %v)", err)
	}
	// The pairs file is also a judgments file.
	if js, err := dataset.ReadJudgments(filepath.Join(dir, ValidationFile)); err != nil || len(js) != len(res.Validation) {
		t.Errorf("validation.jsonl as judgments: %d rows, err %v", len(js), err)
	}
	var decoded Report
	raw, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil || json.Unmarshal(raw, &decoded) != nil || decoded.TrainPairs != rep.TrainPairs {
		t.Errorf("report JSON: err %v, %d train pairs", err, decoded.TrainPairs)
	}
	text, _ := os.ReadFile(filepath.Join(dir, ReportText))
	for _, s := range []string{"training source: ../../testdata/scifact-sample (beir, split train)", "split: 80/20 by query, seed 1", "final leakage check passed", "WARNING: only"} {
		if !strings.Contains(string(text), s) {
			t.Errorf("report text lacks %q:\n%s", s, text)
		}
	}
}

func hasWarning(r *Report, s string) bool {
	for _, w := range r.Warnings {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}

func writeLines(t *testing.T, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuildFromJudgmentsWithValidationFile(t *testing.T) {
	train := writeLines(t, "train.jsonl",
		`{"query": "aspirin heart", "text": "Aspirin lowers heart attack risk.", "label": 2}`,
		`{"query": "Aspirin heart!", "text": "Aspirin lowers heart attack risk.", "label": 2}`,
		`{"query": "aspirin heart", "text": "Statins lower cholesterol.", "label": 0}`,
		`{"query": "aspirin  HEART", "text": "Statins lower cholesterol.", "label": 3}`,
		`{"query": "vitamin d bones", "text": "Vitamin D and bone density.", "label": 4}`,
		`{"query": "vitamin d bones", "text": "Tides follow the moon.", "label": 0}`,
		`{"query": "sleep memory", "text": "Sleep consolidates memory.", "label": 1}`,
	)
	val := writeLines(t, "val.tsv",
		"query\ttext\tlabel",
		"Vitamin D, bones?\tVitamin D and bone density.\t4",
		"coffee liver\tCoffee and liver enzymes.\t2",
	)
	res, err := Build(context.Background(), Options{Train: train, Val: val, Conflicts: pairs.ConflictDrop})
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if rep.Checks.Scale != pairs.ScaleGraded || rep.Checks.DuplicatesMerged != 1 || len(rep.Checks.Conflicts) != 1 || rep.Checks.ConflictsDropped != 1 {
		t.Errorf("checks %+v", rep.Checks)
	}
	if rep.LeakedQueriesRemoved != 1 || rep.LeakedPairsRemoved != 2 {
		t.Errorf("removed %d queries, %d pairs; want the vitamin query's 1 and 2", rep.LeakedQueriesRemoved, rep.LeakedPairsRemoved)
	}
	want := map[string]bool{"aspirin heart": true, "sleep memory": true}
	for _, p := range res.Train {
		if !want[pairs.NormalizeQuery(p.Query)] {
			t.Errorf("training pair of query %q", p.Query)
		}
	}
	if len(res.Validation) != 2 || !rep.Leakage.OK {
		t.Errorf("validation %d pairs, leakage %s", len(res.Validation), rep.Leakage)
	}
	text := rep.Text()
	for _, s := range []string{"training queries also in validation, removed: 1 (2 pairs)", "conflicting labels: 1 pair(s), 1 dropped", "labels 0, 3 -> dropped", "validation: 2 pairs, 2 queries"} {
		if !strings.Contains(text, s) {
			t.Errorf("report lacks %q:\n%s", s, text)
		}
	}
}

// The guide's minimal fine-tune is a {query, text, label} file and nothing
// else: random negatives come from the file's own documents.
func TestRandomNegativesWithoutCorpusComeFromTheFile(t *testing.T) {
	var lines []string
	for q := range 6 {
		for d := range 3 {
			lines = append(lines, fmt.Sprintf(`{"query": "query %d", "text": "document %d of query %d", "label": %d}`, q, d, q, min(d, 1)))
		}
	}
	res, err := Build(context.Background(), Options{Train: writeLines(t, "min.jsonl", lines...), Seed: 2, Negatives: negatives.Options{Random: DefaultRandom}})
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for _, l := range lines {
		var p pairs.Pair
		json.Unmarshal([]byte(l), &p)
		own[p.Text] = true
	}
	if res.Report.Negatives == nil || res.Report.Negatives.Random == 0 {
		t.Fatalf("no random negatives: %+v", res.Report.Negatives)
	}
	for _, p := range res.Train {
		if !own[p.Text] {
			t.Errorf("negative %q is not one of the file's documents", p.Text)
		}
	}
	if text := res.Report.Text(); !strings.Contains(text, "random negatives drawn from the training data's own") {
		t.Errorf("the report does not say where random negatives came from:\n%s", text)
	}
}

func TestBuildRejectsLabelsOffTheDeclaredScale(t *testing.T) {
	train := writeLines(t, "j.jsonl",
		`{"query": "a", "text": "x", "label": 1}`,
		`{"query": "b", "text": "y", "label": 3}`,
	)
	_, err := Build(context.Background(), Options{Train: train, Scale: pairs.ScaleBinary})
	var se *pairs.ScaleError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "outside the binary {0, 1} scale") || !strings.Contains(err.Error(), "j.jsonl") {
		t.Errorf("err = %v, want a scale error naming the file", err)
	}
	bad := writeLines(t, "bad.jsonl", `{"query": "a", "text": "x", "label": 9}`, `{"query": "b", "text": "y", "label": 0}`)
	if _, err := Build(context.Background(), Options{Train: bad}); !errors.As(err, &se) {
		t.Errorf("label 9 on the inferred scale: err = %v", err)
	}
}

func TestBuildBadOptions(t *testing.T) {
	ctx := context.Background()
	j := writeLines(t, "j.jsonl", `{"query": "a", "text": "x", "label": 1}`, `{"query": "b", "text": "y", "label": 0}`)
	for name, opt := range map[string]Options{
		"no source":               {},
		"missing file":            {Train: filepath.Join(t.TempDir(), "nope.jsonl")},
		"hard without index":      {Train: j, Negatives: negatives.Options{Hard: 2}},
		"unknown BEIR split":      {Train: sample, Split: "dev"},
		"unknown kind":            {Train: j, Kind: "csv"},
		"one query cannot split":  {Train: writeLines(t, "one.jsonl", `{"query": "a", "text": "x", "label": 1}`)},
		"clicks with no doc text": {Train: writeLines(t, "c.jsonl", `{"search_id":"s1","time":"2026-01-02T03:04:05Z","query":"q","results":[{"doc_id":"d1","position":1,"clicked":true,"clicks":1}]}`)},
	} {
		if _, err := Build(ctx, opt); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestBuildFromClickLog simulates users on the sample through the host's
// real click log: they see BM25's top ten (every other search shuffled, as
// an exploring ranker would), examine rank k with probability 1/k and click
// judged-relevant abstracts far more often than the rest. The labels built
// from the export must single out the relevant ones.
func TestBuildFromClickLog(t *testing.T) {
	ctx := context.Background()
	idx := sampleIndex(t)
	b, err := dataset.OpenBEIR(sample)
	if err != nil {
		t.Fatal(err)
	}
	queries, qrels, err := b.SplitQueries("train")
	if err != nil {
		t.Fatal(err)
	}
	store, err := clicklog.Open(filepath.Join(t.TempDir(), "data"), clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	type search struct {
		imp    clicklog.Impression
		clicks []clicklog.Click
	}
	var searches []search
	rng := rand.New(rand.NewPCG(7, 7))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for qi, q := range queries {
		hits, _, err := idx.Search(ctx, q.Text, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 16 {
			shown := slices.Clone(hits)
			if n%2 == 1 {
				rng.Shuffle(len(shown), func(i, j int) { shown[i], shown[j] = shown[j], shown[i] })
			}
			id := fmt.Sprintf("q%d-%d", qi, n)
			s := search{imp: clicklog.Impression{SearchID: id, Time: start.Add(time.Duration(len(searches)) * time.Second), Query: q.Text}}
			for k, h := range shown {
				s.imp.Results = append(s.imp.Results, clicklog.Shown{DocID: h.ID, Position: k + 1, BM25: h.Score})
				attract := 0.05
				if qrels[q.ID][h.ID] > 0 {
					attract = 0.85
				}
				if rng.Float64() < 1/float64(k+1) && rng.Float64() < attract {
					s.clicks = append(s.clicks, clicklog.Click{SearchID: id, DocID: h.ID, Position: k + 1, DwellMS: 40000, EventID: "c" + h.ID})
				}
			}
			searches = append(searches, s)
		}
	}
	// Eight writers ride the log's group commit.
	work := make(chan search)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := store.LogSearch(ctx, s.imp); err != nil {
					errs <- err
					return
				}
				for _, c := range s.clicks {
					if err := store.LogClick(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for _, s := range searches {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	export := filepath.Join(t.TempDir(), "export.jsonl")
	f, err := os.Create(export)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Export(ctx, time.Time{}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	res, err := Build(ctx, withIndex(Options{Train: export, Seed: 3, Negatives: negatives.Options{Hard: 2, Depth: 20}}, idx))
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	if rep.Train.Kind != KindClicks || rep.Train.Clicks == nil || rep.Train.Clicks.Impressions != len(searches) || rep.Checks.Scale != pairs.ScaleGraded {
		t.Fatalf("source %+v, scale %s", rep.Train, rep.Checks.Scale)
	}
	t.Log("\n" + clickmodel.FormatRanks(rep.Train.Clicks.Ranks))
	if p := rep.Train.Clicks.Ranks; len(p) != 10 || p[0].Propensity != 1 || p[4].Propensity > 0.4 || p[4].Propensity < 0.1 {
		t.Errorf("propensities %+v, want 1 at the top and about 1/5 at rank 5", p)
	}
	// Judged-relevant abstracts get high labels, the rest low ones.
	var relHigh, rel, otherHigh, other int
	byText := map[string]string{} // normalised query -> BEIR query id
	for _, q := range queries {
		byText[pairs.NormalizeQuery(q.Text)] = q.ID
	}
	for _, set := range [][]pairs.Pair{res.Train, res.Validation} {
		for _, p := range set {
			relevant := qrels[byText[pairs.NormalizeQuery(p.Query)]][p.DocID] > 0
			high := p.Label >= 2
			switch {
			case relevant:
				rel++
				if high {
					relHigh++
				}
			default:
				other++
				if high {
					otherHigh++
				}
			}
		}
	}
	t.Logf("relevant: %d of %d labelled 2 or more; others: %d of %d", relHigh, rel, otherHigh, other)
	if rel == 0 || float64(relHigh) < 0.8*float64(rel) || float64(otherHigh) > 0.05*float64(other) {
		t.Errorf("click labels do not separate relevant documents: %d/%d relevant and %d/%d others labelled 2+", relHigh, rel, otherHigh, other)
	}
	if !strings.Contains(rep.Text(), "click model: position-based") {
		t.Errorf("report:\n%s", rep.Text())
	}

	// The same export with inverse-propensity weights: binary labels, clicks weighted.
	ipw, err := Build(ctx, withIndex(Options{Train: export, Seed: 3, Clicks: ClickOptions{Mode: clickmodel.IPW, MaxWeight: 8}}, idx))
	if err != nil {
		t.Fatal(err)
	}
	if ipw.Report.Checks.Scale != pairs.ScaleBinary {
		t.Errorf("ipw scale %s", ipw.Report.Checks.Scale)
	}
	weighted := 0
	for _, p := range ipw.Train {
		if p.Label == 1 && p.Weight > 1.5 {
			weighted++
		}
		if p.Weight > 8 {
			t.Errorf("weight %g above the cap", p.Weight)
		}
	}
	if weighted == 0 {
		t.Error("no click weighted up for its rank")
	}
}

func TestReportWarnsWhenClicksCannotSeparatePosition(t *testing.T) {
	r := &Report{
		Train:  Source{Path: "export.jsonl", Kind: KindClicks, Clicks: &ClickReport{Pairs: 4151, VariedPairs: 0}},
		Checks: &pairs.CheckReport{}, Split: &pairs.SplitReport{},
	}
	r.finish(nil, nil)
	if !hasWarning(r, "only 0 of 4151 (query, document) pairs were shown at more than one rank") {
		t.Errorf("warnings %v", r.Warnings)
	}
	r = &Report{
		Train:  Source{Path: "export.jsonl", Kind: KindClicks, Clicks: &ClickReport{Pairs: 600, VariedPairs: 590}},
		Checks: &pairs.CheckReport{}, Split: &pairs.SplitReport{},
	}
	r.finish(nil, nil)
	if len(r.Warnings) != 0 {
		t.Errorf("unexpected warnings %v", r.Warnings)
	}
}

// BenchmarkBuildSciFact builds the training data of the SciFact quality run
// (train split, 80/20 by query, default negatives) from ../shared when
// present, and logs the report:
//
//	go test ./finetune/trainset -run '^$' -bench SciFact -benchtime 1x -v
func BenchmarkBuildSciFact(b *testing.B) {
	const dir = "../../../shared/datasets/scifact"
	if _, err := os.Stat(dir); err != nil {
		b.Skip("no ../shared/datasets/scifact")
	}
	idxDir := filepath.Join(b.TempDir(), "index")
	read := func(fn func(search.Doc) error) error {
		return dataset.ReadCorpus(filepath.Join(dir, "corpus.jsonl"), fn)
	}
	if err := search.Build(context.Background(), idxDir, read, search.Options{}, nil); err != nil {
		b.Fatal(err)
	}
	idx, err := search.Open(idxDir)
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	var res *Result
	for b.Loop() {
		var err error
		res, err = Build(context.Background(), withIndex(Options{Train: dir, Seed: 42,
			Negatives: negatives.Options{Hard: DefaultHard, Depth: DefaultHardDepth, Random: DefaultRandom}}, idx))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Log("\n" + res.Report.Text())
}
