package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/app"
	"github.com/rerankloop/rerank/host/opensearch"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/ubi"
)

type ubiFlags struct {
	cluster, queries, events string
	actions                  string
	copyFrom                 string
	titleField, textField    string
	pageSize                 int
}

// importUBICommand is `rerank logs import-ubi`.
func importUBICommand() *cobra.Command {
	var f ubiFlags
	cmd := &cobra.Command{
		Use:   "import-ubi --cluster URL [--data-dir DIR] [--copy-docs-from INDEX]",
		Short: "Load an OpenSearch cluster's User Behavior Insights logs (ubi_queries, ubi_events) into the click log",
		Long: `Read the cluster's UBI query and event indices (search_after over timestamp
and _id, from where the last import stopped) into the click log: each query
becomes a search "ubi-<query_id>" showing query_response_hit_ids at positions
1..n, each click event (--actions) a click with event id "ubi-<event _id>".
The position reached in each index is kept in <data-dir>/ubi-cursors.json and
saved after every page that is durably in the log, so an interrupted import
re-run neither loses nor duplicates anything. Events on unknown queries or on
documents their query did not show, and malformed documents, are skipped and
counted.

query_attributes may carry session_id, model_version, and for an experiment
(rerank experiment evaluate) experiment and arm (control, treatment or
interleaved, with teams aligned with the hits).

--copy-docs-from INDEX copies the documents the imported searches showed from
that index of the cluster into the local index (--index), the documents the
retrain loop reads; --title-field and --text-field name their fields.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runImportUBI(ctx, cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "OpenSearch node URL, e.g. http://127.0.0.1:9200 (required)")
	fl.StringVar(&f.queries, "queries-index", "ubi_queries", "UBI query index")
	fl.StringVar(&f.events, "events-index", "ubi_events", "UBI event index")
	fl.StringVar(&f.actions, "actions", "click", "action_name values that are clicks, comma-separated")
	fl.StringVar(&f.copyFrom, "copy-docs-from", "", "cluster index to copy the shown documents from into the local index")
	fl.StringVar(&f.titleField, "title-field", "title", "title field of --copy-docs-from's documents (may be absent)")
	fl.StringVar(&f.textField, "text-field", "text", "text field of --copy-docs-from's documents")
	fl.IntVar(&f.pageSize, "page-size", 500, "documents per search_after page (the cursor is saved after each)")
	return cmd
}

func runImportUBI(ctx context.Context, cmd *cobra.Command, f ubiFlags) error {
	if f.cluster == "" {
		return fmt.Errorf("--cluster is required")
	}
	client, err := opensearch.New(f.cluster)
	if err != nil {
		return err
	}
	cfg, err := configs.Load(cmd.Flags())
	if err != nil {
		return err
	}
	store, err := openClickLogOf(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	cursors, err := ubi.OpenCursors(filepath.Join(cfg.DataDir, "ubi-cursors.json"), strings.TrimRight(f.cluster, "/"))
	if err != nil {
		return err
	}
	o := ubi.Options{QueriesIndex: f.queries, EventsIndex: f.events, ClickActions: strings.Split(f.actions, ","), PageSize: f.pageSize}
	copied := 0
	if f.copyFrom != "" {
		ix, err := app.OpenIndex(ctx, cfg.IndexDir, true)
		if err != nil {
			return err
		}
		defer ix.Close()
		o.Shown = func(ids []string) error {
			n, err := putMissing(ctx, client, f, ix, ids)
			copied += n
			if err != nil {
				return fmt.Errorf("copy the shown documents from %s: %w", f.copyFrom, err)
			}
			return nil
		}
	}
	st, err := ubi.Import(ctx, client, store, cursors, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), st)
	if f.copyFrom != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "copied %d documents from %s into %s\n", copied, f.copyFrom, cfg.IndexDir)
	}
	return store.Close()
}

// putMissing puts the documents ids not yet in ix there, read from the
// cluster, so the retrain loop has their texts.
func putMissing(ctx context.Context, c *opensearch.Client, f ubiFlags, ix *search.Index, ids []string) (int, error) {
	seen := map[string]bool{}
	var missing []string
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, err := ix.Get(id); err != nil {
			missing = append(missing, id)
		}
	}
	copied := 0
	for start := 0; start < len(missing); start += 500 {
		batch := missing[start:min(len(missing), start+500)]
		srcs, err := c.MGet(ctx, f.copyFrom, batch)
		if err != nil {
			return copied, err
		}
		var docs []search.Doc
		for _, id := range batch {
			raw, ok := srcs[id]
			if !ok {
				continue
			}
			var src map[string]any
			if err := json.Unmarshal(raw, &src); err != nil {
				return copied, fmt.Errorf("document %q: %w", id, err)
			}
			title, _ := src[f.titleField].(string)
			text, _ := src[f.textField].(string)
			docs = append(docs, search.Doc{ID: id, Title: title, Text: text})
		}
		if err := ix.Put(docs...); err != nil {
			return copied, err
		}
		copied += len(docs)
	}
	return copied, nil
}
