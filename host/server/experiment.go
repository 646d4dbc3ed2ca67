package server

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"sync"

	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/search"
)

// SearchExperiment says how a search took part in an experiment.
type SearchExperiment struct {
	ID     string `json:"id"`
	Method string `json:"method"` // interleave or split
	// Arm is "interleaved" for an interleaved search, else the user's arm of
	// a split test: "control" or "treatment".
	Arm       string `json:"arm"`
	Control   string `json:"control"`   // version
	Treatment string `json:"treatment"` // version
}

// ranked is the rerank stage's outcome.
type ranked struct {
	hits    []search.Hit
	scores  map[string]float64         // one version's scores; nil when not reranked or interleaved
	teams   map[string]interleave.Team // interleaved: who contributed each hit
	version string                     // the one version that ranked the hits
	// experiment and arm (the click log's label) are set for a search in an experiment.
	experiment *SearchExperiment
	arm        string
}

// rankStage reranks BM25's top window: with the serving version, or as the
// running experiment says. A split test serves the user's (else the
// session's) arm; an interleaving experiment reranks with both versions and
// merges them by team draft. traffic decides which users (split) or searches
// (interleave) take part; the rest see the serving version.
func (s *Server) rankStage(ctx context.Context, p params, searchID string, hits []search.Hit, window int) ranked {
	if s.running != nil {
		if e := s.running.Experiment(); e != nil {
			switch e.Method {
			case interleave.MethodSplit:
				unit := p.user
				if unit == "" {
					unit = p.session
				}
				if arm, ok := interleave.Assign(e.ID, unit, e.Traffic); ok {
					version := e.Control
					if arm == interleave.Treatment {
						version = e.Treatment
					}
					// The arm is logged even when the reranker fails: that
					// is what the arm's users got.
					rk := s.rerankWith(ctx, p.query, hits, window, version)
					rk.experiment, rk.arm = info(e, string(arm)), interleave.ArmLabel(e.ID, string(arm))
					return rk
				}
			case interleave.MethodInterleave:
				if _, ok := interleave.Assign(e.ID, searchID, e.Traffic); ok {
					return s.interleaved(ctx, p.query, searchID, e, hits, window)
				}
			}
		}
	}
	return s.rerankWith(ctx, p.query, hits, window, "")
}

func (s *Server) rerankWith(ctx context.Context, query string, hits []search.Hit, window int, model string) ranked {
	h, sc, v := s.rerank(ctx, query, hits, window, model)
	return ranked{hits: h, scores: sc, version: v}
}

// interleaved reranks with both versions at once and merges the two lists
// by team-draft interleaving, its coin seeded by the search id. If one
// version fails, the other's ranking answers and the search is not counted
// in the experiment (it is not interleaved); if both fail, BM25 order.
func (s *Server) interleaved(ctx context.Context, query, searchID string, e *interleave.Experiment, hits []search.Hit, window int) ranked {
	var a, b ranked
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = s.rerankWith(ctx, query, hits, window, e.Control) }()
	go func() { defer wg.Done(); b = s.rerankWith(ctx, query, hits, window, e.Treatment) }()
	wg.Wait()
	switch {
	case a.scores == nil && b.scores == nil:
		return ranked{hits: hits}
	case b.scores == nil:
		return a
	case a.scores == nil:
		return b
	}
	h := fnv.New64a()
	h.Write([]byte(searchID))
	picks := interleave.TeamDraft(ids(a.hits), ids(b.hits), 0, rand.New(rand.NewPCG(h.Sum64(), 0x7ea4)))
	byID := make(map[string]search.Hit, len(hits))
	for _, x := range hits {
		byID[x.ID] = x
	}
	out := ranked{hits: make([]search.Hit, len(picks)), teams: make(map[string]interleave.Team, len(picks)),
		experiment: info(e, interleave.ArmInterleaved), arm: interleave.ArmLabel(e.ID, interleave.ArmInterleaved)}
	for i, pk := range picks {
		out.hits[i] = byID[pk.DocID]
		out.teams[pk.DocID] = pk.Team
	}
	return out
}

func ids(hits []search.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

func info(e *interleave.Experiment, arm string) *SearchExperiment {
	return &SearchExperiment{ID: e.ID, Method: string(e.Method), Arm: arm, Control: e.Control, Treatment: e.Treatment}
}
