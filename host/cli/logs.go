package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/clicklog"
)

func init() {
	logs := &cobra.Command{
		Use:   "logs",
		Short: "Export the query and click log for training, or import an existing click log",
		Long: `The query and click log lives in <data-dir>/events.db. Only one process can
open it: stop "rerank serve" on the same data folder first (while it runs, the
host's own export feeds retraining). Opening it applies clicklog.retention.`,
	}
	configs.AddFlags(logs.PersistentFlags())

	var since, out string
	export := &cobra.Command{
		Use:   "export [--data-dir DIR] [--since T] --out FILE.jsonl",
		Short: "Write searches with their clicks as JSONL, the input of finetune",
		Long: `Write every logged search (from --since on, oldest first) as one JSON line:
search_id, time, query, user, session, model_version, arm, reranked and
results [{doc_id, position, bm25, rerank, team, clicked, clicks, dwell_ms}].
The file is written beside --out and renamed into place when complete, so an
interrupted export leaves no partial file. --out - writes to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required (a file, or - for stdout)")
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			store, err := openClickLog(cmd.Flags())
			if err != nil {
				return err
			}
			defer store.Close()
			var lines lineCounter
			write := func(w io.Writer) error { return store.Export(ctx, from, io.MultiWriter(w, &lines)) }
			if out == "-" {
				err = write(cmd.OutOrStdout())
			} else {
				err = writeFileAtomic(out, write)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d searches to %s\n", lines, out)
			return store.Close()
		},
	}
	export.Flags().StringVar(&since, "since", "", "only searches from this time on: RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01, UTC) or an age (72h)")
	export.Flags().StringVar(&out, "out", "", "JSONL file to write, or - for stdout (required)")

	var base string
	importTREC := &cobra.Command{
		Use:   "import-trec [--data-dir DIR] [--base-time T] FILE",
		Short: "Load the TREC Session Track 2013 log (interactions.tsv or sessions.jsonl) into the click log",
		Long: `Load the TREC Session 2013 click log through the same path as live searches
and clicks: one search per (session, interaction) with the displayed ranks,
one click per recorded click with its dwell. Both layouts of the log are read:
sessions.jsonl (with click times) or interactions.tsv (summed dwell, no
times). Times are laid out from --base-time (default now), which is also what
retention sees. Importing again adds nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			at := time.Now()
			if base != "" {
				t, err := time.Parse(time.RFC3339, base)
				if err != nil {
					return fmt.Errorf("--base-time: want RFC 3339 (2026-03-01T12:00:00Z): %w", err)
				}
				at = t
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			store, err := openClickLog(cmd.Flags())
			if err != nil {
				return err
			}
			defer store.Close()
			st, err := clicklog.ImportTREC(ctx, store, f, at)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d searches (%d results shown) and %d clicks; %d searches and %d clicks were already in the log\n",
				st.Impressions, st.Results, st.Clicks, st.Skipped, st.ClicksPresent)
			return store.Close()
		},
	}
	importTREC.Flags().StringVar(&base, "base-time", "", "time of the log's start, RFC 3339 (default now)")

	logs.AddCommand(export, importTREC, importUBICommand())
	rootCmd.AddCommand(logs)
}

// openClickLog opens the click log of the data folder the flags (or the
// configuration) name.
func openClickLog(fs *pflag.FlagSet) (*clicklog.Store, error) {
	cfg, err := configs.Load(fs)
	if err != nil {
		return nil, err
	}
	return openClickLogOf(cfg)
}

// openClickLogOf opens cfg's click log with cfg's options.
func openClickLogOf(cfg configs.Config) (*clicklog.Store, error) {
	opts, err := app.LogOptions(cfg)
	if err != nil {
		return nil, err
	}
	return clicklog.Open(cfg.DataDir, opts)
}

// parseSince reads --since: empty (everything), RFC 3339, a date (UTC
// midnight) or an age before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01) or an age (72h)", s)
}

// writeFileAtomic writes path through a temporary file in the same folder,
// synced and renamed into place only when write succeeded.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return nil
}

// lineCounter counts the lines written through it.
type lineCounter int

func (n *lineCounter) Write(p []byte) (int, error) {
	*n += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}
