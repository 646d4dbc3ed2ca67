package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/ubi"
)

// importUBICommand is `rerank logs import-ubi`.
func importUBICommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import-ubi --cluster URL [--data-dir DIR] [--copy-docs-from INDEX]",
		Short: "Load an OpenSearch cluster's User Behavior Insights logs (ubi_queries, ubi_events) into the click log",
		Long: `Read the cluster's UBI query and event indices (search_after over timestamp
and _id, from where the last import stopped, less --lookback) into the click
log: each query becomes a search "ubi-<query_id>" showing
query_response_hit_ids at positions 1..n, each click event (--actions) a click
with event id "ubi-<event _id>". The position reached in each index is kept in
<data-dir>/ubi-cursors.json and saved after every page that is durably in the
log, so an interrupted import re-run neither loses nor duplicates anything.
Documents logged late with earlier timestamps are read by the next import when
they fall within --lookback of the position. Events on unknown queries or on
documents their query did not show, and malformed documents, are skipped and
counted.

query_attributes may carry session_id, model_version, and for an experiment
(rerank experiment evaluate) experiment and arm (control, treatment or
interleaved, with teams aligned with the hits).

--copy-docs-from INDEX copies the documents the imported searches showed from
that index of the cluster into the local index (--index), the documents the
retrain loop reads; --title-field and --text-field name their fields.

The flags default to the ubi.* settings. This command opens the click log
itself: stop serve on the data folder first, or let serve import (ubi.every).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runImportUBI(ctx, cmd)
		},
	}
	fl := cmd.Flags()
	fl.String("cluster", "", "OpenSearch node URL, e.g. http://127.0.0.1:9200 (ubi.cluster)")
	fl.String("queries-index", "ubi_queries", "UBI query index (ubi.queries_index)")
	fl.String("events-index", "ubi_events", "UBI event index (ubi.events_index)")
	fl.String("actions", "click", "action_name values that are clicks, comma-separated (ubi.actions)")
	fl.String("copy-docs-from", "", "cluster index to copy the shown documents from into the local index (ubi.copy_docs_from)")
	fl.String("title-field", "title", "title field of --copy-docs-from's documents, may be absent (ubi.title_field)")
	fl.String("text-field", "text", "text field of --copy-docs-from's documents (ubi.text_field)")
	fl.Int("page-size", 500, "documents per search_after page; the cursor is saved after each (ubi.page_size)")
	fl.Duration("lookback", 0, "re-read what was logged this long before the last position (ubi.lookback, 10m)")
	return cmd
}

// ubiFlagsOver sets the ubi.* settings the command line gives.
func ubiFlagsOver(fl *pflag.FlagSet, u *configs.UBI) {
	str := func(name string, dst *string) {
		if fl.Changed(name) {
			*dst, _ = fl.GetString(name)
		}
	}
	str("cluster", &u.Cluster)
	str("queries-index", &u.QueriesIndex)
	str("events-index", &u.EventsIndex)
	str("copy-docs-from", &u.CopyDocsFrom)
	str("title-field", &u.TitleField)
	str("text-field", &u.TextField)
	if fl.Changed("actions") {
		a, _ := fl.GetString("actions")
		u.Actions = strings.Split(a, ",")
	}
	if fl.Changed("page-size") {
		u.PageSize, _ = fl.GetInt("page-size")
	}
	if fl.Changed("lookback") {
		u.Lookback, _ = fl.GetDuration("lookback")
	}
}

func runImportUBI(ctx context.Context, cmd *cobra.Command) error {
	cfg, err := configs.Load(cmd.Flags())
	if err != nil {
		return err
	}
	ubiFlagsOver(cmd.Flags(), &cfg.UBI)
	store, err := openClickLogOf(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	var ix *search.Index
	if cfg.UBI.CopyDocsFrom != "" {
		if ix, err = app.OpenIndex(ctx, cfg.IndexDir, true); err != nil {
			return err
		}
		defer ix.Close()
	}
	feed, err := ubi.NewFeed(cfg.UBI, cfg.DataDir, store, ix)
	if err != nil {
		return err
	}
	st, err := feed.Import(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), st)
	if ix != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "copied %d documents from %s into %s\n", feed.Copied, cfg.UBI.CopyDocsFrom, cfg.IndexDir)
	}
	return store.Close()
}
