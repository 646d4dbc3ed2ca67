// Package trainset turns any training source (a judgments file, a BEIR
// folder, a click-log export or the click log's impressions in memory) into
// checked train and validation pairs with hard and random negatives, and a
// report of every step. It is what `rerank finetune` and `rerank retrain` run
// before sending pairs to the plugin. It reads files by path but never opens
// an index: the BM25 first stage and the document lookup come in as
// interfaces, so a serving host hands over its open index.
package trainset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/distill"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
)

// Kind is the format of a training source.
type Kind string

const (
	// KindAuto: a folder is BEIR; a JSONL file whose first line has
	// "search_id" and "results" is a click-log export; else judgments.
	KindAuto      Kind = ""
	KindJudgments Kind = "judgments"
	KindBEIR      Kind = "beir"
	KindClicks    Kind = "clicks"
)

// Defaults a command line can offer.
const (
	DefaultSplit     = "train"
	DefaultValSplit  = "dev"
	DefaultHard      = 5
	DefaultHardDepth = 30
	DefaultRandom    = 2
)

// ClickOptions configures labels from a click-log export.
type ClickOptions struct {
	Mode      clickmodel.Mode // graded (default) or ipw
	MaxWeight float64         // cap on inverse-propensity weights (default 10)
	// MinDwellMS: shorter clicks do not count (0: every click counts).
	MinDwellMS int64
	Model      clickmodel.Options
}

// Options says what to build from. Zero counts of negatives add none.
type Options struct {
	// Train is a judgments file, a BEIR folder or a click-log export; or
	// empty, with Impressions set.
	Train string
	Kind  Kind
	// Impressions are click-log searches to label (Kind clicks), when Train
	// is empty: the host's window of its log, read without a file.
	Impressions []impression.Impression
	Split       string // BEIR split to train on (default "train")

	// Val is a validation source; when empty, Train is split by query.
	Val      string
	ValKind  Kind
	ValSplit string // BEIR split of Val (default "dev")

	ValFraction float64 // default 0.2
	// Seed drives the split and the negatives.
	Seed uint64

	Scale     pairs.Scale // auto: binary if all labels are 0/1, else graded
	Conflicts pairs.ConflictPolicy
	MinPairs  int // warn under this many pairs (default 500)

	// Retriever is the BM25 first stage hard negatives come from.
	Retriever runner.FirstStage
	// Docs looks up the text of a click-log document by id when no Corpus is
	// given (ok false: not there).
	Docs func(id string) (text string, ok bool, err error)
	// Corpus is a corpus JSONL: random negatives come from it, and click-log
	// documents get their text from it. A BEIR source brings its own; with
	// neither, random negatives come from the training data's own documents.
	Corpus string

	// Exclude are queries never to train or validate on (the gate's judged
	// held-out queries), matched after normalisation.
	Exclude []string
	// MaxPairs keeps at most this many training pairs, negatives included,
	// drawn by Seed (0: all).
	MaxPairs int

	// Negatives' Seed is ignored: Seed is used.
	Negatives negatives.Options
	Clicks    ClickOptions
}

// Result is the training data and what was done to make it.
type Result struct {
	Train      []pairs.Pair
	Validation []pairs.Pair
	Report     *Report
}

