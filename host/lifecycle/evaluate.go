package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/evalharness/metrics"
	"github.com/rerankloop/rerank/evalharness/runner"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// gateMeasure is what the gate compares.
var gateMeasure = metrics.Measure{Kind: metrics.NDCG, K: 10}

// HeldOut is a set of held-out queries: each query's candidates (BM25's top
// retrain.eval_depth, or a judgments file's rows) and their labels.
type HeldOut struct {
	// Key names the set in the score cache; Source describes it for people.
	Key, Source string
	pool        *runner.Pool
	qrels       dataset.Qrels
	bm25        map[string]float64 // per-query NDCG@10 of the first stage alone
}

// Queries is the number of held-out queries.
func (h *HeldOut) Queries() int { return len(h.pool.Queries) }

// QueryTexts are the held-out queries' texts, which training must not see.
func (h *HeldOut) QueryTexts() []string {
	out := make([]string, len(h.pool.Queries))
	for i, q := range h.pool.Queries {
		out[i] = q.Text
	}
	return out
}

// NewHeldOut keeps the queries with at least one relevant label (others
// cannot tell systems apart), draws at most limit of them by seed, and
// scores BM25 alone.
func NewHeldOut(key, source string, pool *runner.Pool, qrels dataset.Qrels, limit int, seed uint64) (*HeldOut, error) {
	var qs []dataset.Query
	for _, q := range pool.Queries {
		for _, g := range qrels[q.ID] {
			if g > 0 {
				qs = append(qs, q)
				break
			}
		}
	}
	if limit > 0 && limit < len(qs) {
		rng := rand.New(rand.NewPCG(seed, 0xe7a1))
		keep := rng.Perm(len(qs))[:limit]
		slices.Sort(keep)
		picked := make([]dataset.Query, len(keep))
		for i, k := range keep {
			picked[i] = qs[k]
		}
		qs = picked
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("held-out queries (%s): none has a relevant label", source)
	}
	pool.Queries = qs
	h := &HeldOut{Key: key, Source: source, pool: pool, qrels: qrels}
	var err error
	h.bm25, err = h.score(pool.Run())
	return h, err
}

func (h *HeldOut) score(run map[string]map[string]float64) (map[string]float64, error) {
	pq, err := metrics.Evaluate(run, h.qrels, gateMeasure)
	if err != nil {
		return nil, err
	}
	return pq[gateMeasure.String()], nil
}

// judgedHeldOut reads retrain.judgments: a BEIR folder's split reranks BM25's
// top eval_depth from the host's index, a judgments file its own rows.
func (m *Manager) judgedHeldOut(ctx context.Context) (*HeldOut, error) {
	r := m.cfg.Retrain
	st, err := os.Stat(r.Judgments)
	if err != nil {
		return nil, fmt.Errorf("retrain.judgments: %w", err)
	}
	var (
		pool   *runner.Pool
		qrels  dataset.Qrels
		source string
	)
	if st.IsDir() {
		b, err := dataset.OpenBEIR(r.Judgments)
		if err != nil {
			return nil, fmt.Errorf("retrain.judgments: %w", err)
		}
		qs, qr, err := b.SplitQueries(r.JudgmentsSplit)
		if err != nil {
			return nil, fmt.Errorf("retrain.judgments: %w", err)
		}
		if pool, err = runner.Retrieve(ctx, qs, search.Stage{Index: m.ix}, r.EvalDepth, nil); err != nil {
			return nil, err
		}
		qrels, source = qr, fmt.Sprintf("judged queries of %s (split %s), BM25's top %d reranked", r.Judgments, r.JudgmentsSplit, r.EvalDepth)
	} else {
		js, err := dataset.ReadJudgments(r.Judgments)
		if err != nil {
			return nil, fmt.Errorf("retrain.judgments: %w", err)
		}
		pool, qrels = runner.FromJudgments(js)
		source = "judged queries of " + r.Judgments + " (its rows as candidates)"
	}
	key := fmt.Sprintf("judged\x00%s\x00%s\x00%d\x00%d", r.Judgments, r.JudgmentsSplit, r.EvalDepth, r.EvalQueries)
	return NewHeldOut(key, source, pool, qrels, r.EvalQueries, r.Seed)
}

// Evaluation is one version's NDCG@10 on the held-out queries, beside BM25's.
type Evaluation struct {
	Version string  `json:"version"`
	Source  string  `json:"source"`
	Queries int     `json:"queries"`
	NDCG10  float64 `json:"ndcg@10"`
	BM25    float64 `json:"bm25_ndcg@10"`
}

