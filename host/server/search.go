package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rerankloop/rerank/evalharness/cascade"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// maxIDField bounds user and session ids (the click log's limit).
const maxIDField = 256

// searchRequest is the body of POST /search; GET takes the same names as
// query parameters (and q for query).
type searchRequest struct {
	Query   string `json:"query"`
	Size    *int   `json:"size"`
	From    *int   `json:"from"`
	K       *int   `json:"k"`
	User    string `json:"user"`
	Session string `json:"session"`
}

// params is a checked search request.
type params struct {
	query         string
	size, from, k int
	user, session string
}

// SearchHit is one result.
type SearchHit struct {
	ID         string        `json:"id"`
	Title      string        `json:"title"`
	Snippet    string        `json:"snippet"`
	Highlights []search.Span `json:"highlights"`
	Rank       int           `json:"rank"` // final, 1-based, across pages
	BM25Score  float64       `json:"bm25_score"`
	BM25Rank   int           `json:"bm25_rank"`
	// RerankScore is set when the reranker scored this hit (not in an
	// interleaved search, whose hits two versions scored).
	RerankScore *float64 `json:"rerank_score,omitempty"`
	// CascadeScore is set when the cascade model (rerank.cascade) reordered
	// this hit; RerankScore stays the first model's.
	CascadeScore *float64 `json:"cascade_score,omitempty"`
	// Team is, in an interleaved search, who contributed the hit: control,
	// treatment or shared (both rankings placed it next).
	Team string `json:"team,omitempty"`
}

// SearchResponse answers /search.
type SearchResponse struct {
	SearchID string `json:"search_id"`
	Query    string `json:"query"`
	Total    int    `json:"total"`
	From     int    `json:"from"`
	Size     int    `json:"size"`
	K        int    `json:"k"`
	Reranked bool   `json:"reranked"`
	// ModelVersion is the one model version that ranked the hits; absent in
	// BM25 order and in an interleaved search (Experiment names both).
	ModelVersion string `json:"model_version,omitempty"`
	// Experiment is set when the search took part in an experiment.
	Experiment *SearchExperiment `json:"experiment,omitempty"`
	// Cascade is set when the cascade stage ran.
	Cascade *SearchCascade `json:"cascade,omitempty"`
	Logged  bool           `json:"logged"` // clicks on this search can be recorded
	TookMS  float64        `json:"took_ms"`
	Hits    []SearchHit    `json:"hits"`
}

