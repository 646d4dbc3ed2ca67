package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/runner"
)

// fuseChoice is --fuse parsed.
type fuseChoice struct {
	none, auto, fromFile bool
	fixed                fusion.Params
	method               string
	save                 bool
}

func parseFuse(f evalFlags) (fuseChoice, error) {
	c := fuseChoice{method: f.fuseMethod, save: f.saveFusion}
	if f.fuseMethod != fusion.MinMax && f.fuseMethod != fusion.ZScore && f.fuseMethod != fusion.RRF {
		return c, fmt.Errorf("--fuse-method %q: want %s, %s or %s", f.fuseMethod, fusion.MinMax, fusion.ZScore, fusion.RRF)
	}
	switch f.fuse {
	case "":
		c.fromFile = true
	case "none":
		c.none = true
	case "auto":
		c.auto = true
	default:
		a, err := strconv.ParseFloat(f.fuse, 64)
		c.fixed = fusion.Params{Method: f.fuseMethod, BM25Weight: a, FittedOn: "given (--fuse)"}
		if err == nil {
			err = c.fixed.Validate()
		}
		if err != nil {
			return c, fmt.Errorf("--fuse %q: want none, auto or a weight in [0, 1]: %v", f.fuse, err)
		}
	}
	if c.save && !c.auto {
		return c, fmt.Errorf("--save-fusion keeps a fitted fusion: it needs --fuse auto")
	}
	return c, nil
}

// params returns the fusion to apply to the model at path and whether there
// is one: the given weight, one fitted now on fit (and saved if asked), or
// the model's own fusion.json.
func (c fuseChoice) params(ctx context.Context, path string, scorer runner.Scorer, fit *fitData, progress io.Writer) (fusion.Params, bool, error) {
	switch {
	case c.none:
		return fusion.Params{}, false, nil
	case c.fromFile:
		p, found, err := fusion.Read(path)
		return p, found, err
	case !c.auto:
		return c.fixed, true, nil
	}
	p, grid, err := fitFusion(ctx, fit, scorer, c.method, progress)
	if err != nil {
		return fusion.Params{}, false, err
	}
	fmt.Fprintf(progress, "fusion fitted on %s: a = %.2f (NDCG@10 %.4f; a = 0 %.4f, a = 1 %.4f)\n",
		fit.name, p.BM25Weight, p.NDCG10, grid[0].NDCG10, grid[len(grid)-1].NDCG10)
	if c.save {
		if err := fusion.Write(path, p); err != nil {
			return fusion.Params{}, false, err
		}
		fmt.Fprintf(progress, "wrote %s/%s\n", path, fusion.File)
	}
	return p, true, nil
}

// fitFusion scores fit's candidates with scorer and fits the fusion weight
// on them; the grid's first point is the model alone (a = 0), its last BM25
// alone (a = 1).
func fitFusion(ctx context.Context, fit *fitData, scorer runner.Scorer, method string, progress io.Writer) (fusion.Params, []fusion.GridPoint, error) {
	run, err := runner.Rerank(ctx, fit.pool, scorer, "fit "+fit.name, progress)
	if err != nil {
		return fusion.Params{}, nil, err
	}
	var qs []fusion.Query
	for _, q := range fit.pool.Queries {
		cands := fit.pool.Candidates[q.ID]
		if len(cands) == 0 || len(fit.qrels[q.ID]) == 0 {
			continue
		}
		fq := fusion.Query{ID: q.ID, Judged: fit.qrels[q.ID]}
		for _, cand := range cands {
			fq.DocIDs = append(fq.DocIDs, cand.ID)
			fq.First = append(fq.First, cand.Score)
			fq.Model = append(fq.Model, run[q.ID][cand.ID])
		}
		qs = append(qs, fq)
	}
	p, grid, err := fusion.Fit(method, qs, nil)
	if err != nil {
		return p, nil, fmt.Errorf("fitting the fusion on %s: %w", fit.name, err)
	}
	p.FittedOn = fit.name
	return p, grid, nil
}

// sampleQueries keeps n queries (all when n <= 0 or n >= len), a seeded
// sample in their original order.
func sampleQueries(qs []dataset.Query, n int, seed uint64) []dataset.Query {
	if n <= 0 || n >= len(qs) {
		return qs
	}
	keep := rand.New(rand.NewPCG(seed, 0x5eed)).Perm(len(qs))[:n]
	marked := make([]bool, len(qs))
	for _, i := range keep {
		marked[i] = true
	}
	var out []dataset.Query
	for i, q := range qs {
		if marked[i] {
			out = append(out, q)
		}
	}
	return out
}