// Build loads, checks, splits and completes the training data.
func Build(ctx context.Context, opt Options) (*Result, error) {
	if opt.Train == "" && opt.Impressions == nil {
		return nil, errors.New("training data: no source given")
	}
	if opt.Split == "" {
		opt.Split = DefaultSplit
	}
	if opt.ValSplit == "" {
		opt.ValSplit = DefaultValSplit
	}
	env := &sources{opt: opt}

	rep := &Report{}
	var train []pairs.Pair
	var err error
	if opt.Train == "" {
		train, err = env.loadClicks(ctx, opt.Impressions, "the click log", &rep.Train)
	} else {
		train, err = env.load(ctx, opt.Train, opt.Kind, opt.Split, &rep.Train)
	}
	if err != nil {
		return nil, err
	}
	excluded := queryPairs(opt.Exclude)
	if len(excluded) > 0 {
		train, rep.ExcludedQueries, rep.ExcludedPairs = pairs.RemoveLeaks(train, excluded)
		if len(train) == 0 {
			return nil, fmt.Errorf("training data %s: every query is among the excluded (held-out) queries", rep.Train.Path)
		}
	}
	checkOpt := pairs.CheckOptions{Scale: opt.Scale, Conflicts: opt.Conflicts, MinPairs: opt.MinPairs}
	if checkOpt.Scale == pairs.ScaleAuto {
		checkOpt.Scale = rep.Train.scale
	}
	if train, rep.Checks, err = pairs.Check(train, checkOpt); err != nil {
		return nil, fmt.Errorf("training data %s: %w", rep.Train.Path, err)
	}

	var val []pairs.Pair
	if opt.Val == "" {
		if train, val, rep.Split, err = pairs.Split(train, opt.ValFraction, opt.Seed); err != nil {
			return nil, fmt.Errorf("training data %s: %w", rep.Train.Path, err)
		}
	} else {
		rep.Val = &Source{}
		if val, err = env.load(ctx, opt.Val, opt.ValKind, opt.ValSplit, rep.Val); err != nil {
			return nil, err
		}
		if len(excluded) > 0 {
			val, _, _ = pairs.RemoveLeaks(val, excluded)
		}
		vopt := checkOpt
		if opt.Scale == pairs.ScaleAuto {
			vopt.Scale = rep.Val.scale
		}
		vopt.MinPairs = 1 // the size warning is about training
		if val, rep.ValChecks, err = pairs.Check(val, vopt); err != nil {
			return nil, fmt.Errorf("validation data %s: %w", opt.Val, err)
		}
		train, rep.LeakedQueriesRemoved, rep.LeakedPairsRemoved = pairs.RemoveLeaks(train, val)
		if len(train) == 0 {
			return nil, fmt.Errorf("training data %s: every query is also in the validation data %s", opt.Train, opt.Val)
		}
		rep.Split = pairs.Report(train, val)
	}

	if n := opt.Negatives; n.Hard > 0 || n.Random > 0 {
		n.Seed = opt.Seed
		if n.Hard > 0 && opt.Retriever == nil {
			return nil, errors.New("hard negatives: no BM25 index given")
		}
		var docs []dataset.Doc
		if n.Random > 0 {
			if docs, rep.RandomFrom, err = env.negativeCorpus(train); err != nil {
				return nil, err
			}
		}
		var negs []pairs.Pair
		if negs, rep.Negatives, err = negatives.Mine(ctx, train, opt.Retriever, docs, n); err != nil {
			return nil, err
		}
		train = append(train, negs...)
	}
	if opt.MaxPairs > 0 && len(train) > opt.MaxPairs {
		rep.SampledFrom = len(train)
		train = samplePairs(train, opt.MaxPairs, opt.Seed)
	}

	// The leakage check runs again on exactly what will be trained on.
	rep.Leakage = pairs.CheckLeakage(train, val)
	if !rep.Leakage.OK {
		return nil, errors.New(rep.Leakage.String())
	}
	rep.finish(train, val)
	return &Result{Train: train, Validation: val, Report: rep}, nil
}

// Distil replaces the training pairs by soft targets from a teacher's
// scores over the same training queries (see package distill), checks
// leakage again and records it in the report. The validation pairs, judged
// by their labels, stay.
func (r *Result) Distil(train []pairs.Pair, rep *distill.Report) error {
	lk := pairs.CheckLeakage(train, r.Validation)
	if !lk.OK {
		return errors.New(lk.String())
	}
	r.Train = train
	r.Report.Distillation, r.Report.Leakage = rep, lk
	r.Report.finish(train, r.Validation)
	return nil
}

// sources reads each corpus once, when first needed.
type sources struct {
	opt     Options
	corpora map[string]*corpus
	// beirCorpus is the first BEIR source's corpus, the random negatives'
	// corpus when none is given.
	beirCorpus string
}

// corpus is a corpus file held in memory.
type corpus struct {
	docs []dataset.Doc
	byID map[string]int
}

func (c *corpus) text(id string) (string, bool) {
	i, ok := c.byID[id]
	if !ok {
		return "", false
	}
	return dataset.DocText(c.docs[i].Title, c.docs[i].Text), true
}

func (s *sources) corpus(path string) (*corpus, error) {
	if c := s.corpora[path]; c != nil {
		return c, nil
	}
	c := &corpus{byID: map[string]int{}}
	err := dataset.ReadCorpus(path, func(d dataset.Doc) error {
		if _, dup := c.byID[d.ID]; !dup {
			c.byID[d.ID] = len(c.docs)
			c.docs = append(c.docs, d)
		}
		return nil
	})
	if err == nil && len(c.docs) == 0 {
		err = fmt.Errorf("%s: no documents", path)
	}
	if err != nil {
		return nil, err
	}
	if s.corpora == nil {
		s.corpora = map[string]*corpus{}
	}
	s.corpora[path] = c
	return c, nil
}

