package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/plugin/contract"
)

const claim = "Vitamin D deficiency is associated with cancer risk"

func TestSearchBM25OnlyIsLogged(t *testing.T) {
	e := start(t, setup{})
	var res SearchResponse
	code, _ := do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "size": {"5"}, "user": {"u1"}, "session": {"s1"}}.Encode(), "", &res)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if res.Reranked || res.SearchID == "" || !res.Logged || res.Total < 5 || len(res.Hits) != 5 || res.K != 50 {
		t.Fatalf("response %+v", res)
	}
	want, _, _ := sampleIndex(t).Search(context.Background(), claim, 5, 0)
	for i, h := range res.Hits {
		if h.ID != want[i].ID || h.Rank != i+1 || h.BM25Rank != i+1 || h.RerankScore != nil || h.Title == "" || h.Snippet == "" {
			t.Fatalf("hit %d: %+v, want BM25's %s", i, h, want[i].ID)
		}
	}
	if len(res.Hits[0].Highlights) == 0 {
		t.Fatalf("no highlighted terms in %q", res.Hits[0].Snippet)
	}

	waitLogged(e)
	log := exportLog(t, e.store)
	if len(log) != 1 {
		t.Fatalf("%d impressions logged, want 1", len(log))
	}
	imp := log[0]
	if imp.SearchID != res.SearchID || imp.Query != claim || imp.User != "u1" || imp.Session != "s1" || imp.Reranked || len(imp.Results) != 5 {
		t.Fatalf("logged %+v", imp)
	}
	for i, r := range imp.Results {
		if r.DocID != res.Hits[i].ID || r.Position != i+1 || r.BM25 != res.Hits[i].BM25Score || r.Rerank != nil {
			t.Fatalf("logged result %d: %+v", i, r)
		}
	}
}

func TestSearchPOSTMatchesGET(t *testing.T) {
	e := start(t, setup{})
	var g, p SearchResponse
	do(t, "GET", e.url+"/search?q=stem+cells&size=3&from=2", "", &g)
	code, _ := do(t, "POST", e.url+"/search", `{"query":"stem cells","size":3,"from":2}`, &p)
	if code != 200 || len(p.Hits) != 3 || p.Hits[0].Rank != 3 {
		t.Fatalf("POST: %d %+v", code, p)
	}
	for i := range p.Hits {
		if p.Hits[i].ID != g.Hits[i].ID {
			t.Fatalf("POST and GET differ at %d", i)
		}
	}
	if p.SearchID == g.SearchID {
		t.Fatal("two searches share an id")
	}
}

// rerankedOrder is what the server must show: the overlap reranker's order
// over BM25's top k, then BM25's order.
func rerankedOrder(t *testing.T, query string, k, n int) []string {
	hits, _, _ := sampleIndex(t).Search(context.Background(), query, max(k, n), 0)
	type sc struct {
		id string
		s  float32
	}
	win := make([]sc, min(k, len(hits)))
	for i := range win {
		win[i] = sc{hits[i].ID, overlapScore(query, dataset.DocText(hits[i].Title, hits[i].Text))}
	}
	sort.SliceStable(win, func(a, b int) bool { return win[a].s > win[b].s })
	var ids []string
	for _, w := range win {
		ids = append(ids, w.id)
	}
	for _, h := range hits[len(win):] {
		ids = append(ids, h.ID)
	}
	return ids[:min(n, len(ids))]
}

