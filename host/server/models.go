package server

import (
	"errors"
	"net/http"

	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/replica"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/plugin/contract"
)

// routeLoop registers the closed loop's admin endpoints (bearer admin_token)
// and the /models page.
func (s *Server) routeLoop() {
	admin := func(h http.HandlerFunc) http.HandlerFunc {
		return s.bearer(s.cfg.AdminToken, "admin_token", true, s.needLoop(h))
	}
	s.route("/admin/retrain", "admin_retrain", admin(s.primaryOnly(s.handleRetrain)), http.MethodGet, http.MethodPost, http.MethodDelete)
	s.route("/admin/models", "admin_models", admin(s.handleModels), http.MethodGet)
	s.route("/admin/swap", "admin_swap", admin(s.primaryOnly(s.handleSwap)), http.MethodPost)
	s.route("/admin/rollback", "admin_rollback", admin(s.primaryOnly(s.handleRollback)), http.MethodPost)
	s.route("/admin/experiments", "admin_experiments", admin(s.primaryOnly(s.handleExperiments)), http.MethodGet, http.MethodPost)
	s.route("/admin/experiments/{id}", "admin_experiment", admin(s.handleExperiment), http.MethodGet)
	s.route("/admin/experiments/{id}/stop", "admin_experiment_stop", admin(s.primaryOnly(s.handleExperimentStop)), http.MethodPost)
	s.routeReplica(admin)
	s.route("/models", "models_page", s.needLoop(s.handleModelsPage), http.MethodGet)
}

func (s *Server) needLoop(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.loop == nil {
			writeError(w, http.StatusServiceUnavailable, "no reranker is configured (rerank.model_path): there are no models to retrain, swap or compare")
			return
		}
		h(w, r)
	}
}

