package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// refitFusion fits the kept checkpoint's fusion with BM25 again on the
// validation queries, now over BM25's top depth: a min-max or z-score
// weight depends on how deep the fused list is, and validation may have run
// shallower (--eval-depth) to save time. It does nothing for a checkpoint
// without a fusion.json (a cross-encoder) or without judged validation
// queries.
func refitFusion(ctx context.Context, client *pluginclient.Client, ckpt string, val []contract.ValQuery, indexDir string, depth int, stdout io.Writer) error {
	old, found, err := fusion.Read(ckpt)
	if err != nil || !found {
		return err
	}
	var queries []dataset.Query
	qrels := dataset.Qrels{}
	for _, q := range val {
		if len(q.Judged) > 0 {
			queries = append(queries, dataset.Query{ID: q.QueryID, Text: q.Query})
			qrels[q.QueryID] = q.Judged
		}
	}
	if len(queries) == 0 {
		return nil
	}
	ix, err := search.Open(indexDir)
	if err != nil {
		return err
	}
	defer ix.Close()
	pool, err := runner.Retrieve(ctx, queries, search.Stage{Index: ix}, depth, nil)
	if err != nil {
		return err
	}
	const version = "kept"
	if _, err := client.Load(ctx, contract.LoadRequest{Path: ckpt, Version: version}); err != nil {
		return fmt.Errorf("loading %s to fit its fusion: %w", ckpt, err)
	}
	fit := &fitData{pool: pool, qrels: qrels, name: fmt.Sprintf("validation (%d queries), BM25's top %d", len(queries), depth)}
	p, grid, err := fitFusion(ctx, fit, pluginclient.Scorer{Reranker: client, Model: version}, old.Method, nil)
	if err != nil {
		return err
	}
	if err := fusion.Write(ckpt, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fusion re-fitted on %s: a = %.2f (was %.2f, fitted on %s); NDCG@10 fused %.4f, model alone %.4f, BM25 %.4f\n",
		fit.name, p.BM25Weight, old.BM25Weight, old.FittedOn, p.NDCG10, grid[0].NDCG10, grid[len(grid)-1].NDCG10)
	return nil
}