func TestSearchReranked(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}})
	var res SearchResponse
	// Page 2 straddles the window's end: ranks 16-20 reranked, 21-25 in BM25 order.
	code, _ := do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "size": {"10"}, "from": {"15"}, "k": {"20"}}.Encode(), "", &res)
	if code != 200 || !res.Reranked || res.ModelVersion != "overlap-v1" || len(res.Hits) != 10 {
		t.Fatalf("status %d, %+v", code, res)
	}
	want := rerankedOrder(t, claim, 20, 25)[15:]
	changed := false
	for i, h := range res.Hits {
		if h.ID != want[i] || h.Rank != 16+i {
			t.Fatalf("hit %d is %s at rank %d, want %s at %d", i, h.ID, h.Rank, want[i], 16+i)
		}
		if (h.RerankScore != nil) != (h.Rank <= 20) {
			t.Fatalf("rank %d: rerank score %v; want one exactly within the window", h.Rank, h.RerankScore)
		}
		if h.Rank <= 20 && h.BM25Rank != h.Rank {
			changed = true
		}
		if h.Rank > 20 && h.BM25Rank != h.Rank {
			t.Fatalf("rank %d past the window has BM25 rank %d", h.Rank, h.BM25Rank)
		}
	}
	if !changed {
		t.Fatal("reranking changed nothing: the test cannot tell the stages apart")
	}
	waitLogged(e)
	log := exportLog(t, e.store)
	if len(log) != 1 || !log[0].Reranked || log[0].ModelVersion != "overlap-v1" || log[0].Results[0].Position != 16 ||
		log[0].Results[0].Rerank == nil || log[0].Results[9].Rerank != nil {
		t.Fatalf("logged %+v", log)
	}

	// k=0 keeps BM25 order; a page past the window is not reranked.
	for _, q := range []string{"&k=0", "&from=60"} {
		res = SearchResponse{}
		do(t, "GET", e.url+"/search?q=stem+cells"+q, "", &res)
		if res.Reranked || len(res.Hits) == 0 || res.Hits[0].BM25Rank != res.Hits[0].Rank {
			t.Fatalf("%s: %+v", q, res)
		}
	}
}

func TestRerankFailureFallsBackToBM25(t *testing.T) {
	bm25, _, _ := sampleIndex(t).Search(context.Background(), claim, 10, 0)
	for _, tc := range []struct {
		reason string
		r      *overlapReranker
	}{
		{"deadline", &overlapReranker{delay: time.Minute}},
		{"unavailable", &overlapReranker{err: fmt.Errorf("plugin restarting: %w", contract.ErrUnavailable)}},
		{"error", &overlapReranker{err: errors.New("CUDA out of memory")}},
		{"bad_response", &overlapReranker{short: true}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := start(t, setup{reranker: tc.r, config: func(c *configs.Config) { c.Rerank.Deadline = 50 * time.Millisecond }})
			var res SearchResponse
			began := time.Now()
			code, _ := do(t, "GET", e.url+"/search?q="+url.QueryEscape(claim), "", &res)
			if code != 200 || res.Reranked || res.ModelVersion != "" || len(res.Hits) != 10 {
				t.Fatalf("status %d, %+v", code, res)
			}
			if tc.reason == "deadline" && time.Since(began) > 5*time.Second {
				t.Fatal("the deadline did not cut the reranker off")
			}
			for i, h := range res.Hits {
				if h.ID != bm25[i].ID || h.RerankScore != nil {
					t.Fatalf("hit %d: %+v, want BM25's %s", i, h, bm25[i].ID)
				}
			}
			body := metricsText(t, e)
			if want := `rerank_rerank_fallbacks_total{reason="` + tc.reason + `"} 1`; !strings.Contains(body, want) {
				t.Fatalf("metrics lack %s", want)
			}
			waitLogged(e)
			if log := exportLog(t, e.store); len(log) != 1 || log[0].Reranked {
				t.Fatalf("logged %+v", log)
			}
		})
	}
}

