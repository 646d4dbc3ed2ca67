package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/rerankloop/rerank/plugin/contract"
)

// cohereRequest is Cohere's rerank request (v1 and v2 share these fields).
// Other fields Cohere defines (max_chunks_per_doc, rank_fields, ...) are
// accepted and ignored, so existing clients work unchanged.
type cohereRequest struct {
	// Model is ignored: Cohere clients always name one of Cohere's models,
	// and an anonymous caller must not reach a candidate or an experiment's
	// arm. The serving version answers and meta.model_version says which.
	Model           string            `json:"model"`
	Query           *string           `json:"query"`
	Documents       []json.RawMessage `json:"documents"`
	TopN            *int              `json:"top_n"`
	ReturnDocuments bool              `json:"return_documents"`
}

type cohereResult struct {
	Index int `json:"index"`
	// float32, as the model scores: written in float32's shortest form, a
	// score parses as a Double in OpenSearch (17 digits become a BigDecimal
	// that its cohere.rerank post-process function cannot cast).
	RelevanceScore float32       `json:"relevance_score"`
	Document       *cohereDocOut `json:"document,omitempty"`
}

type cohereDocOut struct {
	Text string `json:"text"`
}

type cohereResponse struct {
	ID      string         `json:"id"`
	Results []cohereResult `json:"results"`
	Meta    map[string]any `json:"meta"`
}

// handleCohereRerank scores documents against a query with the serving
// model. Scores go through a sigmoid, so relevance_score lies in (0, 1) as
// Cohere's does. Nothing is logged: the call is stateless.
func (s *Server) handleCohereRerank(w http.ResponseWriter, r *http.Request) {
	var req cohereRequest
	if err := s.readJSON(w, r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	docs, topN, err := s.checkCohere(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.reranker == nil {
		writeError(w, http.StatusServiceUnavailable, "no reranker configured: start the server with rerank.model_path set")
		return
	}
	// A request may carry many documents: give it the whole write timeout,
	// not the per-search deadline.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HTTP.WriteTimeout)
	defer cancel()
	cdocs := make([]contract.Document, len(docs))
	for i, d := range docs {
		cdocs[i] = contract.Document{Text: d}
	}
	t := time.Now()
	res, err := s.reranker.Rerank(ctx, contract.RerankRequest{Query: *req.Query, Documents: cdocs, TopN: topN, Sigmoid: true})
	s.metrics.observeStage("rerank", t)
	if err == nil && (len(res.Scores) != len(docs) || len(res.Ranking) < topN) {
		err = errBadResponse
	}
	for _, sc := range res.Scores {
		if err == nil && (math.IsNaN(float64(sc)) || math.IsInf(float64(sc), 0)) {
			err = errBadResponse
		}
	}
	for i := 0; err == nil && i < topN; i++ {
		if ix := res.Ranking[i].Index; ix < 0 || ix >= len(docs) {
			err = errBadResponse
		}
	}
	if err != nil {
		code, msg := http.StatusBadGateway, "reranker failed"
		switch {
		case errors.Is(err, contract.ErrInvalidRequest):
			code, msg = http.StatusBadRequest, err.Error()
		case errors.Is(err, contract.ErrTooLarge):
			code, msg = http.StatusRequestEntityTooLarge, err.Error()
		case errors.Is(err, contract.ErrOverloaded):
			code, msg = http.StatusTooManyRequests, err.Error()
			w.Header().Set("Retry-After", "1")
		case errors.Is(err, errBadResponse):
			msg = "reranker failed: " + err.Error()
		case errors.Is(err, contract.ErrUnavailable):
			code, msg = http.StatusServiceUnavailable, "reranker unavailable (restarting?); retry shortly"
		case ctx.Err() != nil:
			code, msg = http.StatusGatewayTimeout, "reranker did not answer in time"
		}
		s.logger.Warn("v1/rerank failed", "err", err)
		writeError(w, code, msg)
		return
	}
	out := cohereResponse{ID: newID(), Results: make([]cohereResult, topN), Meta: map[string]any{
		"api_version":  map[string]string{"version": "1"},
		"billed_units": map[string]int{"search_units": 1},
	}}
	if res.ModelVersion != "" {
		out.Meta["model_version"] = res.ModelVersion
	}
	for i, rk := range res.Ranking[:topN] {
		out.Results[i] = cohereResult{Index: rk.Index, RelevanceScore: res.Scores[rk.Index]}
		if req.ReturnDocuments {
			out.Results[i].Document = &cohereDocOut{Text: docs[rk.Index]}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// checkCohere returns the documents' texts and the number of results.
func (s *Server) checkCohere(req cohereRequest) ([]string, int, error) {
	if req.Query == nil {
		return nil, 0, badRequest("query is missing")
	}
	q := strings.TrimSpace(*req.Query)
	if q == "" {
		return nil, 0, badRequest("query is empty")
	}
	if len(q) > s.cfg.Search.MaxQueryBytes {
		return nil, 0, badRequest("query is %d bytes long, over the %d-byte limit", len(q), s.cfg.Search.MaxQueryBytes)
	}
	if len(req.Documents) == 0 {
		return nil, 0, badRequest("documents is missing or empty: send an array of strings or of {\"text\": ...} objects")
	}
	if len(req.Documents) > s.cfg.Rerank.MaxDocuments {
		return nil, 0, badRequest("%d documents, over the limit of %d per request", len(req.Documents), s.cfg.Rerank.MaxDocuments)
	}
	docs := make([]string, len(req.Documents))
	for i, raw := range req.Documents {
		t, err := cohereDoc(raw)
		if err != nil {
			return nil, 0, badRequest("documents[%d]: %v", i, err)
		}
		docs[i] = t
	}
	topN := len(docs)
	if req.TopN != nil {
		if *req.TopN < 1 {
			return nil, 0, badRequest("top_n must be at least 1, got %d", *req.TopN)
		}
		topN = min(*req.TopN, len(docs)) // as Cohere: more than there are returns them all
	}
	return docs, topN, nil
}

// cohereDoc reads a document given as a string or as an object with a
// string "text" field.
func cohereDoc(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	if len(raw) == 0 || raw[0] != '{' {
		return "", fmt.Errorf("want a string or an object with \"text\", got %s", clip(string(raw), 40))
	}
	var obj struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("\"text\" must be a string")
	}
	if obj.Text == nil {
		return "", errors.New("object without a \"text\" field")
	}
	return *obj.Text, nil
}
