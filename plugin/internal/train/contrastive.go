package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/trec"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// Contrastive training of a bi-encoder, as sentence-transformers'
// MultipleNegativesRankingLoss: each query is scored against its positive,
// the other queries' positives in the batch and its mined hard negatives.
const (
	// similarityScale multiplies the cosine before the softmax (MNRL's 20).
	similarityScale = 20
	// hardNegatives is how many of a query's non-relevant pairs (the first
	// stage's hard negatives) join each positive.
	hardNegatives = 1
	// minFitQueries: with fewer judged validation queries the fusion weight
	// is not refitted (one of 21 weights picked on a handful of queries is
	// mostly noise); the base model's weight is kept, if it has one.
	minFitQueries = 30
)

// encodeQueryText encodes a bi-encoder query; one without any token is an error.
func encodeQueryText(tok *tokenize.Encoder, query string, textLen int) (tokenize.Pair, error) {
	p, err := tok.EncodeText(query, textLen)
	if err == nil && len(p.IDs) <= 2 {
		err = tokenize.ErrEmptyQuery
	}
	return p, err
}

// planContrastive fixes every epoch's batches from the seed. A unit is one
// positive pair (label above 0) with up to hardNegatives of its query's
// non-relevant pairs; a batch holds BatchSize units of distinct queries, so
// no query's positive is ever another's in-batch negative for the same query.
func planContrastive(ex []example, c contract.TrainConfig) [][]step {
	var groups [][]int
	for i, e := range ex {
		for len(groups) <= e.group {
			groups = append(groups, nil)
		}
		groups[e.group] = append(groups[e.group], i)
	}
	epochs := make([][]step, c.Epochs)
	for e := range epochs {
		rng := rand.New(rand.NewPCG(c.Seed, uint64(e)+1))
		var units [][]int
		for _, g := range groups {
			var pos, neg []int
			for _, i := range g {
				if ex[i].target > 0 {
					pos = append(pos, i)
				} else {
					neg = append(neg, i)
				}
			}
			for _, p := range pos {
				u := []int{p}
				for _, k := range rng.Perm(len(neg))[:min(hardNegatives, len(neg))] {
					u = append(u, neg[k])
				}
				units = append(units, u)
			}
		}
		rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
		// Greedy packing; a unit whose query is already in the batch waits
		// for the next one.
		for len(units) > 0 {
			var cur step
			inBatch := map[int]bool{}
			var wait [][]int
			for _, u := range units {
				if len(cur) < c.BatchSize && !inBatch[ex[u[0]].group] {
					cur = append(cur, u)
					inBatch[ex[u[0]].group] = true
				} else {
					wait = append(wait, u)
				}
			}
			epochs[e] = append(epochs[e], cur)
			units = wait
		}
	}
	return epochs
}

// contrastiveLoss embeds the batch's queries (one per unit) and documents
// (every unit's positive and hard negatives) with dropout, and returns
// -sum_u w_u log softmax_u(scale * sim(q_u, D))[positive_u] / sum_u w_u,
// w_u the positive's label/LabelMax times its pair weight.
func (t *trainer) contrastiveLoss(s *bert.Scope, st step) *ts.Tensor {
	sentence := t.model.Cfg.Sentence
	pad := t.tok.PadID()
	var queries, docs []tokenize.Pair
	var positives []int
	var weights []float32
	for _, u := range st {
		queries = append(queries, t.ex[u[0]].query)
		positives = append(positives, len(docs))
		w := t.ex[u[0]].weight * t.ex[u[0]].target
		weights = append(weights, w)
		for _, i := range u {
			docs = append(docs, t.ex[i].enc)
		}
	}
	U, N := int64(len(queries)), int64(len(docs))
	q := s.Keep(t.model.Embed(bert.NewBatch(queries, pad), sentence, true))
	d := s.Keep(t.model.Embed(bert.NewBatch(docs, pad), sentence, true))
	if sentence.Similarity != checkpoint.SimilarityDot && !sentence.Normalize { // cosine of rows not unit yet
		q, d = bert.UnitRows(s, q), bert.UnitRows(s, d)
	}
	sim := s.Keep(q.Matmul(s.Keep(d.Transpose(0, 1, false)), false)) // [U, N]
	if sentence.Similarity != checkpoint.SimilarityDot {
		sim = s.Keep(sim.MulScalar(ts.FloatScalar(similarityScale), false))
	}
	target := make([]float32, U*N)
	var total float32
	for _, w := range weights {
		total += w
	}
	for u, p := range positives {
		target[int64(u)*N+int64(p)] = weights[u] / total
	}
	x := s.Keep(sim.LogSoftmax(1, gotch.Float, false))
	x = s.Keep(x.Mul(onDevice(s, t.device, target, []int64{U, N}), false))
	x = s.Keep(x.Sum(gotch.Float, false))
	return s.Keep(x.MulScalar(ts.FloatScalar(-1), false))
}

