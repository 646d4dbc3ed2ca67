package server

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/rerankloop/rerank/evalharness/gate"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/retrain"
)

var modelsPage = template.Must(template.New("models.html").Funcs(template.FuncMap{
	"metric": func(m map[string]float64, k string) string {
		if v, ok := m[k]; ok {
			return fmt.Sprintf("%.4f", v)
		}
		return "-"
	},
	"gate": func(v registry.Version) *gate.Decision {
		d, _ := v.GateDecision()
		return d
	},
	"result": func(v lifecycle.ExperimentView) *interleave.Result {
		if v.Live != nil {
			return v.Live
		}
		return v.Result
	},
	"percent": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
}).ParseFS(webFS, "web/models.html"))

// handleModelsPage shows the model history with metrics and gate decisions,
// the swaps, running and finished experiments (newest first) and the last
// retrain. It is read-only and, like /metrics, needs no token.
func (s *Server) handleModelsPage(w http.ResponseWriter, r *http.Request) {
	m, err := s.loop.Models(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	exps, err := s.loop.Experiments(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	slices.Reverse(m.Versions)
	slices.Reverse(m.Swaps)
	slices.Reverse(exps)
	data := struct {
		lifecycle.Models
		Experiments []lifecycle.ExperimentView
		Retrain     *retrain.Status
		Now         string
	}{Models: m, Experiments: exps, Now: time.Now().Format("2006-01-02 15:04:05")}
	if st, ok := s.loop.RetrainStatus(); ok {
		data.Retrain = &st
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := modelsPage.Execute(w, data); err != nil {
		s.logger.Error("models page", "err", err)
	}
}
