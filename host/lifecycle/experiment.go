package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// ExperimentSpec is what `rerank experiment start` asks for. A zero Rule
// takes the configuration's experiment.* stopping rule.
type ExperimentSpec struct {
	Control   string              `json:"control"`
	Treatment string              `json:"treatment"`
	Method    interleave.Method   `json:"method"`
	Traffic   float64             `json:"traffic"`
	Rule      interleave.StopRule `json:"rule"`
}

// ExperimentView is an experiment with its tally: live for a running one,
// the recorded one for a stopped one.
type ExperimentView struct {
	interleave.Experiment
	// Live is the tally now of a running experiment.
	Live *interleave.Result `json:"live,omitempty"`
}

// Experiment is the running experiment searches are routed by, or nil.
func (m *Manager) Experiment() *interleave.Experiment { return m.running.Load() }

// StartExperiment serves both versions from the plugin (the one not serving
// is loaded beside the serving model) and starts routing searches: every
// interleaved search merges both rankings by team draft, or each user of a
// split test sees their arm's version.
func (m *Manager) StartExperiment(ctx context.Context, s ExperimentSpec) (interleave.Experiment, error) {
	m.expMu.Lock()
	defer m.expMu.Unlock()
	if s.Rule == (interleave.StopRule{}) {
		x := m.cfg.Experiment
		s.Rule = interleave.StopRule{MinSearches: x.MinSearches, Alpha: x.Alpha, MaxSearches: x.MaxSearches}
	}
	if e, ok, err := m.exps.Running(); err != nil {
		return e, err
	} else if ok {
		return e, fmt.Errorf("%w: %s (stop it first)", interleave.ErrRunning, e.ID)
	}
	e := interleave.Experiment{Control: s.Control, Treatment: s.Treatment, Method: s.Method, Traffic: s.Traffic, Rule: s.Rule}
	if err := m.loadArms(ctx, e); err != nil {
		return e, err
	}
	e, err := m.exps.Start(e)
	if err != nil {
		return e, err
	}
	m.running.Store(&e)
	m.logger.Info("experiment started", "id", e.ID, "method", e.Method, "control", e.Control, "treatment", e.Treatment, "traffic", e.Traffic)
	return e, nil
}

// loadArms makes sure the plugin holds both versions of e. The serving
// version is never loaded again as a non-serving one: the plugin client
// replays loads after a crash, and that replay must keep it serving.
func (m *Manager) loadArms(ctx context.Context, e interleave.Experiment) error {
	if e.Control == "" || e.Treatment == "" || e.Control == e.Treatment {
		return fmt.Errorf("experiment: need two different versions, got control %q and treatment %q", e.Control, e.Treatment)
	}
	loaded := map[string]bool{}
	if infos, err := m.plugin.Info(ctx); err == nil {
		for _, in := range infos {
			loaded[in.Version] = true
		}
	}
	for _, id := range []string{e.Control, e.Treatment} {
		v, err := m.reg.Get(id)
		if err != nil {
			return err
		}
		if v.Status == registry.Serving || loaded[id] {
			continue
		}
		if _, err := os.Stat(filepath.Join(v.Checkpoint, checkpoint.WeightsFile)); err != nil {
			return fmt.Errorf("version %s: checkpoint %s: %w", id, v.Checkpoint, err)
		}
		if _, err := m.plugin.Load(ctx, contract.LoadRequest{Path: v.Checkpoint, Version: v.ID, CheckpointHash: v.CheckpointHash}); err != nil {
			return fmt.Errorf("loading version %s beside the serving model: %w", id, err)
		}
	}
	return nil
}

// Experiments lists every experiment, oldest first, the running one with its
// live tally.
func (m *Manager) Experiments(ctx context.Context) ([]ExperimentView, error) {
	all, err := m.exps.List()
	if err != nil {
		return nil, err
	}
	out := make([]ExperimentView, len(all))
	for i, e := range all {
		if out[i], err = m.view(ctx, e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ExperimentStatus tallies experiment id (empty: the running one) from the
// click log. With experiment.auto_stop, a running experiment whose stopping
// rule has its answer is stopped here.
func (m *Manager) ExperimentStatus(ctx context.Context, id string) (ExperimentView, error) {
	e, err := m.experiment(id)
	if err != nil {
		return ExperimentView{}, err
	}
	v, err := m.view(ctx, e)
	if err != nil || v.Live == nil || !v.Live.Verdict.Stop || !m.cfg.Experiment.AutoStop {
		return v, err
	}
	stopped, err := m.StopExperiment(ctx, e.ID, "stopping rule: "+v.Live.Verdict.Reason)
	return ExperimentView{Experiment: stopped}, err
}

// StopExperiment ends experiment id (empty: the running one), recording its
// final tally and why; searches go back to the serving version.
func (m *Manager) StopExperiment(ctx context.Context, id, reason string) (interleave.Experiment, error) {
	m.expMu.Lock()
	defer m.expMu.Unlock()
	e, err := m.experiment(id)
	if err != nil {
		return e, err
	}
	if e.Status != interleave.Running {
		return e, fmt.Errorf("experiment %s is already stopped (%s)", e.ID, e.StopReason)
	}
	res, err := interleave.Evaluate(ctx, m.log, e, m.cfg.Search.DefaultSize)
	if err != nil {
		return e, err
	}
	if reason == "" {
		reason = "stopped by hand: " + res.Verdict.Reason
	}
	if cur := m.running.Load(); cur != nil && cur.ID == e.ID {
		m.running.Store(nil)
	}
	e, err = m.exps.Stop(e.ID, reason, &res)
	if err != nil {
		return e, err
	}
	// The arms stay loaded only while they serve.
	serving, _, err := m.reg.Serving()
	if err != nil {
		return e, err
	}
	for _, id := range []string{e.Control, e.Treatment} {
		if id != serving.ID {
			m.Unload(ctx, id)
		}
	}
	m.logger.Info("experiment stopped", "id", e.ID, "reason", reason)
	return e, nil
}

func (m *Manager) experiment(id string) (interleave.Experiment, error) {
	if id != "" {
		return m.exps.Get(id)
	}
	e, ok, err := m.exps.Running()
	if err == nil && !ok {
		err = fmt.Errorf("no experiment is running: %w", interleave.ErrNotFound)
	}
	return e, err
}

func (m *Manager) view(ctx context.Context, e interleave.Experiment) (ExperimentView, error) {
	v := ExperimentView{Experiment: e}
	if e.Status == interleave.Running {
		res, err := interleave.Evaluate(ctx, m.log, e, m.cfg.Search.DefaultSize)
		if err != nil {
			return v, err
		}
		v.Live = &res
	}
	return v, nil
}
