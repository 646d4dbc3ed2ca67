// Package app is the host's composition root: the one place that opens the
// BM25 index, the click log, the model registry and experiments (which live
// in the click log's file), the plugin with the registry's serving version,
// and the retrain controller around them, in that order, and closes them in
// reverse. Subcommands (serve, retrain, models, demo) are thin clients of it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/lifecycle"
	"github.com/rerankloop/rerank/host/pluginclient"
	"github.com/rerankloop/rerank/host/registry"
	"github.com/rerankloop/rerank/host/replica"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
)

// CascadeModel is the name the cascade model (rerank.cascade) is loaded
// under in the plugin, beside the serving version.
const CascadeModel = "cascade"

// Options says which parts to start.
type Options struct {
	Config configs.Config
	Logger *slog.Logger // nil: discard
	// Reranker starts the plugin and the retrain controller; it needs
	// rerank.model_path (the base checkpoint, registered on the first start).
	Reranker bool
	// NoIndex leaves the BM25 index closed (model and log administration).
	NoIndex bool
	// OnLogWrite observes the click log's commits (the server's metrics).
	OnLogWrite func(clicklog.WriteStat)
}

// Host is what Open started; the fields a part was not asked for are nil.
type Host struct {
	Config      configs.Config
	Logger      *slog.Logger
	Index       *search.Index
	Log         *clicklog.Store
	Registry    *registry.Registry
	Experiments *interleave.Experiments
	Plugin      *pluginclient.Client
	Loop        *retrain.Controller
	// Cascade is the plugin's name of the loaded cascade model; empty: none.
	Cascade string
	// Follower keeps the reranker on replica.primary's serving version; nil:
	// this host owns its registry. Its Run is the caller's to start.
	Follower *replica.Follower
	closers  []func() error
}

// Open starts the parts o asks for. On error, what was started is closed.
func Open(ctx context.Context, o Options) (h *Host, err error) {
	cfg := o.Config
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Reranker && cfg.Rerank.ModelPath == "" && cfg.Replica.Primary == "" {
		return nil, errors.New("the reranker needs rerank.model_path (the base checkpoint) or replica.primary (a host to follow)")
	}
	h = &Host{Config: cfg, Logger: o.Logger}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
		}
	}()
	if !o.NoIndex {
		if err := search.SetBM25(cfg.BM25.K1, cfg.BM25.B); err != nil {
			return h, err
		}
		if h.Index, err = OpenIndex(ctx, cfg.IndexDir, cfg.RerankOnly); err != nil {
			return h, err
		}
		h.onClose(h.Index.Close)
	}
	logOpts, err := LogOptions(cfg)
	if err != nil {
		return h, err
	}
	logOpts.OnWrite, logOpts.Logger = o.OnLogWrite, o.Logger
	if h.Log, err = clicklog.Open(cfg.DataDir, logOpts); err != nil {
		return h, err
	}
	h.onClose(h.Log.Close)
	if h.Registry, err = registry.Open(h.Log); err != nil {
		return h, err
	}
	if h.Experiments, err = interleave.OpenExperiments(h.Log); err != nil {
		return h, err
	}
	if o.Reranker {
		if err := h.startLoop(ctx); err != nil {
			return h, err
		}
	}
	return h, nil
}