// Evaluate measures version on the configured judged held-out queries
// (retrain.judgments); the gate reuses the scores of the same checkpoint.
func (m *Manager) Evaluate(ctx context.Context, version string) (Evaluation, error) {
	if m.cfg.Retrain.Judgments == "" {
		return Evaluation{}, errors.New("no judged held-out queries: set retrain.judgments")
	}
	v, err := m.reg.Get(version)
	if err != nil {
		return Evaluation{}, err
	}
	h, err := m.evals.judged(ctx, m)
	if err != nil {
		return Evaluation{}, err
	}
	model, err := m.scoringModel(ctx, v)
	if err != nil {
		return Evaluation{}, err
	}
	if model == CandidateModel {
		defer m.Unload(ctx, model)
	}
	per, err := m.evals.scores(ctx, m, h, v, model)
	if err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Version: v.ID, Source: h.Source, Queries: h.Queries(), NDCG10: metrics.Mean(per), BM25: metrics.Mean(h.bm25)}, nil
}

// scoringModel is the plugin's name for v: its id when the plugin holds it
// (serving, or an experiment's arm), else the candidate slot, loaded now.
func (m *Manager) scoringModel(ctx context.Context, v registry.Version) (string, error) {
	infos, err := m.plugin.Info(ctx)
	if err != nil {
		return "", err
	}
	for _, in := range infos {
		if in.Version == v.ID {
			return v.ID, nil
		}
	}
	if _, err := m.plugin.Load(ctx, contract.LoadRequest{Path: v.Checkpoint, Version: CandidateModel, CheckpointHash: v.CheckpointHash}); err != nil {
		return "", fmt.Errorf("loading version %s to evaluate it: %w", v.ID, err)
	}
	return CandidateModel, nil
}

// Unload frees a model the plugin holds for the loop (a candidate, an
// experiment's arm). A failure costs only memory, so it is logged, not returned.
func (m *Manager) Unload(ctx context.Context, model string) {
	if err := m.plugin.Unload(ctx, model); err != nil && !errors.Is(err, contract.ErrNoModel) {
		m.logger.Warn("unloading a model", "model", model, "err", err)
	}
}

// evalCache keeps the judged held-out set and every checkpoint's per-query
// NDCG@10 on a set: a checkpoint's scores do not change, so the serving
// version is scored once however many candidates it meets.
type evalCache struct {
	mu        sync.Mutex
	judgedSet *HeldOut
	score     map[string]map[string]float64 // set key + checkpoint hash
}

// JudgedHeldOut is the configured judged held-out set (retrain.judgments),
// read once.
func (m *Manager) JudgedHeldOut(ctx context.Context) (*HeldOut, error) { return m.evals.judged(ctx, m) }

func (e *evalCache) judged(ctx context.Context, m *Manager) (*HeldOut, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.judgedSet == nil {
		h, err := m.judgedHeldOut(ctx)
		if err != nil {
			return nil, err
		}
		e.judgedSet = h
	}
	return e.judgedSet, nil
}

// scores reranks h's candidates with v, loaded in the plugin as model (the
// serving version under its id; a candidate under its own), unless v's
// checkpoint was scored on h before.
func (e *evalCache) scores(ctx context.Context, m *Manager, h *HeldOut, v registry.Version, model string) (map[string]float64, error) {
	// Judged as it would serve: fused with BM25 when the version says so.
	p, fused := m.Fusion(v.ID)
	key := h.Key + "\x00" + v.CheckpointHash
	if fused {
		key += "\x00" + p.String()
	}
	e.mu.Lock()
	got, ok := e.score[key]
	e.mu.Unlock()
	if ok {
		return got, nil
	}
	run, err := runner.Rerank(ctx, h.pool, pluginclient.Scorer{Reranker: m.plugin, Model: model}, v.ID, nil)
	if err != nil {
		return nil, fmt.Errorf("scoring version %s: %w", v.ID, err)
	}
	if fused {
		run = h.pool.Fuse(run, p.Fuse)
	}
	per, err := h.score(run)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.score == nil {
		e.score = map[string]map[string]float64{}
	}
	e.score[key] = per
	e.mu.Unlock()
	return per, nil
}

// Judge scores the candidate (loaded in the plugin as model) and the
// serving version on h and applies the gate.
func (m *Manager) Judge(ctx context.Context, h *HeldOut, cand registry.Version, model string, serving *registry.Version) (gate.Decision, map[string]float64, error) {
	candScores, err := m.evals.scores(ctx, m, h, cand, model)
	if err != nil {
		return gate.Decision{}, nil, err
	}
	var servScores map[string]float64
	if serving != nil {
		if servScores, err = m.evals.scores(ctx, m, h, *serving, serving.ID); err != nil {
			return gate.Decision{}, nil, err
		}
	}
	r := m.cfg.Retrain
	d, err := gate.Decide(candScores, servScores, h.bm25, gate.Policy{Margin: r.GateMargin, Alpha: r.GateAlpha, Seed: r.Seed, BM25Floor: r.GateBM25Floor})
	if err != nil {
		return d, nil, err
	}
	ms := map[string]float64{"ndcg@10": d.CandidateMean, "heldout_queries": float64(d.Queries), "ndcg@10_serving": d.ServingMean, "ndcg@10_bm25": d.BM25Mean}
	return d, ms, nil
}
