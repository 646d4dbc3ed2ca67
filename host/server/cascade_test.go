package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/plugin/contract"
)

const cascadeName = "cascade"

// cascadeReranker serves overlapReranker's model and, under cascadeName, a
// second model that prefers short documents; delay and err hold back or fail
// the cascade model's answers only.
type cascadeReranker struct {
	overlapReranker
	delay time.Duration
	err   error
}

func (c *cascadeReranker) Rerank(ctx context.Context, req contract.RerankRequest) (contract.RerankResponse, error) {
	if req.Model != cascadeName {
		return c.overlapReranker.Rerank(ctx, req)
	}
	if err := wait(ctx, c.delay); err != nil {
		return contract.RerankResponse{}, err
	}
	if c.err != nil {
		return contract.RerankResponse{}, c.err
	}
	res := contract.RerankResponse{ModelVersion: cascadeName, Scores: make([]float32, len(req.Documents))}
	for i, d := range req.Documents {
		res.Scores[i] = shortScore(d.Text)
	}
	return res, nil
}

func shortScore(text string) float32 { return -float32(len(text)) }

func cascadeConfig(timeout time.Duration) func(*configs.Config) {
	return func(c *configs.Config) {
		c.Rerank.Cascade.Top, c.Rerank.Cascade.Timeout = 5, timeout
	}
}

// The cascade model reorders the top 5 of the first model's order by its own
// scores; ranks 6 to 20 keep the first model's order; the hits and the click
// log carry both models' scores.
func TestSearchCascade(t *testing.T) {
	e := start(t, setup{reranker: &cascadeReranker{}, cascade: cascadeName, config: cascadeConfig(time.Minute)})
	var res SearchResponse
	do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "size": {"20"}, "k": {"20"}}.Encode(), "", &res)
	if !res.Reranked || res.Cascade == nil || *res.Cascade != (SearchCascade{Model: cascadeName, Top: 5, Applied: true}) || len(res.Hits) != 20 {
		t.Fatalf("%+v (cascade %+v)", res, res.Cascade)
	}
	first := rerankedOrder(t, claim, 20, 20)
	top := map[string]bool{}
	for _, id := range first[:5] {
		top[id] = true
	}
	for i, h := range res.Hits {
		if i < 5 {
			if !top[h.ID] || h.CascadeScore == nil || h.RerankScore == nil {
				t.Fatalf("rank %d: %s (cascade score %v); want one of the first stage's top 5 %v, with both scores", h.Rank, h.ID, h.CascadeScore, first[:5])
			}
			if i > 0 && *h.CascadeScore > *res.Hits[i-1].CascadeScore {
				t.Fatalf("rank %d scores %v above rank %d's %v: not in the cascade's order", h.Rank, *h.CascadeScore, h.Rank-1, *res.Hits[i-1].CascadeScore)
			}
			continue
		}
		if h.ID != first[i] || h.CascadeScore != nil {
			t.Fatalf("rank %d: %s (cascade score %v), want the first stage's %s unscored", h.Rank, h.ID, h.CascadeScore, first[i])
		}
	}
	changed := false
	for i, h := range res.Hits[:5] {
		changed = changed || h.ID != first[i]
	}
	if !changed {
		t.Fatal("the cascade changed nothing: the test cannot tell the stages apart")
	}
	waitLogged(e)
	log := exportLog(t, e.store)
	if len(log) != 1 || log[0].Results[0].Cascade == nil || *log[0].Results[0].Cascade != *res.Hits[0].CascadeScore ||
		log[0].Results[0].Rerank == nil || log[0].Results[5].Cascade != nil {
		t.Fatalf("logged %+v", log)
	}
	if body := metricsText(t, e); !strings.Contains(body, `rerank_search_stage_duration_seconds_count{stage="cascade"} 1`) {
		t.Fatal("metrics lack the cascade stage's time")
	}
}

// A cascade model past its timeout, or failing, leaves the first model's
// order, says why, and counts it; the first stage's result stands.
func TestCascadeFailureKeepsTheFirstStageOrder(t *testing.T) {
	first := rerankedOrder(t, claim, 20, 10)
	for _, tc := range []struct {
		reason string
		r      *cascadeReranker
	}{
		{"deadline", &cascadeReranker{delay: time.Minute}},
		{"unavailable", &cascadeReranker{err: fmt.Errorf("plugin restarting: %w", contract.ErrUnavailable)}},
		{"error", &cascadeReranker{err: errors.New("no model \"cascade\"")}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := start(t, setup{reranker: tc.r, cascade: cascadeName, config: cascadeConfig(50 * time.Millisecond)})
			var res SearchResponse
			began := time.Now()
			code, _ := do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "k": {"20"}}.Encode(), "", &res)
			if code != 200 || !res.Reranked || res.ModelVersion != "overlap-v1" || res.Cascade == nil ||
				*res.Cascade != (SearchCascade{Model: cascadeName, Top: 5, Fallback: tc.reason}) || len(res.Hits) != 10 {
				t.Fatalf("status %d, %+v (cascade %+v)", code, res, res.Cascade)
			}
			if time.Since(began) > 5*time.Second {
				t.Fatal("the cascade's timeout did not cut it off")
			}
			for i, h := range res.Hits {
				if h.ID != first[i] || h.CascadeScore != nil || h.RerankScore == nil {
					t.Fatalf("hit %d: %+v, want the first stage's %s", i, h, first[i])
				}
			}
			body := metricsText(t, e)
			if want := `rerank_cascade_fallbacks_total{reason="` + tc.reason + `"} 1`; !strings.Contains(body, want) {
				t.Fatalf("metrics lack %s", want)
			}
			if strings.Contains(body, "rerank_rerank_fallbacks_total{") {
				t.Fatal("a cascade failure counted as the first stage's")
			}
		})
	}
}

// A first stage that failed leaves BM25's order, which the cascade then
// reorders; without a cascade model there is no cascade stage.
func TestCascadeAfterFirstStageFailure(t *testing.T) {
	r := &cascadeReranker{}
	r.overlapReranker.err = errors.New("first model down")
	e := start(t, setup{reranker: r, cascade: cascadeName, config: cascadeConfig(time.Minute)})
	var res SearchResponse
	do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "k": {"20"}}.Encode(), "", &res)
	if res.Reranked || res.Cascade == nil || !res.Cascade.Applied {
		t.Fatalf("%+v (cascade %+v)", res, res.Cascade)
	}
	bm25, _, _ := sampleIndex(t).Search(context.Background(), claim, 10, 0)
	top := map[string]float64{} // BM25's top 5 and their cascade scores
	for _, h := range bm25[:5] {
		top[h.ID] = float64(shortScore(dataset.DocText(h.Title, h.Text)))
	}
	for i, h := range res.Hits {
		if sc, ok := top[h.ID]; i < 5 && (!ok || *h.CascadeScore != sc) || i >= 5 && h.ID != bm25[i].ID {
			t.Fatalf("rank %d: %+v; want BM25's top 5 in the cascade's order, then BM25's order", h.Rank, h)
		}
	}

	e = start(t, setup{reranker: &cascadeReranker{}, config: cascadeConfig(time.Minute)})
	res = SearchResponse{}
	do(t, "GET", e.url+"/search?q="+url.QueryEscape(claim), "", &res)
	if !res.Reranked || res.Cascade != nil {
		t.Fatalf("no cascade model: %+v", res.Cascade)
	}
}