// negativeCorpus is where random negatives come from, and says which: the
// corpus given, the BEIR source's, or else the training pairs' own documents
// (the minimal judgments file has no corpus beside it).
func (s *sources) negativeCorpus(train []pairs.Pair) ([]dataset.Doc, string, error) {
	path := s.opt.Corpus
	if path == "" {
		path = s.beirCorpus
	}
	if path == "" {
		var docs []dataset.Doc
		seen := map[string]bool{}
		for _, p := range train {
			if !seen[p.Text] {
				seen[p.Text] = true
				docs = append(docs, dataset.Doc{ID: p.DocID, Text: p.Text})
			}
		}
		return docs, fmt.Sprintf("the training data's own %d documents (no corpus given)", len(docs)), nil
	}
	c, err := s.corpus(path)
	if err != nil {
		return nil, "", err
	}
	return c.docs, path, nil
}

// clickText looks up a logged document: in the corpus when one is given,
// else through Options.Docs.
func (s *sources) clickText(id string) (string, bool, error) {
	if s.opt.Corpus != "" {
		c, err := s.corpus(s.opt.Corpus)
		if err != nil {
			return "", false, err
		}
		t, ok := c.text(id)
		return t, ok, nil
	}
	if s.opt.Docs == nil {
		return "", false, errors.New("click logs name documents by id, so their text comes from the BM25 index or a corpus: give one")
	}
	return s.opt.Docs(id)
}

// load reads one source into pairs and describes it in src.
func (s *sources) load(ctx context.Context, path string, kind Kind, split string, src *Source) ([]pairs.Pair, error) {
	kind, err := detect(path, kind)
	if err != nil {
		return nil, err
	}
	*src = Source{Path: path, Kind: kind}
	switch kind {
	case KindJudgments:
		return pairs.ReadJudgments(path)
	case KindBEIR:
		src.Split = split
		b, err := dataset.OpenBEIR(path)
		if err != nil {
			return nil, err
		}
		queries, qrels, err := b.SplitQueries(split)
		if err != nil {
			return nil, err
		}
		c, err := s.corpus(b.CorpusPath())
		if err != nil {
			return nil, err
		}
		if s.beirCorpus == "" {
			s.beirCorpus = b.CorpusPath()
		}
		return pairs.FromQrels(queries, qrels, c.text)
	case KindClicks:
		imps, err := impression.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return s.loadClicks(ctx, imps, path, src)
	}
	return nil, fmt.Errorf("training source kind %q: want judgments, beir or clicks", kind)
}

// loadClicks labels the searches of a click log (named path in messages)
// with the position-bias click model, and describes them in src.
func (s *sources) loadClicks(ctx context.Context, logged []impression.Impression, path string, src *Source) ([]pairs.Pair, error) {
	*src = Source{Path: path, Kind: KindClicks}
	co := s.opt.Clicks
	mode, err := clickmodel.ParseMode(string(co.Mode))
	if err != nil {
		return nil, err
	}
	imps, err := clickmodel.FromExports(logged, clickmodel.ExportOptions{KeyBy: clickmodel.KeyQuery, MinDwellMS: co.MinDwellMS})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := clickmodel.Fit(imps, co.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	labels, err := m.Labels(clickmodel.LabelOptions{Mode: mode, MaxWeight: co.MaxWeight})
	if err != nil {
		return nil, err
	}
	src.Clicks = newClickReport(m, mode, co.MinDwellMS)
	src.scale = pairs.ScaleGraded
	if mode == clickmodel.IPW {
		src.scale = pairs.ScaleBinary
	}
	var out []pairs.Pair
	for _, l := range labels {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		text, ok, err := s.clickText(l.DocID)
		if err != nil {
			return nil, err
		}
		if !ok || text == "" {
			src.Clicks.MissingDocs++
			continue
		}
		out = append(out, pairs.Pair{QueryID: l.Key, Query: l.Query, DocID: l.DocID, Text: text, Label: l.Label, Weight: l.Weight})
	}
	src.Clicks.Labels = len(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no click-derived label has a document text (%d documents missing from the index or corpus)", path, src.Clicks.MissingDocs)
	}
	return out, nil
}

// detect settles KindAuto by looking at the path.
func detect(path string, kind Kind) (Kind, error) {
	if kind != KindAuto {
		return kind, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return KindBEIR, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(line, &probe) == nil && probe["search_id"] != nil && probe["results"] != nil {
			return KindClicks, nil
		}
		break
	}
	return KindJudgments, nil
}

// queryPairs makes pairs that carry only queries, for RemoveLeaks.
func queryPairs(queries []string) []pairs.Pair {
	out := make([]pairs.Pair, len(queries))
	for i, q := range queries {
		out[i] = pairs.Pair{Query: q}
	}
	return out
}

// samplePairs keeps n pairs drawn by seed, in their order.
func samplePairs(ps []pairs.Pair, n int, seed uint64) []pairs.Pair {
	idx := rand.New(rand.NewPCG(seed, 0x5a3b)).Perm(len(ps))[:n]
	slices.Sort(idx)
	out := make([]pairs.Pair, n)
	for i, k := range idx {
		out[i] = ps[k]
	}
	return out
}
