package retrain

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Files of a run's folder, <models_dir>/<run id>.
const (
	exportFile = "clicks.jsonl" // the click log's window
	corpusFile = "corpus.jsonl" // the documents shown in it, from the index
	dataDir    = "data"         // the prepared pairs and their report
	trainDir   = "train"        // the trainer's checkpoints
)

// exportWindow writes the searches logged in [since, until) to path and
// returns the window with its counts and the documents shown in it.
func (c *Controller) exportWindow(ctx context.Context, since, until time.Time, path string) (registry.Window, []string, error) {
	win := registry.Window{Since: since, Until: until}
	f, err := os.Create(path)
	if err != nil {
		return win, nil, err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	seen := map[string]bool{}
	var docs []string
	err = c.eachSearch(ctx, since, func(e clicklog.ExportedImpression) error {
		if !e.Time.Before(until) {
			return nil
		}
		win.Searches++
		for _, r := range e.Results {
			win.Clicks += r.Clicks
			if !seen[r.DocID] {
				seen[r.DocID] = true
				docs = append(docs, r.DocID)
			}
		}
		return enc.Encode(e)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	return win, docs, err
}

// eachSearch streams the click log's searches from since on.
func (c *Controller) eachSearch(ctx context.Context, since time.Time, fn func(clicklog.ExportedImpression) error) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.log.Export(ctx, since, pw)) }()
	err := clicklog.ReadExport(pr, fn)
	pr.CloseWithError(err) // unblocks the exporter if reading stopped early
	return err
}

