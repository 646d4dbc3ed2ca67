package train

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/trec"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

var (
	ndcg10 = metrics.Measure{Kind: metrics.NDCG, K: 10}
	mrr10  = metrics.Measure{Kind: metrics.MRR, K: 10}
)

// measure computes mean NDCG@10 and MRR@10 of a run over the validation
// queries (trec_eval's definitions; queries without candidates score 0).
func (v *valSet) measure(run trec.Run) (ndcg, mrr float64, err error) {
	pq, err := metrics.Evaluate(run, v.qrels, ndcg10, mrr10)
	if err != nil {
		return 0, 0, err
	}
	return metrics.Mean(pq[ndcg10.String()]), metrics.Mean(pq[mrr10.String()]), nil
}

// firstStage measures the candidates' own order: what reranking must beat.
func (v *valSet) firstStage() (ndcg, mrr float64, err error) {
	run := trec.Run{}
	for _, q := range v.queries {
		m := map[string]float64{}
		for r, d := range q.Candidates {
			if _, seen := m[v.docIDs[d]]; !seen {
				m[v.docIDs[d]] = -float64(r)
			}
		}
		run[q.QueryID] = m
	}
	return v.measure(run)
}

// evaluate reranks every validation query's candidates with the model in
// inference mode (no dropout, no autograd) and measures the ranking. A
// windowed document scores its best window, as the engine serves it.
func (t *trainer) evaluate(ctx context.Context) (ndcg, mrr float64, took time.Duration, err error) {
	start := time.Now()
	// The training thread is back in grad mode afterwards. (gotch's
	// GradSetEnabled returns garbage for the previous mode: it reads a C int
	// as a Go int, so the mode cannot be saved and restored.)
	if _, err := ts.GradSetEnabled(false); err != nil {
		return 0, 0, 0, err
	}
	defer ts.GradSetEnabled(true)
	v := t.val
	scores := make([]float64, len(v.pairs))
	pad := t.tok.PadID()
	for s := 0; s < len(v.order); s += t.cfg.EvalBatchSize {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		chunk := v.order[s:min(s+t.cfg.EvalBatchSize, len(v.order))]
		encs := make([]tokenize.Pair, len(chunk))
		for j, i := range chunk {
			encs[j] = v.pairs[i].enc
		}
		logits, err := t.model.Forward(bert.NewBatch(encs, pad), false)
		if err != nil {
			return 0, 0, 0, err
		}
		vals := make([]float32, len(chunk))
		err = logits.CopyData(vals, uint(len(chunk)))
		logits.Drop()
		if err != nil {
			return 0, 0, 0, err
		}
		for j, i := range chunk {
			scores[i] = float64(vals[j])
		}
	}
	run := trec.Run{}
	for _, q := range v.queries {
		run[q.QueryID] = map[string]float64{}
	}
	for i, p := range v.pairs {
		if math.IsNaN(scores[i]) {
			return 0, 0, 0, fmt.Errorf("validation: NaN score for query %q, document %q", v.queries[p.query].QueryID, p.doc)
		}
		m := run[v.queries[p.query].QueryID]
		if old, ok := m[p.doc]; !ok || scores[i] > old {
			m[p.doc] = scores[i]
		}
	}
	ndcg, mrr, err = v.measure(run)
	return ndcg, mrr, time.Since(start), err
}
