package ubi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/opensearch"
)

// Options say where the UBI logs are and which actions are clicks.
type Options struct {
	QueriesIndex string   // default ubi_queries
	EventsIndex  string   // default ubi_events
	ClickActions []string // default ["click"]
	PageSize     int      // default 500
	// Lookback re-reads, at each import, what was logged up to this long
	// before the cursor: documents indexed late (clients send their own
	// timestamps; a refresh makes them visible later) or clicks read before
	// their query are taken then. The log drops what it already holds.
	Lookback time.Duration
	// Shown, when set, receives the documents each page of queries showed
	// (new searches and ones already logged) before that page's cursor is
	// saved: an error stops the import there, so a re-run offers them again.
	Shown func(docIDs []string) error
}

func (o *Options) defaults() {
	if o.QueriesIndex == "" {
		o.QueriesIndex = "ubi_queries"
	}
	if o.EventsIndex == "" {
		o.EventsIndex = "ubi_events"
	}
	if len(o.ClickActions) == 0 {
		o.ClickActions = []string{"click"}
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
}

// Stats count what an import read and did. Skipped maps a reason to how many
// documents were left out for it; nothing skipped is half-imported.
type Stats struct {
	Queries, QueriesPresent int // searches added, searches already in the log
	Clicks, ClicksPresent   int // clicks added, clicks already in the log
	OtherActions            int // events that are not clicks
	Skipped                 map[string]int
}

// SkippedTotal is the number of documents skipped for any reason.
func (s Stats) SkippedTotal() int {
	n := 0
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

// String is one line for people.
func (s Stats) String() string {
	line := fmt.Sprintf("imported %d searches and %d clicks; %d searches and %d clicks were already in the log; %d other events",
		s.Queries, s.Clicks, s.QueriesPresent, s.ClicksPresent, s.OtherActions)
	if len(s.Skipped) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(s.Skipped)) {
			parts = append(parts, fmt.Sprintf("%d %s", s.Skipped[k], k))
		}
		line += "; skipped " + strings.Join(parts, ", ")
	}
	return line
}

// Import reads the queries, then the events, logged after cursors' positions
// (sorted by timestamp and _id) into store, saving each index's position
// after every page that is durably in the log. A failure leaves the cursor at
// the last complete page: a re-run reads that page's rest again, and the
// log's ids (search "ubi-<query_id>", click event id "ubi-<_id>") drop what
// was already stored, so nothing is lost or counted twice.
func Import(ctx context.Context, c *opensearch.Client, store *clicklog.Store, cursors *Cursors, o Options) (Stats, error) {
	o.defaults()
	st := Stats{Skipped: map[string]int{}}
	skip := func(reason string) { st.Skipped[reason]++ }
	var shown []string
	flushShown := func() error {
		ids := shown
		shown = nil
		if o.Shown == nil || len(ids) == 0 {
			return nil
		}
		return o.Shown(ids)
	}
	err := readAll(ctx, c, cursors, o.QueriesIndex, o, flushShown, func(h opensearch.Hit) error {
		var q Query
		if err := json.Unmarshal(h.Source, &q); err != nil {
			skip("malformed queries")
			return nil
		}
		imp, err := q.Impression()
		if err != nil {
			skip("malformed queries")
			return nil
		}
		switch err := store.LogSearch(ctx, imp); {
		case errors.Is(err, clicklog.ErrDuplicateSearch):
			st.QueriesPresent++
		case errors.Is(err, clicklog.ErrInvalid):
			skip("queries the click log refused")
			return nil
		case err != nil:
			return err
		default:
			st.Queries++
		}
		shown = append(shown, q.HitIDs...)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("ubi import, %s: %w (%s)", o.QueriesIndex, err, st)
	}
	err = readAll(ctx, c, cursors, o.EventsIndex, o, nil, func(h opensearch.Hit) error {
		var e Event
		if err := json.Unmarshal(h.Source, &e); err != nil {
			skip("malformed events")
			return nil
		}
		if !slices.Contains(o.ClickActions, e.ActionName) {
			st.OtherActions++
			return nil
		}
		if e.QueryID == "" || e.Attributes.Object.ObjectID == "" || e.Timestamp.IsZero() {
			skip("malformed events")
			return nil
		}
		click := clicklog.Click{SearchID: SearchID(e.QueryID), DocID: e.Attributes.Object.ObjectID, Time: e.Timestamp.Time,
			DwellMS: e.Attributes.DwellMS, EventID: "ubi-" + h.ID}
		added, err := store.ImportClick(ctx, click)
		switch {
		case err == nil && added:
			st.Clicks++
		case err == nil:
			st.ClicksPresent++
		case errors.Is(err, clicklog.ErrUnknownSearch):
			skip("events on unknown queries")
		case errors.Is(err, clicklog.ErrNotShown):
			skip("events on documents the query did not show")
		case errors.Is(err, clicklog.ErrInvalid):
			skip("events the click log refused")
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("ubi import, %s: %w (%s)", o.EventsIndex, err, st)
	}
	return st, nil
}

// readAll feeds every document of index after its cursor (less the
// lookback) to fn, page by page, and saves the cursor after each page fn and
// then flush (when not nil) accepted whole. The cursor never moves back.
func readAll(ctx context.Context, c *opensearch.Client, cursors *Cursors, index string, o Options, flush func() error, fn func(opensearch.Hit) error) error {
	saved := cursors.After(index)
	after := saved
	var query any = map[string]any{"match_all": map[string]any{}}
	if ms, ok := cursorMillis(saved); ok && o.Lookback > 0 {
		query = map[string]any{"range": map[string]any{"timestamp": map[string]any{
			"gte": ms - o.Lookback.Milliseconds(), "format": "epoch_millis"}}}
		after = nil
	}
	for {
		hits, err := c.Page(ctx, index, query, "timestamp", after, o.PageSize)
		if errors.Is(err, opensearch.ErrNoIndex) {
			return nil // nothing logged yet
		}
		if err != nil {
			return err
		}
		if len(hits) == 0 {
			return nil
		}
		for _, h := range hits {
			if err := fn(h); err != nil {
				return err
			}
		}
		if flush != nil {
			if err := flush(); err != nil {
				return err
			}
		}
		after = hits[len(hits)-1].Sort
		if beyond(after, saved) {
			if err := cursors.Save(index, after); err != nil {
				return err
			}
			saved = after
		}
	}
}

// cursorMillis is a cursor's timestamp (a date sorts as epoch milliseconds).
func cursorMillis(cursor []any) (int64, bool) {
	if len(cursor) == 0 {
		return 0, false
	}
	ms, ok := cursor[0].(float64)
	return int64(ms), ok
}

// beyond says whether the sort values a come after b: by timestamp, then _id.
func beyond(a, b []any) bool {
	am, aok := cursorMillis(a)
	bm, bok := cursorMillis(b)
	if !bok || !aok || am != bm {
		return !bok || aok && am > bm
	}
	aid, _ := a[len(a)-1].(string)
	bid, _ := b[len(b)-1].(string)
	return aid > bid
}
