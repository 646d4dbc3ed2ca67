package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/retrain"
	"github.com/rerankloop/rerank/host/server"
	"github.com/rerankloop/rerank/host/ubi"
	"github.com/rerankloop/rerank/plugin/contract"
)

func init() {
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen ADDR] [--index DIR] [--data-dir DIR]",
		Short: "Serve search, clicks, the web page and /v1/rerank over HTTP",
		Long: `Serve the search host: GET|POST /search, POST|GET /click, the search page at /,
POST /v1/rerank (Cohere's shape), /admin/docs (bearer token), /healthz, /readyz
and /metrics. Searches and clicks are logged to <data-dir>/events.db.

With rerank.model_path set, the model plugin is started and reorders BM25's top
K; if it is down or slow, searches answer in BM25 order ("reranked": false).
The model registry in events.db decides which version serves: on the first
start rerank.model_path is registered as the base version; after that the
registry's serving version is loaded, so swaps and rollbacks survive restarts.
The closed loop runs in the host: /admin/retrain, /admin/swap, /admin/rollback,
/admin/models and /admin/experiments (bearer admin_token), the retrain schedule
of the configuration, and the /models page.
Stops cleanly on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configs.Load(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cmd.ErrOrStderr(), nil)
		},
	}
	configs.AddFlags(cmd.Flags())
	cmd.Flags().Bool(configs.FlagRerankOnly, false, "serve only /v1/rerank, the admin endpoints, health and metrics: the rerank stage of a cluster (OpenSearch)")
	rootCmd.AddCommand(cmd)
}

func newLogger(cfg configs.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level)) // checked by configs
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the host until ctx ends. ready, when not nil, receives the
// address actually listened on (useful with port 0).
func serve(ctx context.Context, cfg configs.Config, logw io.Writer, ready func(addr string)) error {
	var onReady func(runningHost)
	if ready != nil {
		onReady = func(h runningHost) { ready(h.Addr) }
	}
	return serveHost(ctx, cfg, logw, onReady)
}

// runningHost is what a started host offers to an in-process caller (the
// demo): its address and, with a reranker, its closed loop.
type runningHost struct {
	Addr string
	Loop *retrain.Controller // nil without a reranker
}

// serveHost is serve, handing ready the running host.
func serveHost(ctx context.Context, cfg configs.Config, logw io.Writer, ready func(runningHost)) error {
	logger := newLogger(cfg, logw)
	metrics := server.NewMetrics()
	h, err := app.Open(ctx, app.Options{Config: cfg, Logger: logger, Reranker: cfg.Rerank.ModelPath != "" || cfg.Replica.Primary != "", OnLogWrite: metrics.ObserveLogWrite})
	if err != nil {
		return err
	}
	defer h.Close()
	ix, loop := h.Index, h.Loop
	// Background work ends before the host closes what it writes to.
	bgctx, stopBackground := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() { stopBackground(); background.Wait() }()
	var reranker contract.Reranker
	if h.Plugin != nil {
		reranker = h.Plugin
		if h.Follower != nil {
			// A replica's registry follows the primary's: it neither
			// retrains nor runs experiments itself.
			background.Go(func() {
				h.Follower.Run(bgctx, func(ctx context.Context, version, reason string) error {
					_, err := loop.Swap(ctx, version, reason)
					return err
				})
			})
		} else {
			background.Go(func() { loop.RunSchedule(bgctx) })
		}
	}
	if cfg.UBI.Every > 0 {
		// The cluster's clicks reach the click log while this host serves;
		// the retrain schedule counts them as the bleve host's.
		feed, err := ubi.NewFeed(cfg.UBI, cfg.DataDir, h.Log, ix)
		if err != nil {
			return err
		}
		background.Go(func() { feed.Run(bgctx, logger) })
	}

	opts := server.Options{Index: ix, Reranker: reranker, Log: h.Log, Config: cfg, Logger: logger, Metrics: metrics, Loop: loop, Cascade: h.Cascade, Follower: h.Follower}
	if loop != nil {
		opts.Fusion = loop.Fusion
	}
	srv, err := server.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	docs, _ := ix.Count()
	logger.Info("serving", "addr", "http://"+ln.Addr().String(), "index", cfg.IndexDir, "documents", docs,
		"analyzer", ix.Meta().Analyzer, "data_dir", cfg.DataDir, "reranker", reranker != nil, "config", cfg.File())
	if ready != nil {
		ready(runningHost{Addr: ln.Addr().String(), Loop: loop})
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	srv.Drain() // impressions answered before their commit reach the log before it closes
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: requests still running after %s", cfg.HTTP.ShutdownTimeout)
	}
	return err
}
