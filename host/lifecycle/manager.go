// Package lifecycle is the life of model versions on a running host: which
// version serves (the first start, swaps, rollbacks), how a version is
// judged (held-out queries, scored as it would serve, fused with BM25, and
// the gate), and online experiments (team-draft interleaving or a split by
// user) between two registered versions served side by side by the one
// plugin process. The retrain pipeline (package lifecycle) makes candidates
// and hands them to it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Options wire a Manager. Every field is required.
type Options struct {
	Config      configs.Config
	Index       *search.Index
	Log         *clicklog.Store
	Registry    *registry.Registry
	Experiments *interleave.Experiments
	// Plugin is the model process (*pluginclient.Client): it reranks with
	// any loaded version and loads versions beside the serving one.
	Plugin contract.Reranker
	Logger *slog.Logger
}

// ErrNoServing: no model version is serving.
var ErrNoServing = errors.New("no model version is serving")

// CandidateModel is the name a candidate is loaded under in the plugin while
// it is evaluated, and unloaded once judged, so candidates do not pile up in
// memory. A promoted candidate is loaded again under its version id.
const CandidateModel = "retrain-candidate"

// Manager runs the lifecycle. Its methods are safe for concurrent use.
type Manager struct {
	cfg    configs.Config
	ix     *search.Index
	log    *clicklog.Store
	reg    *registry.Registry
	exps   *interleave.Experiments
	plugin contract.Reranker
	logger *slog.Logger

	// running is the experiment searches are routed by (nil: none).
	running atomic.Pointer[interleave.Experiment]
	expMu   sync.Mutex // serialises experiment start and stop

	evals evalCache

	fusionMu sync.Mutex
	fusions  map[string]*fusion.Params // by version; nil: the model alone
}

// New makes the manager of a host whose plugin already serves the
// registry's serving version (see Bootstrap), and resumes a running
// experiment: its versions are loaded and searches are routed again.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Index == nil || o.Log == nil || o.Registry == nil || o.Experiments == nil || o.Plugin == nil {
		return nil, errors.New("lifecycle: index, click log, registry, experiments and plugin are all required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: o.Config, ix: o.Index, log: o.Log, reg: o.Registry, exps: o.Experiments, plugin: o.Plugin, logger: o.Logger}
	e, ok, err := m.exps.Running()
	if err != nil {
		return nil, err
	}
	if ok {
		if err := m.loadArms(ctx, e); err != nil {
			return nil, fmt.Errorf("resuming experiment %s: %w (stop it with rerank experiment stop)", e.ID, err)
		}
		m.running.Store(&e)
		m.logger.Info("experiment resumed", "id", e.ID, "method", e.Method, "control", e.Control, "treatment", e.Treatment)
	}
	return m, nil
}

// Fusion is how a version's scores are fused with BM25's when it ranks a
// search or is evaluated: the registry's record (see registry.Register);
// false for the model alone. Looked up once per version.
func (m *Manager) Fusion(version string) (fusion.Params, bool) {
	m.fusionMu.Lock()
	defer m.fusionMu.Unlock()
	p, ok := m.fusions[version]
	if !ok {
		v, err := m.reg.Get(version)
		if err != nil {
			m.logger.Warn("fusion of an unknown version: the model alone ranks", "version", version, "err", err)
		}
		p = v.Fusion
		if m.fusions == nil {
			m.fusions = map[string]*fusion.Params{}
		}
		m.fusions[version] = p
	}
	if p == nil {
		return fusion.Params{}, false
	}
	return *p, true
}

