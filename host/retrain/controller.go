// Package retrain is the host's retrain pipeline: it reads the click log's
// window since the serving version's, builds training pairs from the clicks,
// fine-tunes the serving checkpoint in the plugin, registers the candidate
// and hands it to the lifecycle (package lifecycle) to be judged on held-out
// queries and swapped in only when the gate accepts; on a schedule, too.
//
// A Controller is the closed loop of one running host: the pipeline around
// its lifecycle.Manager, whose methods (swap, rollback, experiments) it
// offers as its own. The admin API, `rerank retrain`, the schedule and
// `rerank demo` all go through it, so there is one implementation of each
// step.
package retrain

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

// Options wire a Controller: its lifecycle's, and the trainer. Every field
// is required.
type Options struct {
	lifecycle.Options
	// Trainer fine-tunes in the plugin process (*pluginclient.Client).
	Trainer contract.Trainer
}

// Errors to branch on with errors.Is.
var (
	ErrBusy            = errors.New("a retrain is already running")
	ErrNotEnoughClicks = errors.New("not enough clicks to retrain")
)

// Controller runs the loop. Its methods are safe for concurrent use.
type Controller struct {
	*lifecycle.Manager

	cfg     configs.Config
	ix      *search.Index
	log     *clicklog.Store
	reg     *registry.Registry
	plugin  contract.Reranker
	trainer contract.Trainer
	logger  *slog.Logger

	jobMu sync.Mutex
	job   *job // the running or last retrain
	sched scheduleState

	ctx    context.Context // ends with Close: stops a running retrain
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes the loop of a host whose plugin already serves the registry's
// serving version (see lifecycle.Bootstrap).
func New(ctx context.Context, o Options) (*Controller, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Trainer == nil {
		return nil, errors.New("retrain: a trainer is required")
	}
	m, err := lifecycle.New(ctx, o.Options)
	if err != nil {
		return nil, err
	}
	c := &Controller{Manager: m, cfg: o.Config, ix: o.Index, log: o.Log, reg: o.Registry, plugin: o.Plugin, trainer: o.Trainer, logger: o.Logger}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close cancels a running retrain and waits for it to end.
func (c *Controller) Close() {
	c.cancel()
	c.wg.Wait()
}