// writeCorpus writes the documents shown in the window, as the index holds
// them now, as a BEIR corpus: click labels need their texts, and the
// training data are built from this file rather than from the index, which
// the serving host holds open. Documents deleted since are left out (the
// data report counts their labels as missing).
func writeCorpus(ix *search.Index, ids []string, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, id := range ids {
		d, err := ix.Get(id)
		if errors.Is(err, search.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := enc.Encode(map[string]string{"_id": d.ID, "title": d.Title, "text": d.Text}); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// prepared is a run's training data.
type prepared struct {
	data *trainset.Result
	// heldOut are the click-derived held-out queries for the gate when no
	// judgments are configured; nil otherwise.
	heldOut *heldOut
	// validation are the trainer's validation queries (judgments configured).
	validation []pairs.Pair
}

// prepare turns the exported window into checked, split training pairs with
// hard negatives: click labels from the position-bias model (trainset), the
// judged held-out queries removed, hard negatives mined from the open index,
// at most retrain.max_pairs pairs.
func (c *Controller) prepare(ctx context.Context, j *job, dir string, judged *heldOut) (*prepared, error) {
	r := c.cfg.Retrain
	data, err := trainset.Build(ctx, trainset.Options{
		Train: filepath.Join(dir, exportFile), Kind: trainset.KindClicks, Corpus: filepath.Join(dir, corpusFile),
		ValFraction: r.HoldoutFraction, Seed: r.Seed,
		Clicks: trainset.ClickOptions{Mode: clickmodel.Mode(r.ClickLabels), MinDwellMS: r.MinDwellMS},
	})
	if err != nil {
		return nil, err
	}
	p := &prepared{data: data}
	if judged != nil {
		var held []pairs.Pair
		for _, q := range judged.pool.Queries {
			held = append(held, pairs.Pair{Query: q.Text})
		}
		var nq, np int
		data.Train, nq, np = pairs.RemoveLeaks(data.Train, held)
		j.logf("removed %d training queries (%d pairs) that are among the judged held-out queries", nq, np)
		data.Validation, _, _ = pairs.RemoveLeaks(data.Validation, held)
		p.validation = LimitQueries(data.Validation, r.ValidationQueries, r.Seed)
	}
	if r.HardNegatives > 0 && len(data.Train) > 0 {
		negs, rep, err := negatives.Mine(ctx, data.Train, c.ix, nil, negatives.Options{Hard: r.HardNegatives, Depth: trainset.DefaultHardDepth, Seed: r.Seed})
		if err != nil {
			return nil, err
		}
		data.Train = append(data.Train, negs...)
		data.Report.Negatives = rep
	}
	if r.MaxPairs > 0 && len(data.Train) > r.MaxPairs {
		j.logf("training on %d of %d pairs (retrain.max_pairs), drawn by seed %d", r.MaxPairs, len(data.Train), r.Seed)
		data.Train = samplePairs(data.Train, r.MaxPairs, r.Seed)
	}
	if len(data.Train) == 0 {
		return nil, errors.New("no training pairs left")
	}
	rep := data.Report
	rep.Leakage = pairs.CheckLeakage(data.Train, data.Validation)
	if !rep.Leakage.OK {
		return nil, errors.New(rep.Leakage.String())
	}
	rep.TrainPairs, rep.ValPairs = len(data.Train), len(data.Validation)
	rep.TrainLabels = map[string]int{}
	for _, p := range data.Train {
		rep.TrainLabels[strconv.FormatFloat(p.Label, 'g', -1, 64)]++
	}
	if err := data.WriteDir(filepath.Join(dir, dataDir)); err != nil {
		return nil, err
	}
	if judged == nil {
		if p.heldOut, err = c.clickHeldOut(ctx, j.id, data.Validation); err != nil {
			return nil, fmt.Errorf("click-derived held-out queries: %w (configure retrain.judgments, or log more searches)", err)
		}
	}
	return p, nil
}

// clickHeldOut makes the gate's held-out set from click-derived labels of
// queries kept out of training: BM25's top eval_depth reranked, judged by
// the click labels (graded 0-4, or 0/1 for ipw).
func (c *Controller) clickHeldOut(ctx context.Context, runID string, val []pairs.Pair) (*heldOut, error) {
	qrels := dataset.Qrels{}
	var qs []dataset.Query
	for _, p := range val {
		id := queryID(p)
		if _, ok := qrels[id]; !ok {
			qrels[id] = map[string]int{}
			qs = append(qs, dataset.Query{ID: id, Text: p.Query})
		}
		qrels[id][p.DocID] = int(math.Round(p.Label))
	}
	r := c.cfg.Retrain
	pool, err := runner.Retrieve(ctx, qs, BM25Stage{c.ix}, r.EvalDepth, nil)
	if err != nil {
		return nil, err
	}
	src := fmt.Sprintf("click-derived labels of %d queries held out from training, BM25's top %d reranked", len(qs), r.EvalDepth)
	return newHeldOut("clicks\x00"+runID, src, pool, qrels, r.EvalQueries, r.Seed)
}

func queryID(p pairs.Pair) string {
	if p.QueryID != "" {
		return p.QueryID
	}
	return pairs.NormalizeQuery(p.Query)
}

// LimitQueries keeps the pairs of at most n queries (0: all), drawn by seed.
func LimitQueries(ps []pairs.Pair, n int, seed uint64) []pairs.Pair {
	var ids []string
	seen := map[string]bool{}
	for _, p := range ps {
		if id := queryID(p); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if n <= 0 || n >= len(ids) {
		return ps
	}
	keep := map[string]bool{}
	for _, i := range rand.New(rand.NewPCG(seed, 0xe7a1)).Perm(len(ids))[:n] {
		keep[ids[i]] = true
	}
	var out []pairs.Pair
	for _, p := range ps {
		if keep[queryID(p)] {
			out = append(out, p)
		}
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

// Request is the plugin's fine-tune request for prepared pairs: train, and
// the validation queries of val with BM25's top depth from ix as their
// candidates (without an index, their judged documents), judged by val's
// labels. report is the data preparation's report.
func Request(ctx context.Context, ix *search.Index, train, val []pairs.Pair, depth int, base, out string, cfg contract.TrainConfig, source string, report any) (contract.FinetuneRequest, error) {
	req := contract.FinetuneRequest{BaseModel: base, OutDir: out, Config: cfg, DataSource: source}
	var docs contract.DocTable
	for _, tp := range train {
		req.Train = append(req.Train, contract.TrainPair{QueryID: tp.QueryID, Query: tp.Query, Doc: docs.Add(tp.DocID, tp.Text), Label: tp.Label, Weight: tp.Weight})
	}
	byID := map[string]int{}
	for _, vp := range val {
		id := queryID(vp)
		i, ok := byID[id]
		if !ok {
			q := contract.ValQuery{QueryID: id, Query: vp.Query, Judged: map[string]int{}}
			if ix != nil {
				hits, _, err := ix.Search(ctx, vp.Query, depth, 0)
				if err != nil {
					return req, err
				}
				for _, h := range hits {
					q.Candidates = append(q.Candidates, docs.Add(h.ID, dataset.DocText(h.Title, h.Text)))
					q.Scores = append(q.Scores, h.Score)
				}
			}
			i = len(req.Validation)
			byID[id] = i
			req.Validation = append(req.Validation, q)
		}
		req.Validation[i].Judged[vp.DocID] = int(math.Round(vp.Label))
		if ix == nil {
			req.Validation[i].Candidates = append(req.Validation[i].Candidates, docs.Add(vp.DocID, vp.Text))
		}
	}
	req.Docs = docs.Docs
	rep, err := json.Marshal(report)
	if err != nil {
		return req, err
	}
	req.DataReport = string(rep)
	return req, nil
}