// Bootstrap settles which version a starting host serves: the registry's
// serving version, so swaps and rollbacks survive restarts. On the first
// start (nothing serving), modelPath is registered as the base version, or
// found among the registered ones by its checkpoint hash, and made serving;
// the plugin then loads what this returns.
func Bootstrap(reg *registry.Registry, modelPath string, logger *slog.Logger) (registry.Version, error) {
	v, ok, err := reg.Serving()
	if err != nil {
		return v, err
	}
	if ok {
		if _, err := os.Stat(filepath.Join(v.Checkpoint, checkpoint.WeightsFile)); err != nil {
			return v, fmt.Errorf("serving version %s: checkpoint %s is missing (%v): restore it, or roll back to another version with `rerank rollback`", v.ID, v.Checkpoint, err)
		}
		if abs, _ := filepath.Abs(modelPath); abs != v.Checkpoint && logger != nil {
			logger.Info("serving the registry's version; rerank.model_path only names the first base model", "version", v.ID, "checkpoint", v.Checkpoint)
		}
		return v, nil
	}
	if modelPath == "" {
		return v, fmt.Errorf("%w: set rerank.model_path to the base checkpoint", ErrNoServing)
	}
	abs, err := filepath.Abs(modelPath)
	if err != nil {
		return v, err
	}
	hash, err := checkpoint.Hash(abs)
	if err != nil {
		return v, fmt.Errorf("rerank.model_path %s: %w", modelPath, err)
	}
	all, err := reg.List()
	if err != nil {
		return v, err
	}
	found := false
	for _, old := range all {
		if old.CheckpointHash == hash {
			v, found = old, true
		}
	}
	if !found {
		if v, err = reg.Register(registry.Version{Checkpoint: abs, CheckpointHash: hash, Note: "base model (rerank.model_path)"}); err != nil {
			return v, err
		}
	}
	if _, err := reg.SetServing(v.ID, "base model at first start", nil); err != nil {
		return v, err
	}
	return reg.Get(v.ID)
}

// Version is one registered version.
func (m *Manager) Version(id string) (registry.Version, error) { return m.reg.Get(id) }

// Serving is the serving version; ErrNoServing when none serves.
func (m *Manager) Serving() (registry.Version, error) {
	v, ok, err := m.reg.Serving()
	if err == nil && !ok {
		err = ErrNoServing
	}
	return v, err
}

// Models is the registry and what the plugin holds.
type Models struct {
	Serving  string             `json:"serving,omitempty"`
	Versions []registry.Version `json:"versions"`
	Swaps    []registry.Swap    `json:"swaps"`
	// Loaded are the versions the plugin holds now; empty when it is down.
	Loaded []contract.ModelInfo `json:"loaded"`
	// PluginError says why Loaded is empty, when it is.
	PluginError string `json:"plugin_error,omitempty"`
}

// Models lists every version, the swap history and the loaded models.
func (m *Manager) Models(ctx context.Context) (Models, error) {
	var out Models
	var err error
	if out.Versions, err = m.reg.List(); err != nil {
		return out, err
	}
	if out.Swaps, err = m.reg.History(); err != nil {
		return out, err
	}
	for _, v := range out.Versions {
		if v.Status == registry.Serving {
			out.Serving = v.ID
		}
	}
	if out.Loaded, err = m.plugin.Info(ctx); err != nil {
		out.PluginError = err.Error()
	}
	return out, nil
}

// Swap makes version serve (a promotion): the plugin loads and warms it
// beside the serving model and switches atomically; the registry records it
// only once the plugin serves it.
func (m *Manager) Swap(ctx context.Context, version, reason string) (registry.Swap, error) {
	if reason == "" {
		reason = "swap through the admin API"
	}
	if _, err := m.reg.SetServing(version, reason, m.Loader(ctx)); err != nil {
		return registry.Swap{}, err
	}
	return m.lastSwap()
}

// Rollback returns service to version, or without one to the version that
// served before the current one.
func (m *Manager) Rollback(ctx context.Context, version, reason string) (registry.Swap, error) {
	if reason == "" {
		reason = "rollback through the admin API"
	}
	return m.reg.Rollback(version, reason, m.Loader(ctx))
}

func (m *Manager) lastSwap() (registry.Swap, error) {
	h, err := m.reg.History()
	if err != nil || len(h) == 0 {
		return registry.Swap{}, err
	}
	return h[len(h)-1], nil
}

// Loader is the registry's live switch: the plugin loads v as the serving
// model. The engine frees the model it replaces, so a running experiment's
// arm that was serving is loaded again beside it.
func (m *Manager) Loader(ctx context.Context) registry.Loader {
	return func(v registry.Version) error {
		if _, err := m.plugin.Load(ctx, contract.LoadRequest{Path: v.Checkpoint, Version: v.ID, Serve: true, CheckpointHash: v.CheckpointHash}); err != nil {
			return err
		}
		m.logger.Info("serving model swapped", "version", v.ID, "checkpoint", v.Checkpoint)
		if e := m.running.Load(); e != nil {
			if err := m.loadArms(ctx, *e); err != nil {
				m.logger.Error("experiment arm not reloaded after the swap; its searches fall back", "experiment", e.ID, "err", err)
			}
		}
		return nil
	}
}