// loopFail answers an error of the loop with the status it calls for. The
// admin is trusted: server errors carry their message too.
func (s *Server) loopFail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		code = ae.code
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, interleave.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, registry.ErrState), errors.Is(err, registry.ErrNoPrevious), errors.Is(err, retrain.ErrBusy),
		errors.Is(err, interleave.ErrRunning), errors.Is(err, lifecycle.ErrNoServing):
		code = http.StatusConflict
	case errors.Is(err, registry.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, contract.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	if code >= 500 {
		s.logger.Error("admin request failed", "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err.Error())
}

// optionalJSON decodes a body if there is one; an empty body leaves v as is.
func (s *Server) optionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return s.readJSON(w, r, v, true)
}

// handleRetrain: POST starts a run in the background (202), GET shows the
// running or last one, DELETE cancels the running one.
func (s *Server) handleRetrain(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var req struct {
			Trigger string `json:"trigger"`
		}
		if err := s.optionalJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		if req.Trigger == "" {
			req.Trigger = "admin API"
		}
		st, err := s.loop.StartRetrain(req.Trigger)
		if err != nil {
			s.loopFail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, st)
	case http.MethodDelete:
		if !s.loop.CancelRetrain() {
			writeError(w, http.StatusConflict, "no retrain is running")
			return
		}
		st, _ := s.loop.RetrainStatus()
		writeJSON(w, http.StatusOK, st)
	default:
		st, ok := s.loop.RetrainStatus()
		if !ok {
			writeError(w, http.StatusNotFound, "no retrain has run since the host started: POST /admin/retrain starts one")
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}

// modelsView is GET /admin/models: the registry, and who follows whom.
type modelsView struct {
	lifecycle.Models
	// Replicas are the followers that polled this host (a primary).
	Replicas []replica.Report `json:"replicas,omitempty"`
	// Replica is this host's state as a follower.
	Replica *replica.Status `json:"replica,omitempty"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	m, err := s.loop.Models(r.Context())
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	out := modelsView{Models: m, Replicas: s.roster.List()}
	if s.follower != nil {
		st := s.follower.Status()
		out.Replica = &st
	}
	writeJSON(w, http.StatusOK, out)
}

// swapRequest is the body of POST /admin/swap and /admin/rollback.
type swapRequest struct {
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// handleSwap makes a registered version serve: the plugin loads and warms it
// beside the serving model, then switches atomically.
func (s *Server) handleSwap(w http.ResponseWriter, r *http.Request) {
	var req swapRequest
	if err := s.readJSON(w, r, &req, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Version == "" {
		s.fail(w, r, badRequest("version is missing: name the registered version to serve"))
		return
	}
	sw, err := s.loop.Swap(r.Context(), req.Version, req.Reason)
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sw)
}

// handleRollback returns service to a version that served before: the one
// named, or without one the previous.
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	var req swapRequest
	if err := s.optionalJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	sw, err := s.loop.Rollback(r.Context(), req.Version, req.Reason)
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sw)
}

// experimentRequest is the body of POST /admin/experiments. Zero rule
// fields take the configuration's experiment.* values.
type experimentRequest struct {
	Control     string   `json:"control"`
	Treatment   string   `json:"treatment"`
	Method      string   `json:"method"`
	Traffic     *float64 `json:"traffic"`
	MinSearches *int     `json:"min_searches"`
	Alpha       *float64 `json:"alpha"`
	MaxSearches *int     `json:"max_searches"`
}

// defaultTraffic is the share of users (split) or searches (interleave) in
// an experiment when the request gives none.
const defaultTraffic = 0.5

// handleExperiments: GET lists every experiment (the running one with its
// live tally), POST starts one.
func (s *Server) handleExperiments(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		all, err := s.loop.Experiments(r.Context())
		if err != nil {
			s.loopFail(w, r, err)
			return
		}
		if all == nil {
			all = []lifecycle.ExperimentView{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"experiments": all})
		return
	}
	var req experimentRequest
	if err := s.readJSON(w, r, &req, true); err != nil {
		s.fail(w, r, err)
		return
	}
	spec, err := req.spec(s.cfg.Experiment.MinSearches, s.cfg.Experiment.Alpha, s.cfg.Experiment.MaxSearches)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.loop.StartExperiment(r.Context(), spec)
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, e)
}

func (req experimentRequest) spec(minSearches int, alpha float64, maxSearches int) (lifecycle.ExperimentSpec, error) {
	sp := lifecycle.ExperimentSpec{Control: req.Control, Treatment: req.Treatment, Method: interleave.Method(req.Method), Traffic: defaultTraffic}
	switch {
	case req.Control == "" || req.Treatment == "":
		return sp, badRequest("control and treatment are required: the two registered versions to compare")
	case req.Control == req.Treatment:
		return sp, badRequest("control and treatment are both %s: compare two different versions", req.Control)
	case sp.Method != interleave.MethodInterleave && sp.Method != interleave.MethodSplit:
		return sp, badRequest("method %q: want interleave or split", clip(req.Method, 40))
	}
	if req.Traffic != nil {
		sp.Traffic = *req.Traffic
	}
	if !(sp.Traffic > 0 && sp.Traffic <= 1) {
		return sp, badRequest("traffic %v: want a share of traffic in (0, 1]", sp.Traffic)
	}
	sp.Rule = interleave.StopRule{MinSearches: minSearches, Alpha: alpha, MaxSearches: maxSearches}
	if req.MinSearches != nil {
		sp.Rule.MinSearches = *req.MinSearches
	}
	if req.Alpha != nil {
		sp.Rule.Alpha = *req.Alpha
	}
	if req.MaxSearches != nil {
		sp.Rule.MaxSearches = *req.MaxSearches
	}
	if err := sp.Rule.Check(); err != nil {
		return sp, badRequest("%v", err)
	}
	return sp, nil
}

// experimentID reads {id}; "current" names the running experiment.
func experimentID(r *http.Request) string {
	id := r.PathValue("id")
	if id == "current" {
		return ""
	}
	return id
}

// handleExperiment shows one experiment ("current": the running one) with
// its tally; with experiment.auto_stop this is also where a running
// experiment whose stopping rule has its answer stops.
func (s *Server) handleExperiment(w http.ResponseWriter, r *http.Request) {
	v, err := s.loop.ExperimentStatus(r.Context(), experimentID(r))
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleExperimentStop(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := s.optionalJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.loop.StopExperiment(r.Context(), experimentID(r), req.Reason)
	if err != nil {
		if e.ID != "" && e.Status == interleave.Stopped {
			err = &apiError{http.StatusConflict, err.Error()}
		}
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, lifecycle.ExperimentView{Experiment: e})
}
