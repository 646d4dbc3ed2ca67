package search

import (
	"context"
	"errors"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/runner"
)

// Stage is the index as a first stage (runner.FirstStage) for evaluation and
// hard negatives: BM25's top k, each with the text a model reads
// (dataset.DocText).
type Stage struct{ Index *Index }

// Search returns BM25's top k for query.
func (s Stage) Search(ctx context.Context, query string, k int) ([]runner.Candidate, error) {
	hits, _, err := s.Index.Search(ctx, query, k, 0)
	if err != nil {
		return nil, err
	}
	out := make([]runner.Candidate, len(hits))
	for i, h := range hits {
		out[i] = runner.Candidate{ID: h.ID, Text: dataset.DocText(h.Title, h.Text), Score: h.Score}
	}
	return out, nil
}

// DocText is the text a model reads of document id; ok is false when the
// index does not hold it (deleted since it was shown, say).
func (ix *Index) DocText(id string) (text string, ok bool, err error) {
	d, err := ix.Get(id)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return dataset.DocText(d.Title, d.Text), true, nil
}
