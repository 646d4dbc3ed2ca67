// Package trainset turns any training source (a judgments file, a BEIR
// folder or the host's click-log export) into checked train and validation
// pairs with hard and random negatives, and a report of every step. It is
// what `rerank finetune` and `rerank retrain` run before sending pairs to the
// plugin.
package trainset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/host/search"
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
	Train string
	Kind  Kind
	Split string // BEIR split to train on (default "train")

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

	// Index is a BM25 index folder (`rerank index`): hard negatives come from
	// it, and click-log documents get their text from it.
	Index string
	// Corpus is a corpus JSONL: random negatives come from it, and click-log
	// documents get their text from it. A BEIR source brings its own.
	Corpus string

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
	if opt.Train == "" {
		return nil, errors.New("training data: no source given")
	}
	if opt.Split == "" {
		opt.Split = DefaultSplit
	}
	if opt.ValSplit == "" {
		opt.ValSplit = DefaultValSplit
	}
	env := &sources{opt: opt}
	defer env.close()

	rep := &Report{}
	train, err := env.load(ctx, opt.Train, opt.Kind, opt.Split, &rep.Train)
	if err != nil {
		return nil, err
	}
	checkOpt := pairs.CheckOptions{Scale: opt.Scale, Conflicts: opt.Conflicts, MinPairs: opt.MinPairs}
	if checkOpt.Scale == pairs.ScaleAuto {
		checkOpt.Scale = rep.Train.scale
	}
	if train, rep.Checks, err = pairs.Check(train, checkOpt); err != nil {
		return nil, fmt.Errorf("training data %s: %w", opt.Train, err)
	}

	var val []pairs.Pair
	if opt.Val == "" {
		if train, val, rep.Split, err = pairs.Split(train, opt.ValFraction, opt.Seed); err != nil {
			return nil, fmt.Errorf("training data %s: %w", opt.Train, err)
		}
	} else {
		rep.Val = &Source{}
		if val, err = env.load(ctx, opt.Val, opt.ValKind, opt.ValSplit, rep.Val); err != nil {
			return nil, err
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
		var retriever negatives.Retriever
		if n.Hard > 0 {
			idx, err := env.index()
			if err != nil {
				return nil, fmt.Errorf("hard negatives: %w", err)
			}
			retriever = idx
		}
		var docs []dataset.Doc
		if n.Random > 0 {
			if docs, err = env.negativeCorpus(); err != nil {
				return nil, err
			}
		}
		var negs []pairs.Pair
		if negs, rep.Negatives, err = negatives.Mine(ctx, train, retriever, docs, n); err != nil {
			return nil, err
		}
		train = append(train, negs...)
	}

	// The leakage check runs again on exactly what will be trained on.
	rep.Leakage = pairs.CheckLeakage(train, val)
	if !rep.Leakage.OK {
		return nil, errors.New(rep.Leakage.String())
	}
	rep.finish(train, val)
	return &Result{Train: train, Validation: val, Report: rep}, nil
}

// sources opens the index and reads each corpus once, when first needed.
type sources struct {
	opt     Options
	idx     *search.Index
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

func (s *sources) close() {
	if s.idx != nil {
		s.idx.Close()
	}
}

func (s *sources) index() (*search.Index, error) {
	if s.idx != nil {
		return s.idx, nil
	}
	if s.opt.Index == "" {
		return nil, errors.New("no BM25 index given")
	}
	idx, err := search.Open(s.opt.Index)
	if err != nil {
		return nil, err
	}
	s.idx = idx
	return idx, nil
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

// negativeCorpus is where random negatives come from.
func (s *sources) negativeCorpus() ([]dataset.Doc, error) {
	path := s.opt.Corpus
	if path == "" {
		path = s.beirCorpus
	}
	if path == "" {
		return nil, errors.New("random negatives need a corpus (give a corpus JSONL)")
	}
	c, err := s.corpus(path)
	if err != nil {
		return nil, err
	}
	return c.docs, nil
}

// clickText looks up a logged document: in the corpus when one is given,
// else in the index.
func (s *sources) clickText(id string) (string, bool, error) {
	if s.opt.Corpus != "" {
		c, err := s.corpus(s.opt.Corpus)
		if err != nil {
			return "", false, err
		}
		t, ok := c.text(id)
		return t, ok, nil
	}
	idx, err := s.index()
	if err != nil {
		return "", false, fmt.Errorf("click logs name documents by id, so their text comes from the BM25 index or a corpus: %w", err)
	}
	d, err := idx.Get(id)
	if errors.Is(err, search.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return dataset.DocText(d.Title, d.Text), true, nil
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
		return s.loadClicks(ctx, path, src)
	}
	return nil, fmt.Errorf("training source kind %q: want judgments, beir or clicks", kind)
}

func (s *sources) loadClicks(ctx context.Context, path string, src *Source) ([]pairs.Pair, error) {
	co := s.opt.Clicks
	mode, err := clickmodel.ParseMode(string(co.Mode))
	if err != nil {
		return nil, err
	}
	imps, err := clickmodel.ReadExport(path, clickmodel.ExportOptions{KeyBy: clickmodel.KeyQuery, MinDwellMS: co.MinDwellMS})
	if err != nil {
		return nil, err
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