// encodeValTexts encodes a bi-encoder's validation queries and their
// candidates apart, each distinct document once.
func encodeValTexts(tok *tokenize.Encoder, req contract.FinetuneRequest, textLen int) (*valSet, error) {
	v, err := newValSet(req)
	if err != nil {
		return nil, err
	}
	v.queryTexts = make([]tokenize.Pair, len(req.Validation))
	v.docTexts = make([]tokenize.Pair, len(req.Docs))
	used := make([]bool, len(req.Docs))
	for qi, q := range req.Validation {
		if v.queryTexts[qi], err = encodeQueryText(tok, q.Query, textLen); err != nil {
			return nil, fmt.Errorf("%w: validation query %q: %v", contract.ErrInvalidRequest, q.QueryID, err)
		}
		if q.Scores != nil && len(q.Scores) != len(q.Candidates) {
			return nil, fmt.Errorf("%w: validation query %q has %d first-stage scores for %d candidates", contract.ErrInvalidRequest, q.QueryID, len(q.Scores), len(q.Candidates))
		}
		for _, d := range q.Candidates {
			used[d] = true
		}
	}
	err = parallel(len(req.Docs), func(i int) (err error) {
		if used[i] {
			if v.docTexts[i], err = tok.EncodeText(req.Docs[i].Text, textLen); err != nil {
				return fmt.Errorf("%w: validation document %q: %v", contract.ErrInvalidRequest, req.Docs[i].ID, err)
			}
		}
		return nil
	})
	for i, u := range used {
		if u {
			v.docOrder = append(v.docOrder, i)
		}
	}
	return v, err
}