func metricsText(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestNoResultsStillLogged(t *testing.T) {
	e := start(t, setup{})
	var res SearchResponse
	code, _ := do(t, "GET", e.url+"/search?q=qqqzzzxxy", "", &res)
	if code != 200 || res.Total != 0 || res.Hits == nil || len(res.Hits) != 0 {
		t.Fatalf("%d %+v", code, res)
	}
	waitLogged(e)
	if log := exportLog(t, e.store); len(log) != 1 || len(log[0].Results) != 0 {
		t.Fatalf("logged %+v", log)
	}
}

func TestDurableSearchesMode(t *testing.T) {
	e := start(t, setup{config: func(c *configs.Config) { c.ClickLog.DurableSearches = true }})
	var res SearchResponse
	do(t, "GET", e.url+"/search?q=stem+cells", "", &res)
	// No Drain: with durable searches the impression is on disk before the answer.
	if log := exportLog(t, e.store); len(log) != 1 || log[0].SearchID != res.SearchID {
		t.Fatalf("logged %+v", log)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := start(t, setup{reranker: &overlapReranker{}})
	var h map[string]any
	if code, _ := do(t, "GET", e.url+"/healthz", "", &h); code != 200 || h["status"] != "ok" {
		t.Fatalf("healthz %d %v", code, h)
	}
	if code, _ := do(t, "GET", e.url+"/readyz", "", &h); code != 200 || h["ready"] != true || h["index_documents"] != 1000.0 || h["reranker"] != "ok" {
		t.Fatalf("readyz %d %v", code, h)
	}
	do(t, "GET", e.url+"/search?q=stem+cells", "", nil)
	do(t, "GET", e.url+"/search?q=", "", nil)
	waitLogged(e)
	body := metricsText(t, e)
	for _, want := range []string{
		`rerank_http_requests_total{code="200",handler="search"} 1`,
		`rerank_http_requests_total{code="400",handler="search"} 1`,
		`rerank_search_stage_duration_seconds_count{stage="bm25"} 1`,
		`rerank_search_stage_duration_seconds_count{stage="rerank"} 1`,
		`rerank_search_stage_duration_seconds_count{stage="log"} 1`,
		`rerank_clicklog_write_duration_seconds_count{kind="search"} 1`,
		`rerank_searches_total{reranked="true"} 1`,
		`rerank_plugin_restarts_total 3`,
		`rerank_index_documents 1000`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// An unavailable reranker does not make the host unready.
	e = start(t, setup{reranker: &overlapReranker{err: contract.ErrUnavailable}})
	if code, _ := do(t, "GET", e.url+"/readyz", "", &h); code != 200 || h["ready"] != true || !strings.HasPrefix(h["reranker"].(string), "unavailable") {
		t.Fatalf("readyz with the reranker down: %d %v", code, h)
	}
}

func TestPage(t *testing.T) {
	e := start(t, setup{})
	for path, want := range map[string]string{"/": `id="search"`, "/static/app.js": "reportClick", "/static/style.css": ".hit"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, %d bytes without %q", path, resp.StatusCode, len(b), want)
		}
	}
	var res map[string]string
	if code, _ := do(t, "GET", e.url+"/nope", "", &res); code != 404 || !strings.Contains(res["error"], "no such endpoint") {
		t.Errorf("unknown path: %d %v", code, res)
	}
	if code, _ := do(t, "POST", e.url+"/", "{}", &res); code != 405 {
		t.Errorf("POST /: %d %v", code, res)
	}
}

// A version with a fusion orders the window by the fused score: a = 1 gives
// BM25's order back, a = 0 the model's, and the hits still carry the
// model's own score.
func TestSearchFusesWithBM25(t *testing.T) {
	hits, _, err := sampleIndex(t).Search(context.Background(), claim, 20, 0)
	if err != nil || len(hits) != 20 {
		t.Fatalf("%d hits, %v", len(hits), err)
	}
	first, model := make([]float64, 20), make([]float64, 20)
	for i, h := range hits {
		first[i], model[i] = h.Score, float64(overlapScore(claim, dataset.DocText(h.Title, h.Text)))
	}
	orders := map[string]bool{}
	for _, a := range []float64{0, 0.5, 1} {
		p := fusion.Params{Method: fusion.MinMax, BM25Weight: a}
		e := start(t, setup{reranker: &overlapReranker{}, fusion: func(version string) (fusion.Params, bool) {
			return p, version == "overlap-v1"
		}})
		var res SearchResponse
		do(t, "GET", e.url+"/search?"+url.Values{"q": {claim}, "size": {"20"}, "k": {"20"}}.Encode(), "", &res)
		if !res.Reranked || len(res.Hits) != 20 {
			t.Fatalf("a=%v: %+v", a, res)
		}
		var got []string
		for i, j := range fusion.Order(p.Fuse(first, model)) {
			h := res.Hits[i]
			got = append(got, h.ID)
			if h.ID != hits[j].ID || *h.RerankScore != model[j] {
				t.Fatalf("a=%v: rank %d is %s (score %v); the fused order wants %s (model score %v)", a, i+1, h.ID, *h.RerankScore, hits[j].ID, model[j])
			}
			if a == 1 && h.BM25Rank != h.Rank {
				t.Fatalf("a=1 must keep BM25 order: rank %d has BM25 rank %d", h.Rank, h.BM25Rank)
			}
		}
		orders[strings.Join(got, ",")] = true
	}
	if len(orders) != 3 {
		t.Fatalf("a = 0, 0.5 and 1 gave %d distinct orders: the test cannot tell them apart", len(orders))
	}
}