// startLoop starts the plugin with the registry's serving version (on the
// first start, rerank.model_path registered as the base version) and the
// closed loop around it.
func (h *Host) startLoop(ctx context.Context) error {
	cfg, logger := h.Config, h.Logger
	if h.Index == nil {
		return errors.New("the retrain loop needs the BM25 index")
	}
	// A broken cascade checkpoint stops the start before anything else does.
	var cascadeHash string
	if c := cfg.Rerank.Cascade; c.ModelPath != "" {
		var err error
		if cascadeHash, err = checkpoint.Hash(c.ModelPath); err != nil {
			return fmt.Errorf("rerank.cascade.model_path: %w", err)
		}
	}
	var primed error
	if cfg.Replica.Primary != "" {
		if primed = h.startFollower(ctx); primed != nil {
			logger.Warn("replica: the primary's serving version was not copied at start; this host serves its own until a poll succeeds",
				"primary", cfg.Replica.Primary, "err", primed)
		}
	}
	v, err := lifecycle.Bootstrap(h.Registry, cfg.Rerank.ModelPath, logger)
	if errors.Is(err, lifecycle.ErrNoServing) && primed != nil {
		return fmt.Errorf("replica: nothing to serve: the primary's version could not be copied (%v) and this host has none of its own (rerank.model_path)", primed)
	}
	if err != nil {
		return err
	}
	h.Plugin, err = pluginclient.Start(ctx, pluginclient.Options{
		PluginPath: cfg.Rerank.PluginPath, ModelPath: v.Checkpoint, ModelVersion: v.ID, ModelHash: v.CheckpointHash,
		Device: cfg.Rerank.Device, Precision: cfg.Rerank.Precision, Threads: cfg.Rerank.Threads, MaxLength: cfg.Rerank.MaxLength, Log: logger,
		EmbeddingCache: filepath.Join(cfg.DataDir, "embeddings"),
		// The plugin takes whatever the host sends: a search's window or a /v1/rerank call.
		MaxDocuments: max(cfg.Rerank.MaxDocuments, cfg.Rerank.MaxWindow),
	})
	if err != nil {
		return fmt.Errorf("start the reranker with version %s (unset rerank.model_path to serve BM25 only): %w", v.ID, err)
	}
	h.onClose(h.Plugin.Close)
	if c := cfg.Rerank.Cascade; c.ModelPath != "" {
		// Not serving: the plugin keeps it beside the serving version through
		// swaps, and the client replays the load after a plugin restart.
		if _, err := h.Plugin.Load(ctx, contract.LoadRequest{Path: c.ModelPath, Version: CascadeModel, CheckpointHash: cascadeHash}); err != nil {
			return fmt.Errorf("load the cascade model (rerank.cascade.model_path %s): %w", c.ModelPath, err)
		}
		h.Cascade = CascadeModel
		logger.Info("cascade model loaded", "checkpoint", c.ModelPath, "top", c.Top, "timeout", c.Timeout)
	}
	h.Loop, err = retrain.New(ctx, retrain.Options{Trainer: h.Plugin, Options: lifecycle.Options{Config: cfg, Index: h.Index, Log: h.Log, Registry: h.Registry,
		Experiments: h.Experiments, Plugin: h.Plugin, Logger: logger}})
	if err != nil {
		return err
	}
	// Closed before the plugin: a running retrain is cancelled first.
	h.onClose(func() error { h.Loop.Close(); return nil })
	logger.Info("reranker serving", "version", v.ID, "checkpoint", v.Checkpoint)
	if infos, err := h.Plugin.Info(ctx); err == nil && len(infos) > 0 && infos[0].Kind == "bi-encoder" && v.Fusion == nil {
		logger.Warn("the serving bi-encoder has no fusion with BM25: its cosine alone ranks, which is usually worse than the fusion; fit one with `rerank eval --model DIR --fuse auto --save-fusion`",
			"version", v.ID, "checkpoint", v.Checkpoint)
	}
	return nil
}

// startFollower makes the follower of replica.primary and copies the
// primary's serving version, recorded as serving here, so the plugin starts
// with it.
func (h *Host) startFollower(ctx context.Context) error {
	cfg := h.Config
	name := cfg.Replica.Name
	if name == "" {
		host, _ := os.Hostname()
		name = host + " " + cfg.Listen
	}
	f, err := replica.New(replica.Options{Primary: cfg.Replica.Primary, Token: cfg.ReplicaToken(), Name: name, Poll: cfg.Replica.Poll,
		Dir: filepath.Join(cfg.DataDir, "replica"), Registry: h.Registry, Logger: h.Logger})
	if err != nil {
		return err
	}
	h.Follower = f
	return f.Prime(ctx)
}

func (h *Host) onClose(fn func() error) { h.closers = append(h.closers, fn) }

// Close closes what Open started, last first, and returns the first error.
func (h *Host) Close() error {
	var first error
	for i := len(h.closers) - 1; i >= 0; i-- {
		if err := h.closers[i](); err != nil && first == nil {
			first = err
		}
	}
	h.closers = nil
	return first
}

// OpenIndex opens the index at dir; with create, an empty one is built there
// first when there is none: a rerank-only host serves no searches, and its
// retrain loop reads documents from this index once `rerank index` or
// `rerank logs import-ubi --copy-docs-from` fills it.
func OpenIndex(ctx context.Context, dir string, create bool) (*search.Index, error) {
	if create {
		_, err := os.Stat(filepath.Join(dir, "index_meta.json"))
		if errors.Is(err, fs.ErrNotExist) {
			err = search.Build(ctx, dir, func(func(search.Doc) error) error { return nil }, search.Options{}, nil)
		}
		if err != nil {
			return nil, err
		}
	}
	return search.Open(dir)
}

// LogOptions maps the clicklog section of the configuration onto the
// store's options; the hash key is read (or made) only when hashing is on.
func LogOptions(cfg configs.Config) (clicklog.Options, error) {
	opts := clicklog.Options{Retention: cfg.ClickLog.Retention, HashUserIDs: cfg.ClickLog.HashUserIDs}
	if opts.HashUserIDs {
		key, err := cfg.UserHashKey()
		if err != nil {
			return opts, fmt.Errorf("clicklog.hash_key: %w", err)
		}
		opts.HashKey = key
	}
	return opts, nil
}