// SearchCascade says how the cascade stage (rerank.cascade) went.
type SearchCascade struct {
	Model string `json:"model"` // its name in the plugin
	Top   int    `json:"top"`   // how many of the previous order's hits it was to reorder
	// Applied: it reordered them. Else Fallback says why the previous order
	// answers: deadline, unavailable, overloaded, error or bad_response.
	Applied  bool   `json:"applied"`
	Fallback string `json:"fallback,omitempty"`
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	var req searchRequest
	if r.Method == http.MethodPost {
		if err := s.readJSON(w, r, &req, true); err != nil {
			s.fail(w, r, err)
			return
		}
	} else if err := queryRequest(r.URL.Query(), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.check(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.search(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// queryRequest reads GET parameters into req.
func queryRequest(q url.Values, req *searchRequest) error {
	for name, vals := range q {
		for _, v := range vals {
			if !utf8.ValidString(v) {
				return badRequest("parameter %q is not valid UTF-8", name)
			}
		}
	}
	req.Query = q.Get("query")
	if req.Query == "" {
		req.Query = q.Get("q")
	}
	req.User, req.Session = q.Get("user"), q.Get("session")
	for _, f := range []struct {
		name string
		dst  **int
	}{{"size", &req.Size}, {"from", &req.From}, {"k", &req.K}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return badRequest("%s must be an integer, got %q", f.name, clip(v, 40))
		}
		*f.dst = &n
	}
	return nil
}

// check applies the configured limits, naming the parameter at fault.
func (s *Server) check(req searchRequest) (params, error) {
	c := s.cfg
	p := params{query: strings.TrimSpace(req.Query), size: c.Search.DefaultSize, k: c.Rerank.Window, user: req.User, session: req.Session}
	if !utf8.ValidString(req.Query) {
		return p, badRequest("query is not valid UTF-8")
	}
	if p.query == "" {
		return p, badRequest("query is empty: pass query (or q) with the words to search for")
	}
	if len(p.query) > c.Search.MaxQueryBytes {
		return p, badRequest("query is %d bytes long, over the %d-byte limit", len(p.query), c.Search.MaxQueryBytes)
	}
	if req.Size != nil {
		p.size = *req.Size
	}
	if p.size < 1 || p.size > c.Search.MaxSize {
		return p, badRequest("size must be 1 to %d, got %d", c.Search.MaxSize, p.size)
	}
	if req.From != nil {
		p.from = *req.From
	}
	if p.from < 0 || p.from > c.Search.MaxFrom {
		return p, badRequest("from must be 0 to %d, got %d", c.Search.MaxFrom, p.from)
	}
	if req.K != nil {
		p.k = *req.K
	}
	if p.k < 0 || p.k > c.Rerank.MaxWindow {
		return p, badRequest("k (rerank window) must be 0 to %d, got %d; 0 keeps BM25 order", c.Rerank.MaxWindow, p.k)
	}
	for _, f := range []struct{ name, v string }{{"user", p.user}, {"session", p.session}} {
		if !utf8.ValidString(f.v) {
			return p, badRequest("%s is not valid UTF-8", f.name)
		}
		if len(f.v) > maxIDField {
			return p, badRequest("%s is %d bytes long, over the %d-byte limit", f.name, len(f.v), maxIDField)
		}
	}
	return p, nil
}

// search runs BM25, the rerank stage when the page falls in the window, and
// logs the impression.
func (s *Server) search(ctx context.Context, p params) (*SearchResponse, error) {
	start := time.Now()
	rerank := s.reranker != nil && p.k > 0 && p.from < p.k
	// To rerank, BM25's top max(K, from+size) are needed from rank 1;
	// otherwise just the page.
	n, offset := p.size, p.from
	if rerank {
		n, offset = max(p.k, p.from+p.size), 0
	}
	t := time.Now()
	hits, total, err := s.ix.Search(ctx, p.query, n, offset)
	s.metrics.observeStage("bm25", t)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &apiError{http.StatusServiceUnavailable, "search cancelled: " + ctx.Err().Error()}
		}
		return nil, err
	}
	bm25Rank := make(map[string]int, len(hits))
	for i, h := range hits {
		bm25Rank[h.ID] = offset + i + 1
	}

	resp := &SearchResponse{SearchID: newID(), Query: p.query, Total: total, From: p.from, Size: p.size, K: p.k, Hits: []SearchHit{}}
	var rk ranked
	var cascaded map[string]float64 // the cascade model's scores
	if rerank && len(hits) > 0 {
		window := min(p.k, len(hits))
		rk = s.rankStage(ctx, p, resp.SearchID, hits, window)
		hits, resp.ModelVersion, resp.Experiment = rk.hits, rk.version, rk.experiment
		resp.Reranked = rk.scores != nil || rk.teams != nil
		// The cascade follows whatever order the first stage left (BM25's if
		// it failed), but never an interleaved list, whose teams it would mix.
		if s.cascade != "" && rk.teams == nil {
			hits, cascaded, resp.Cascade = s.cascadeStage(ctx, p.query, hits, window)
		}
	}
	s.metrics.searches.WithLabelValues(strconv.FormatBool(resp.Reranked)).Inc()
	if rerank {
		hits = hits[min(p.from, len(hits)):]
		hits = hits[:min(p.size, len(hits))]
	}

	shown := make([]clicklog.Shown, len(hits))
	for i, h := range hits {
		snippet, spans := s.ix.Snippet(p.query, h.Text, s.cfg.Search.SnippetChars)
		hit := SearchHit{ID: h.ID, Title: h.Title, Snippet: snippet, Highlights: spans, Rank: p.from + i + 1, BM25Score: h.Score, BM25Rank: bm25Rank[h.ID]}
		if hit.Highlights == nil {
			hit.Highlights = []search.Span{}
		}
		shown[i] = clicklog.Shown{DocID: h.ID, Position: hit.Rank, BM25: h.Score}
		if sc, ok := rk.scores[h.ID]; ok {
			hit.RerankScore = &sc
			shown[i].Rerank, shown[i].HasRerank = sc, true
		}
		if sc, ok := cascaded[h.ID]; ok {
			hit.CascadeScore = &sc
			shown[i].Cascade, shown[i].HasCascade = sc, true
		}
		if t, ok := rk.teams[h.ID]; ok {
			hit.Team, shown[i].Team = string(t), string(t)
		}
		resp.Hits = append(resp.Hits, hit)
	}

	if s.log != nil {
		resp.Logged = s.logSearch(ctx, clicklog.Impression{
			SearchID: resp.SearchID, Time: start, Query: p.query, UserID: p.user, SessionID: p.session,
			ModelVersion: resp.ModelVersion, Arm: rk.arm, Reranked: resp.Reranked, Results: shown,
		})
	}
	resp.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return resp, nil
}

// rerank orders the first window hits by the scores of model (empty: the
// serving version; ties keep BM25 order), fused with BM25's as the version's
// fusion says, and leaves the rest in BM25 order. On any failure it returns
// hits unchanged and nil scores: the search still answers.
func (s *Server) rerank(ctx context.Context, query string, hits []search.Hit, window int, model string) ([]search.Hit, map[string]float64, string) {
	// The model's own score is what the hit and the click log report.
	fuse := func(version string, scores []float64) []float64 {
		if s.fusion == nil {
			return scores
		}
		p, ok := s.fusion(version)
		if !ok {
			return scores
		}
		first := make([]float64, len(scores))
		for i, h := range hits[:len(scores)] {
			first[i] = h.Score
		}
		return p.Fuse(first, scores)
	}
	r := s.stage(ctx, "rerank", query, hits, window, model, s.cfg.Rerank.Deadline, s.metrics.fallbacks, fuse)
	return r.hits, r.scores, r.version
}

// cascadeStage reorders the top rerank.cascade.top of hits (the previous
// stage's order, within the rerank window) by the cascade model's scores,
// within rerank.cascade.timeout; on any failure hits keep their order and the
// outcome names the reason.
func (s *Server) cascadeStage(ctx context.Context, query string, hits []search.Hit, window int) ([]search.Hit, map[string]float64, *SearchCascade) {
	top := cascade.Top(window, s.cfg.Rerank.Cascade.Top)
	r := s.stage(ctx, "cascade", query, hits, top, s.cascade, s.cfg.Rerank.Cascade.Timeout, s.metrics.cascadeFallbacks, nil)
	return r.hits, r.scores, &SearchCascade{Model: s.cascade, Top: top, Applied: r.fallback == "", Fallback: r.fallback}
}

// staged is a model stage's outcome.
type staged struct {
	hits     []search.Hit
	scores   map[string]float64 // the model's score of each hit it scored; nil on failure
	version  string             // the version that scored
	fallback string             // why the stage failed; empty when it ordered the hits
}

// stage asks model to score the first n hits within deadline and orders them
// by those scores (by final's transform of them, when not nil), the rest kept
// after them. On a failure (an error, the deadline, a wrong count, a
// non-finite score) it counts the reason in fallbacks and logs it, and the
// hits keep their order.
func (s *Server) stage(ctx context.Context, name, query string, hits []search.Hit, n int, model string, deadline time.Duration,
	fallbacks *prometheus.CounterVec, final func(version string, scores []float64) []float64) staged {
	t := time.Now()
	defer s.metrics.observeStage(name, t)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	docs := make([]contract.Document, n)
	for i, h := range hits[:n] {
		docs[i] = contract.Document{ID: h.ID, Text: dataset.DocText(h.Title, h.Text)}
	}
	res, err := s.reranker.Rerank(ctx, contract.RerankRequest{Query: query, Documents: docs, Model: model})
	if err == nil && len(res.Scores) != n {
		err = errBadResponse
	}
	scores := make([]float64, len(res.Scores))
	for i, sc := range res.Scores {
		if scores[i] = float64(sc); err == nil && (math.IsNaN(scores[i]) || math.IsInf(scores[i], 0)) {
			err = errBadResponse
		}
	}
	var out []search.Hit
	if err == nil {
		order := scores
		if final != nil {
			order = final(res.ModelVersion, scores)
		}
		out, err = cascade.Order(hits, order)
	}
	if err != nil {
		reason := fallbackReason(ctx, err)
		fallbacks.WithLabelValues(reason).Inc()
		s.logger.Warn(name+" failed; answering in the previous stage's order", "reason", reason, "err", err)
		return staged{hits: hits, fallback: reason}
	}
	m := make(map[string]float64, n)
	for i, sc := range scores {
		m[hits[i].ID] = sc
	}
	return staged{hits: out, scores: m, version: res.ModelVersion}
}

// fallbackReason names why a stage failed; ctx is the stage's own.
func fallbackReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, contract.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, contract.ErrOverloaded):
		return "overloaded"
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return "deadline"
	case errors.Is(err, errBadResponse):
		return "bad_response"
	}
	return "error"
}

var errBadResponse = errors.New("reranker returned a score count that does not match the documents, or a non-finite score")

// logSearch hands the impression to the click log. With durable_searches it
// waits for the commit; otherwise it returns once the impression is queued
// (commits keep order, so clicks on it find it) and a goroutine reports the
// outcome. It says whether clicks on the search can be recorded.
func (s *Server) logSearch(ctx context.Context, imp clicklog.Impression) bool {
	t := time.Now()
	defer s.metrics.observeStage("log", t)
	if s.cfg.ClickLog.DurableSearches {
		if err := s.log.LogSearch(ctx, imp); err != nil {
			s.logger.Error("search not logged", "search_id", imp.SearchID, "err", err)
			return false
		}
		return true
	}
	p, err := s.log.SubmitSearch(ctx, imp)
	if err != nil {
		s.logger.Error("search not logged", "search_id", imp.SearchID, "err", err)
		return false
	}
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		if err := p.Wait(context.Background()); err != nil {
			s.logger.Error("search not logged", "search_id", imp.SearchID, "err", err)
		}
	}()
	return true
}

// newID is a random search id: 128 bits, hex.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
