// Package server is the host's HTTP surface: search (BM25, then the reranker
// when one answers within its deadline), click logging, the web page, a
// Cohere-style /v1/rerank, document admin, the closed loop's admin
// endpoints (retrain, swap, rollback, experiments) and its /models page,
// health and Prometheus metrics. Every error is a JSON object {"error": "..."} with a 4xx or 5xx status.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/replica"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Options wire a Server.
type Options struct {
	Index *search.Index
	// Reranker orders BM25's top K; nil serves BM25 order and answers
	// /v1/rerank with 503.
	Reranker contract.Reranker
	// Log records searches and clicks; nil records nothing (benchmarks).
	Log     *clicklog.Store
	Config  configs.Config
	Logger  *slog.Logger
	Metrics *Metrics // nil: a fresh set
	// Loop retrains, swaps and runs experiments (admin endpoints, /models);
	// nil when no reranker is configured: those endpoints answer 503.
	Loop *retrain.Controller
	// Experiment says which experiment searches take part in now (nil: none
	// ever); defaults to Loop.
	Experiment RunningExperiment
	// Fusion says how a version's scores are fused with BM25's (e.g.
	// Loop.Fusion); nil, or false for a version: the model's order alone.
	Fusion func(version string) (fusion.Params, bool)
	// Cascade is the name of the cascade model loaded in the Reranker
	// (host/app's Host.Cascade); empty: no cascade stage.
	Cascade string
	// Follower keeps this host on a primary's serving version
	// (replica.primary); nil: this host is its own primary.
	Follower *replica.Follower
}

// RunningExperiment is all a search needs of the experiments: the one
// running now, or nil.
type RunningExperiment interface {
	Experiment() *interleave.Experiment
}

// Server serves the HTTP API. Create it with New.
type Server struct {
	ix       *search.Index
	reranker contract.Reranker
	log      *clicklog.Store
	cfg      configs.Config
	logger   *slog.Logger
	metrics  *Metrics
	mux      *http.ServeMux
	pending  sync.WaitGroup // impressions answered before their commit
	loop     *retrain.Controller
	running  RunningExperiment
	fusion   func(version string) (fusion.Params, bool)
	cascade  string
	clicks   *clickLimiter
	follower *replica.Follower
	roster   replica.Roster // followers of this host
}

// New builds a Server.
func New(o Options) (*Server, error) {
	if o.Index == nil {
		return nil, errors.New("server: no index")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Experiment == nil && o.Loop != nil {
		o.Experiment = o.Loop
	}
	s := &Server{running: o.Experiment, ix: o.Index, reranker: o.Reranker, log: o.Log, cfg: o.Config, logger: o.Logger, metrics: o.Metrics, mux: http.NewServeMux(), loop: o.Loop, fusion: o.Fusion, cascade: o.Cascade,
		follower: o.Follower, clicks: newClickLimiter(o.Config.HTTP.ClickRate, o.Config.HTTP.ClickBurst)}
	if rc, ok := o.Reranker.(restartCounter); ok {
		s.metrics.watchRestarts(rc)
	}
	s.metrics.watchDocs(s.ix.Count)

	if s.cfg.RerankOnly {
		s.route("/", "rerank_only", handleRerankOnly)
	} else {
		s.route("/search", "search", sameSite(s.handleSearch), http.MethodGet, http.MethodPost)
		s.route("/click", "click", sameSite(s.handleClick), http.MethodGet, http.MethodPost)
		s.route("/docs/{id...}", "docs", s.handleDocJSON, http.MethodGet)
		s.route("/doc/{id...}", "doc_page", s.handleDocPage, http.MethodGet)
		s.route("/admin/docs", "admin_docs", s.bearer(s.cfg.AdminToken, "admin_token", true, s.handleAdminPut), http.MethodPost)
		s.route("/admin/docs/{id...}", "admin_doc", s.bearer(s.cfg.AdminToken, "admin_token", true, s.handleAdminDoc), http.MethodPut, http.MethodDelete)
		s.route("/static/", "static", staticHandler().ServeHTTP, http.MethodGet)
		s.route("/", "page", s.handlePage) // checks its own method: other paths get a 404
	}
	s.route("/v1/rerank", "v1_rerank", s.bearer(s.cfg.Rerank.APIKey, "rerank.api_key", false, s.handleCohereRerank), http.MethodPost)
	s.routeLoop()
	s.route("/healthz", "healthz", s.handleHealthz, http.MethodGet)
	s.route("/readyz", "readyz", s.handleReadyz, http.MethodGet)
	metrics := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	s.route("/metrics", "metrics", metrics.ServeHTTP, http.MethodGet)
	return s, nil
}

// handleRerankOnly answers what a rerank-only host does not serve: searches,
// clicks, documents and the page belong to the cluster in front of it.
func handleRerankOnly(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("%s: this host serves only /v1/rerank, /admin/..., /models, /healthz, /readyz and /metrics (rerank_only): search through the cluster", r.URL.Path))
}

