package pluginclient

import (
	"context"
	"fmt"

	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Scorer is one loaded version of the plugin (RerankRequest.Model) as an
// evaluation scorer (runner.Scorer), in requests of at most scoreBatch
// documents.
type Scorer struct {
	Reranker contract.Reranker
	Model    string
}

const scoreBatch = 256

// Score returns one score per candidate, in order.
func (s Scorer) Score(ctx context.Context, query string, docs []runner.Candidate) ([]float32, error) {
	out := make([]float32, 0, len(docs))
	for start := 0; start < len(docs); start += scoreBatch {
		req := contract.RerankRequest{Query: query, Model: s.Model}
		for _, d := range docs[start:min(len(docs), start+scoreBatch)] {
			req.Documents = append(req.Documents, contract.Document{ID: d.ID, Text: d.Text})
		}
		resp, err := s.Reranker.Rerank(ctx, req)
		if err != nil {
			return nil, err
		}
		if s.Model != "" && resp.ModelVersion != s.Model {
			return nil, fmt.Errorf("asked version %s, scored by %s", s.Model, resp.ModelVersion)
		}
		out = append(out, resp.Scores...)
	}
	return out, nil
}
