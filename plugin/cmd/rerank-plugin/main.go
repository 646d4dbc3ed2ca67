// Command rerank-plugin is the model process: a go-plugin gRPC server
// started by bin/rerank, never by hand. It links libtorch through gotch.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/engine"
	"github.com/rerankloop/rerank/plugin/internal/train"
)

func main() {
	var o engine.Options
	flag.StringVar(&o.Device, "device", "auto", "auto, cpu or cuda")
	flag.IntVar(&o.Threads, "threads", 0, "ATen intra-op threads (0: libtorch default)")
	flag.IntVar(&o.MaxLength, "max-length", 512, "tokens per (query, document) pair")
	flag.IntVar(&o.BatchSize, "batch-size", 0, "most pairs per forward pass (0: 32 on CPU, 256 on CUDA)")
	flag.IntVar(&o.BatchTokens, "batch-tokens", 0, "most padded tokens per forward pass (0: 4096 on CPU, 65536 on CUDA; -1: no limit)")
	flag.StringVar(&o.Precision, "precision", "auto", "auto (bf16 autocast and TF32 on CUDA, fp32 on CPU), fp32, bf16 or fp16; training takes auto, fp32 or bf16")
	flag.BoolVar(&o.Window, "window", false, "score long documents as windows, keep the best")
	flag.IntVar(&o.Stride, "stride", 64, "overlap of consecutive windows, in tokens")
	flag.DurationVar(&o.MaxWait, "max-wait", 2*time.Millisecond, "micro-batching wait for more requests")
	flag.Uint64Var(&o.Seed, "seed", 42, "seed of a fresh classification head")
	flag.IntVar(&o.MaxDocuments, "max-documents", 1000, "documents in one request at most (the host passes its own limit)")
	flag.IntVar(&o.MaxPendingTokens, "max-pending-tokens", 1<<18, "tokens of queued work above which requests are refused as overloaded")
	flag.StringVar(&o.CacheDir, "embedding-cache", "", "folder of bi-encoders' document embeddings, kept across restarts (empty: a temporary one)")
	flag.Parse()
	if os.Getenv(contract.Handshake.MagicCookieKey) != contract.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "rerank-plugin is started by `rerank` (serve, predict, eval), not by hand")
		os.Exit(1)
	}
	// go-plugin forwards the plugin's stderr to the host's log, at the level
	// of each line, when the line is hclog's JSON: slog's keys are renamed.
	o.Log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: hclogKeys}))
	e, err := engine.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rerank-plugin:", err)
		os.Exit(1)
	}
	defer e.Close()
	// Fine-tunes run on their own thread beside the engine's, which keeps serving.
	trainer, err := train.NewService(e.Device(), o.Threads)
	if err == nil {
		err = trainer.SetPrecision(o.Precision)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rerank-plugin:", err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  contract.Handshake,
		VersionedPlugins: contract.VersionedPlugins(e, trainer),
		GRPCServer:       contract.ServerOptions,
	})
}

// hclogKeys renames slog's top-level keys to the "@level", "@message" and
// "@timestamp" of hclog's JSON format, which go-plugin parses.
func hclogKeys(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		return slog.String("@level", strings.ToLower(a.Value.String()))
	case slog.MessageKey:
		return slog.String("@message", a.Value.String())
	case slog.TimeKey:
		return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
	}
	return a
}