// Handler is the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Drain waits for impressions answered before their commit to settle; call
// it after the HTTP server has shut down and before closing the click log.
func (s *Server) Drain() { s.pending.Wait() }

// route registers h at pattern for the given methods (none: any), with metrics, a
// request log line, a JSON 405 for other methods, and a JSON 500 on panic.
func (s *Server) route(pattern, name string, h http.HandlerFunc, methods ...string) {
	allow := strings.Join(append(methods, http.MethodHead), ", ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.logger.Error("panic", "handler", name, "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "internal error")
				}
			}
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(name, fmt.Sprint(rec.code)).Inc()
			s.metrics.latency.WithLabelValues(name).Observe(d.Seconds())
			level := slog.LevelDebug
			if rec.code >= 500 {
				level = slog.LevelError
			}
			s.logger.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path,
				"status", rec.code, "duration_ms", float64(d.Microseconds())/1000)
		}()
		ok := len(methods) == 0 || r.Method == http.MethodHead && contains(methods, http.MethodGet) || contains(methods, r.Method)
		if !ok {
			rec.Header().Set("Allow", allow)
			writeError(rec, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here; use %s", r.Method, strings.Join(methods, " or ")))
			return
		}
		h(rec, r)
	})
}

// sameSite refuses what a browser marks as sent by another site (an image,
// a form or a script on any web page): searches and clicks become training
// data, so only this site's page and non-browser clients may log them.
func sameSite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			writeError(w, http.StatusForbidden, "cross-site requests may not search or click here: searches and clicks are training data")
			return
		}
		h(w, r)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// bearer guards h with "Authorization: Bearer <token>". An empty token
// disables the route (required) or leaves it open (not required).
func (s *Server) bearer(token, key string, required bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			if required {
				writeError(w, http.StatusForbidden, "admin endpoints are disabled: set "+key+" (or RERANK_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))+")")
				return
			}
			h(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rerank"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rerank", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		h(w, r)
	}
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// handleReadyz is ready when the index answers. The reranker's state is
// reported but does not make the host unready: searches fall back to BM25.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"ready": true, "click_log": s.log != nil, "reranker": "not configured"}
	n, err := s.ix.Count()
	if err != nil {
		out["ready"] = false
		out["error"] = "index: " + err.Error()
		writeJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	out["index_documents"] = n
	if s.reranker != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Rerank.Deadline)
		defer cancel()
		if err := s.reranker.Health(ctx); err != nil {
			out["reranker"] = "unavailable: " + err.Error()
		} else {
			out["reranker"] = "ok"
		}
	}
	if s.follower != nil {
		// Out of step with the primary, a replica still serves its version.
		out["replica"] = s.follower.Status()
	}
	writeJSON(w, http.StatusOK, out)
}

// apiError is an error with the status to answer it with.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers err: an *apiError with its status, anything else as a 500
// whose details go to the log, not the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.code, ae.msg)
		return
	}
	s.logger.Error("request failed", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error: response not encodable"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// readJSON decodes r's body, at most http.max_body_bytes of valid UTF-8
// holding exactly one JSON value, into v. strict rejects unknown fields.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	// A web page can make its visitors' browsers POST text/plain or form
	// bodies anywhere without asking; application/json needs permission.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &apiError{http.StatusUnsupportedMediaType, "send the body as JSON with Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.HTTP.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d-byte limit", tooBig.Limit)}
	}
	if err != nil {
		return badRequest("reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty request body: send a JSON object")
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON: %s", jsonProblem(err, body))
	}
	if dec.More() {
		return badRequest("malformed JSON: more than one value in the body")
	}
	return nil
}

// jsonProblem says what is wrong with a body in terms a client can act on.
func jsonProblem(err error, body []byte) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s, got %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("want %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "body ends in the middle of a value"
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return goKind
}
