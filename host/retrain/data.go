package retrain

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/clickmodel"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/finetune/negatives"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/finetune/trainset"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
)

// Folders of a run's folder, <models_dir>/<run id>.
const (
	dataDir  = "data"  // the prepared pairs and their report
	trainDir = "train" // the trainer's checkpoints
)

// window reads the searches logged in [since, until) and returns them with
// the window's counts and the number of distinct documents shown.
func (c *Controller) window(ctx context.Context, since, until time.Time) (registry.Window, []impression.Impression, int, error) {
	win := registry.Window{Since: since, Until: until}
	shown := map[string]bool{}
	var imps []impression.Impression
	err := c.log.Scan(ctx, since, func(e impression.Impression) error {
		if !e.Time.Before(until) {
			return nil
		}
		win.Searches++
		for _, r := range e.Results {
			win.Clicks += r.Clicks
			shown[r.DocID] = true
		}
		imps = append(imps, e)
		return nil
	})
	return win, imps, len(shown), err
}

// prepared is a run's training data.
type prepared struct {
	data *trainset.Result
	// heldOut are the click-derived held-out queries for the gate when no
	// judgments are configured; nil otherwise.
	heldOut *lifecycle.HeldOut
	// validation are the trainer's validation queries (judgments configured).
	validation []pairs.Pair
}

// prepare turns the window's searches into checked, split training pairs
// with hard negatives (trainset): click labels from the position-bias model,
// document texts and hard negatives from the open index, the judged held-out
// queries excluded, at most retrain.max_pairs pairs.
func (c *Controller) prepare(ctx context.Context, j *job, dir string, imps []impression.Impression, judged *lifecycle.HeldOut) (*prepared, error) {
	r := c.cfg.Retrain
	opt := trainset.Options{
		Impressions: imps, Docs: c.ix.DocText, Retriever: search.Stage{Index: c.ix},
		ValFraction: r.HoldoutFraction, Seed: r.Seed, MaxPairs: r.MaxPairs,
		Clicks:    trainset.ClickOptions{Mode: clickmodel.Mode(r.ClickLabels), MinDwellMS: r.MinDwellMS},
		Negatives: negatives.Options{Hard: r.HardNegatives, Depth: trainset.DefaultHardDepth},
	}
	if judged != nil {
		opt.Exclude = judged.QueryTexts()
	}
	data, err := trainset.Build(ctx, opt)
	if err != nil {
		return nil, err
	}
	if rep := data.Report; rep.ExcludedQueries > 0 {
		j.logf("removed %d training queries (%d pairs) that are among the judged held-out queries", rep.ExcludedQueries, rep.ExcludedPairs)
	}
	if n := data.Report.SampledFrom; n > 0 {
		j.logf("training on %d of %d pairs (retrain.max_pairs), drawn by seed %d", len(data.Train), n, r.Seed)
	}
	if err := data.WriteDir(filepath.Join(dir, dataDir)); err != nil {
		return nil, err
	}
	p := &prepared{data: data}
	if judged != nil {
		p.validation = pairs.LimitQueries(data.Validation, r.ValidationQueries, r.Seed)
	} else if p.heldOut, err = c.clickHeldOut(ctx, j.id, data.Validation); err != nil {
		return nil, fmt.Errorf("click-derived held-out queries: %w (configure retrain.judgments, or log more searches)", err)
	}
	return p, nil
}

// clickHeldOut makes the gate's held-out set from click-derived labels of
// queries kept out of training: BM25's top eval_depth reranked, judged by
// the click labels (graded 0-4, or 0/1 for ipw).
func (c *Controller) clickHeldOut(ctx context.Context, runID string, val []pairs.Pair) (*lifecycle.HeldOut, error) {
	qrels := dataset.Qrels{}
	var qs []dataset.Query
	for _, p := range val {
		id := pairs.QueryKey(p)
		if _, ok := qrels[id]; !ok {
			qrels[id] = map[string]int{}
			qs = append(qs, dataset.Query{ID: id, Text: p.Query})
		}
		qrels[id][p.DocID] = int(math.Round(p.Label))
	}
	r := c.cfg.Retrain
	pool, err := runner.Retrieve(ctx, qs, search.Stage{Index: c.ix}, r.EvalDepth, nil)
	if err != nil {
		return nil, err
	}
	src := fmt.Sprintf("click-derived labels of %d queries held out from training, BM25's top %d reranked", len(qs), r.EvalDepth)
	return lifecycle.NewHeldOut("clicks\x00"+runID, src, pool, qrels, r.EvalQueries, r.Seed)
}
