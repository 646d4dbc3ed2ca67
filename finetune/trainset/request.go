package trainset

import (
	"context"
	"encoding/json"
	"math"

	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/finetune/pairs"
	"github.com/rerankloop/rerank/plugin/contract"
)

// RequestOptions is the rest of a fine-tune request besides the training
// pairs.
type RequestOptions struct {
	Base, Out string
	Config    contract.TrainConfig
	// Source says where the data came from, for the model card.
	Source string
	// Validation are the validation pairs the trainer judges checkpoints by
	// (none: no validation). Each query's candidates are FirstStage's top
	// Depth, or without a first stage its judged documents.
	Validation []pairs.Pair
	FirstStage runner.FirstStage
	Depth      int
}

// Request is the plugin's fine-tune request: r's training pairs, o's
// validation queries judged by their labels, and r's report.
func (r *Result) Request(ctx context.Context, o RequestOptions) (contract.FinetuneRequest, error) {
	req := contract.FinetuneRequest{BaseModel: o.Base, OutDir: o.Out, Config: o.Config, DataSource: o.Source}
	var docs contract.DocTable
	for _, tp := range r.Train {
		req.Train = append(req.Train, contract.TrainPair{QueryID: tp.QueryID, Query: tp.Query, Doc: docs.Add(tp.DocID, tp.Text), Label: tp.Label, Weight: tp.Weight})
	}
	byID := map[string]int{}
	for _, vp := range o.Validation {
		id := pairs.QueryKey(vp)
		i, ok := byID[id]
		if !ok {
			q := contract.ValQuery{QueryID: id, Query: vp.Query, Judged: map[string]int{}}
			if o.FirstStage != nil {
				cands, err := o.FirstStage.Search(ctx, vp.Query, o.Depth)
				if err != nil {
					return req, err
				}
				for _, c := range cands {
					q.Candidates = append(q.Candidates, docs.Add(c.ID, c.Text))
					q.Scores = append(q.Scores, c.Score)
				}
			}
			i = len(req.Validation)
			byID[id] = i
			req.Validation = append(req.Validation, q)
		}
		req.Validation[i].Judged[vp.DocID] = int(math.Round(vp.Label))
		if o.FirstStage == nil {
			req.Validation[i].Candidates = append(req.Validation[i].Candidates, docs.Add(vp.DocID, vp.Text))
		}
	}
	req.Docs = docs.Docs
	rep, err := json.Marshal(r.Report)
	if err != nil {
		return req, err
	}
	req.DataReport = string(rep)
	return req, nil
}