// evaluateBi embeds the validation queries and candidates, scores each
// candidate by its similarity to the query and measures the ranking fused
// with the first stage, its weight fitted on these queries (the fusion the
// checkpoint is saved with); without first-stage scores, the model alone.
func (t *trainer) evaluateBi(ctx context.Context) (ndcg, mrr float64, took time.Duration, err error) {
	start := time.Now()
	if _, err := ts.GradSetEnabled(false); err != nil {
		return 0, 0, 0, err
	}
	defer ts.GradSetEnabled(true)
	v := t.val
	queries, err := t.embedAll(ctx, v.queryTexts, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	docs, err := t.embedAll(ctx, v.docTexts, v.docOrder)
	if err != nil {
		return 0, 0, 0, err
	}
	fused := true
	var fq []fusion.Query
	for qi, q := range v.queries {
		f := fusion.Query{ID: q.QueryID, Judged: q.Judged, First: q.Scores}
		for _, d := range q.Candidates {
			f.DocIDs = append(f.DocIDs, v.docIDs[d])
			f.Model = append(f.Model, float64(bert.Similarity(t.model.Cfg.Sentence.Similarity, queries[qi], docs[d])))
		}
		fused = fused && q.Scores != nil
		fq = append(fq, f)
	}
	p := fusion.Params{Method: fusion.MinMax} // a = 0: the model alone
	if fused {
		if p, err = fitFusion(withJudgments(fq), t.baseFusion); err != nil {
			return 0, 0, 0, err
		}
		t.fusion = &p
	}
	run := trec.Run{}
	for _, q := range fq {
		first := q.First
		if first == nil {
			first = make([]float64, len(q.Model))
		}
		m := map[string]float64{}
		for i, s := range p.Fuse(first, q.Model) {
			m[q.DocIDs[i]] = s
		}
		run[q.ID] = m
	}
	ndcg, mrr, err = v.measure(run)
	if fused {
		t.log("validation fused with the first stage: %s, fitted on %s (model alone %.4f)", p, p.FittedOn, t.aloneNDCG(fq))
	}
	return ndcg, mrr, time.Since(start), err
}

// fitFusion fits the fusion weight on the judged validation queries. With a
// base fused by min-max it moves from the base's weight only as far as the
// queries can tell (fusion.FitToward), and with fewer than minFitQueries it
// keeps the base's fusion.
func fitFusion(judged []fusion.Query, base *fusion.Params) (fusion.Params, error) {
	switch {
	case base != nil && len(judged) < minFitQueries:
		return *base, nil
	case base != nil && (base.Method == fusion.MinMax || base.Method == ""):
		p, _, err := fusion.FitToward(fusion.MinMax, judged, nil, base.BM25Weight)
		p.FittedOn = fmt.Sprintf("validation (%d queries), the weight nearest the base's %.2f within a standard error of the best", len(judged), base.BM25Weight)
		return p, err
	}
	p, _, err := fusion.Fit(fusion.MinMax, judged, nil)
	p.FittedOn = fmt.Sprintf("validation (%d queries)", len(judged))
	return p, err
}

// withJudgments keeps the queries fusion.Fit can score (some judged document).
func withJudgments(qs []fusion.Query) []fusion.Query {
	var out []fusion.Query
	for _, q := range qs {
		if len(q.Judged) > 0 && len(q.DocIDs) > 0 {
			out = append(out, q)
		}
	}
	return out
}

// aloneNDCG is the validation NDCG@10 of the model's own order.
func (t *trainer) aloneNDCG(qs []fusion.Query) float64 {
	per, err := fusion.Evaluate(fusion.Params{Method: fusion.MinMax}, withJudgments(qs))
	if err != nil {
		return math.NaN()
	}
	return metrics.Mean(per)
}

// embedAll embeds texts[i] for each i of which (nil: all), in batches of
// EvalBatchSize, longest first; the result is indexed like texts.
func (t *trainer) embedAll(ctx context.Context, texts []tokenize.Pair, which []int) ([][]float32, error) {
	if which == nil {
		which = make([]int, len(texts))
		for i := range which {
			which[i] = i
		}
	}
	order := append([]int(nil), which...)
	sortByLength(order, func(i int) int { return len(texts[i].IDs) })
	out := make([][]float32, len(texts))
	dim := t.model.Cfg.Sentence.Dim
	for s := 0; s < len(order); s += t.cfg.EvalBatchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chunk := order[s:min(s+t.cfg.EvalBatchSize, len(order))]
		encs := make([]tokenize.Pair, len(chunk))
		for j, i := range chunk {
			encs[j] = texts[i]
		}
		emb, err := t.model.Embed(bert.NewBatch(encs, t.tok.PadID()), t.model.Cfg.Sentence, false)
		if err != nil {
			return nil, err
		}
		vals := make([]float32, len(chunk)*dim)
		err = emb.CopyData(vals, uint(len(vals)))
		emb.Drop()
		if err != nil {
			return nil, err
		}
		for j, i := range chunk {
			out[i] = vals[j*dim : (j+1)*dim : (j+1)*dim]
		}
	}
	return out, nil
}
