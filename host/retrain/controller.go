// Package retrain is the host's closed loop: it retrains the reranker from the
// click log, judges the candidate against the serving version on held-out
// queries, swaps it in only when the gate accepts, rolls back on demand, and
// runs online experiments (team-draft interleaving or a split by user) between
// two registered versions served side by side by the one plugin process.
//
// A Controller holds the loop for one running host: the admin API, `rerank
// retrain`, the schedule in the configuration and `rerank demo` all go through
// it, so there is one implementation of each step.
package retrain

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

// Plugin is the model process as the loop uses it (*pluginclient.Client):
// it reranks with any loaded version, loads versions beside the serving one,
// and fine-tunes.
type Plugin interface {
	contract.Reranker
	Finetune(ctx context.Context, req contract.FinetuneRequest, progress func(contract.FinetuneProgress)) (contract.FinetuneResult, error)
}

// Options wire a Controller. Every field is required.
type Options struct {
	Config      configs.Config
	Index       *search.Index
	Log         *clicklog.Store
	Registry    *registry.Registry
	Experiments *interleave.Experiments
	Plugin      Plugin
	Logger      *slog.Logger
}

// Errors to branch on with errors.Is.
var (
	ErrBusy            = errors.New("a retrain is already running")
	ErrNotEnoughClicks = errors.New("not enough clicks to retrain")
	ErrNoServing       = errors.New("no model version is serving")
)

// Controller runs the loop. Its methods are safe for concurrent use.
type Controller struct {
	cfg    configs.Config
	ix     *search.Index
	log    *clicklog.Store
	reg    *registry.Registry
	exps   *interleave.Experiments
	plugin Plugin
	logger *slog.Logger

	// running is the experiment searches are routed by (nil: none).
	running atomic.Pointer[interleave.Experiment]
	expMu   sync.Mutex // serialises experiment start and stop

	jobMu sync.Mutex
	job   *job // the running or last retrain
	sched scheduleState

	evals evalCache

	fusionMu sync.Mutex
	fusions  map[string]*fusion.Params // by version; nil: the model alone

	ctx    context.Context // ends with Close: stops a running retrain
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes the controller of a host whose plugin already serves the
// registry's serving version (see Bootstrap), and resumes a running
// experiment: its versions are loaded and searches are routed again.
func New(ctx context.Context, o Options) (*Controller, error) {
	if o.Index == nil || o.Log == nil || o.Registry == nil || o.Experiments == nil || o.Plugin == nil {
		return nil, errors.New("retrain: index, click log, registry, experiments and plugin are all required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: o.Config, ix: o.Index, log: o.Log, reg: o.Registry, exps: o.Experiments, plugin: o.Plugin, logger: o.Logger}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	e, ok, err := c.exps.Running()
	if err != nil {
		return nil, err
	}
	if ok {
		if err := c.loadArms(ctx, e); err != nil {
			return nil, fmt.Errorf("resuming experiment %s: %w (stop it with rerank experiment stop)", e.ID, err)
		}
		c.running.Store(&e)
		c.logger.Info("experiment resumed", "id", e.ID, "method", e.Method, "control", e.Control, "treatment", e.Treatment)
	}
	return c, nil
}

// Fusion is how a version's scores are fused with BM25's when it ranks a
// search or is evaluated: the registry's record (see registry.Register);
// false for the model alone. Looked up once per version.
func (c *Controller) Fusion(version string) (fusion.Params, bool) {
	c.fusionMu.Lock()
	defer c.fusionMu.Unlock()
	p, ok := c.fusions[version]
	if !ok {
		v, err := c.reg.Get(version)
		if err != nil {
			c.logger.Warn("fusion of an unknown version: the model alone ranks", "version", version, "err", err)
		}
		p = v.Fusion
		if c.fusions == nil {
			c.fusions = map[string]*fusion.Params{}
		}
		c.fusions[version] = p
	}
	if p == nil {
		return fusion.Params{}, false
	}
	return *p, true
}

// Close cancels a running retrain and waits for it to end.
func (c *Controller) Close() {
	c.cancel()
	c.wg.Wait()
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
func (c *Controller) Models(ctx context.Context) (Models, error) {
	var m Models
	var err error
	if m.Versions, err = c.reg.List(); err != nil {
		return m, err
	}
	if m.Swaps, err = c.reg.History(); err != nil {
		return m, err
	}
	for _, v := range m.Versions {
		if v.Status == registry.Serving {
			m.Serving = v.ID
		}
	}
	if m.Loaded, err = c.plugin.Info(ctx); err != nil {
		m.PluginError = err.Error()
	}
	return m, nil
}

// Swap makes version serve (a promotion): the plugin loads and warms it
// beside the serving model and switches atomically; the registry records it
// only once the plugin serves it.
func (c *Controller) Swap(ctx context.Context, version, reason string) (registry.Swap, error) {
	if reason == "" {
		reason = "swap through the admin API"
	}
	if _, err := c.reg.SetServing(version, reason, c.loader(ctx)); err != nil {
		return registry.Swap{}, err
	}
	return c.lastSwap()
}

// Rollback returns service to version, or without one to the version that
// served before the current one.
func (c *Controller) Rollback(ctx context.Context, version, reason string) (registry.Swap, error) {
	if reason == "" {
		reason = "rollback through the admin API"
	}
	return c.reg.Rollback(version, reason, c.loader(ctx))
}

func (c *Controller) lastSwap() (registry.Swap, error) {
	h, err := c.reg.History()
	if err != nil || len(h) == 0 {
		return registry.Swap{}, err
	}
	return h[len(h)-1], nil
}

// loader is the registry's live switch: the plugin loads v as the serving
// model. The engine frees the model it replaces, so a running experiment's
// arm that was serving is loaded again beside it.
func (c *Controller) loader(ctx context.Context) registry.Loader {
	return func(v registry.Version) error {
		if _, err := c.plugin.Load(ctx, contract.LoadRequest{Path: v.Checkpoint, Version: v.ID, Serve: true, CheckpointHash: v.CheckpointHash}); err != nil {
			return err
		}
		c.logger.Info("serving model swapped", "version", v.ID, "checkpoint", v.Checkpoint)
		if e := c.running.Load(); e != nil {
			if err := c.loadArms(ctx, *e); err != nil {
				c.logger.Error("experiment arm not reloaded after the swap; its searches fall back", "experiment", e.ID, "err", err)
			}
		}
		return nil
	}
}
