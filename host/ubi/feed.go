package ubi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/opensearch"
	"github.com/rerankloop/rerank/host/search"
)

// CursorsFile is where a data folder keeps its import positions.
const CursorsFile = "ubi-cursors.json"

// Feed is one cluster's UBI logs flowing into a click log as configured
// (ubi.*): `rerank logs import-ubi` runs it once, serve every ubi.every.
type Feed struct {
	cfg     configs.UBI
	client  *opensearch.Client
	store   *clicklog.Store
	cursors *Cursors
	ix      *search.Index // receives the shown documents; nil: none copied
	// Copied counts the documents copied into the index.
	Copied int
}

// NewFeed reads the cursors kept in dataDir. ix is where the documents the
// searches showed are copied (ubi.copy_docs_from); nil leaves them.
func NewFeed(cfg configs.UBI, dataDir string, store *clicklog.Store, ix *search.Index) (*Feed, error) {
	if cfg.Cluster == "" {
		return nil, fmt.Errorf("no cluster: set ubi.cluster (or --cluster) to the node's URL")
	}
	client, err := opensearch.New(cfg.Cluster)
	if err != nil {
		return nil, err
	}
	cursors, err := OpenCursors(filepath.Join(dataDir, CursorsFile), strings.TrimRight(cfg.Cluster, "/"))
	if err != nil {
		return nil, err
	}
	if cfg.CopyDocsFrom == "" {
		ix = nil
	}
	return &Feed{cfg: cfg, client: client, store: store, cursors: cursors, ix: ix}, nil
}

// Import reads what was logged since the last import (less ubi.lookback).
func (f *Feed) Import(ctx context.Context) (Stats, error) {
	o := Options{QueriesIndex: f.cfg.QueriesIndex, EventsIndex: f.cfg.EventsIndex, ClickActions: f.cfg.Actions,
		PageSize: f.cfg.PageSize, Lookback: f.cfg.Lookback}
	if f.ix != nil {
		o.Shown = func(ids []string) error {
			n, err := f.copyMissing(ctx, ids)
			f.Copied += n
			if err != nil {
				return fmt.Errorf("copy the shown documents from %s: %w", f.cfg.CopyDocsFrom, err)
			}
			return nil
		}
	}
	return Import(ctx, f.client, f.store, f.cursors, o)
}

// Run imports every ubi.every until ctx ends, logging what each import did;
// a failed import is retried at the next tick and loses nothing.
func (f *Feed) Run(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(f.cfg.Every)
	defer t.Stop()
	for {
		before := f.Copied
		st, err := f.Import(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			logger.Warn("ubi import failed; retried at the next tick", "cluster", f.cfg.Cluster, "err", err)
		case st.Queries+st.Clicks+st.SkippedTotal()+f.Copied-before > 0:
			logger.Info("ubi import", "cluster", f.cfg.Cluster, "searches", st.Queries, "clicks", st.Clicks,
				"skipped", st.SkippedTotal(), "documents_copied", f.Copied-before, "summary", st.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// copyMissing puts the documents ids not yet in the index there, read from
// the cluster, so the retrain loop has their texts.
func (f *Feed) copyMissing(ctx context.Context, ids []string) (int, error) {
	seen := map[string]bool{}
	var missing []string
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, err := f.ix.Get(id); err != nil {
			missing = append(missing, id)
		}
	}
	copied := 0
	for start := 0; start < len(missing); start += 500 {
		batch := missing[start:min(len(missing), start+500)]
		srcs, err := f.client.MGet(ctx, f.cfg.CopyDocsFrom, batch)
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
			title, _ := src[f.cfg.TitleField].(string)
			text, _ := src[f.cfg.TextField].(string)
			docs = append(docs, search.Doc{ID: id, Title: title, Text: text})
		}
		if err := f.ix.Put(docs...); err != nil {
			return copied, err
		}
		copied += len(docs)
	}
	return copied, nil
}
