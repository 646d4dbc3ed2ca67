package clicklog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rerankloop/rerank/finetune/impression"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func exportAll(t testing.TB, s *Store, since time.Time) []impression.Impression {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(context.Background(), since, &buf); err != nil {
		t.Fatal(err)
	}
	var out []impression.Impression
	if err := impression.Read(&buf, func(e impression.Impression) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func search(id string, at time.Time, docs ...string) Impression {
	imp := Impression{SearchID: id, Time: at, Query: "query " + id, ModelVersion: "bm25"}
	for i, d := range docs {
		imp.Results = append(imp.Results, Shown{DocID: d, Position: i + 1, BM25: float64(10 - i)})
	}
	return imp
}

func mustLog(t testing.TB, s *Store, imp Impression) {
	t.Helper()
	if err := s.LogSearch(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
}

func mustClick(t testing.TB, s *Store, c Click) {
	t.Helper()
	if err := s.LogClick(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func ptr(f float64) *float64 { return &f }

func TestExportRoundTrip(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx := context.Background()
	// Given out of position order: the store sorts by position.
	mustLog(t, s, Impression{
		SearchID: "s1", Time: t0, Query: "heart attack causes", UserID: "u1", SessionID: "sess1",
		ModelVersion: "v3", Arm: "interleave", Reranked: true,
		Results: []Shown{
			{DocID: "d9", Position: 2, BM25: 7.5, Rerank: -1.25, HasRerank: true, Team: "treatment"},
			{DocID: "d4", Position: 1, BM25: 9, Rerank: 2.5, HasRerank: true, Team: "control"},
			{DocID: "d1", Position: 3, BM25: 6},
		},
	})
	mustLog(t, s, search("s2", t0.Add(time.Minute), "d1", "d2"))
	mustClick(t, s, Click{SearchID: "s1", DocID: "d9", DwellMS: 4000, Time: t0.Add(5 * time.Second)})
	mustClick(t, s, Click{SearchID: "s1", DocID: "d9", Position: 2, DwellMS: 1000, Time: t0.Add(30 * time.Second)})
	mustClick(t, s, Click{SearchID: "s1", DocID: "d1", DwellMS: 0, Time: t0.Add(40 * time.Second)})

	got := exportAll(t, s, time.Time{})
	want := []impression.Impression{
		{
			SearchID: "s1", Time: t0, Query: "heart attack causes", User: "u1", Session: "sess1",
			ModelVersion: "v3", Arm: "interleave", Reranked: true,
			Results: []impression.Result{
				{DocID: "d4", Position: 1, BM25: 9, Rerank: ptr(2.5), Team: "control"},
				{DocID: "d9", Position: 2, BM25: 7.5, Rerank: ptr(-1.25), Team: "treatment", Clicked: true, Clicks: 2, DwellMS: 5000},
				{DocID: "d1", Position: 3, BM25: 6, Clicked: true, Clicks: 1},
			},
		},
		{
			SearchID: "s2", Time: t0.Add(time.Minute), Query: "query s2", ModelVersion: "bm25",
			Results: []impression.Result{{DocID: "d1", Position: 1, BM25: 10}, {DocID: "d2", Position: 2, BM25: 9}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("export:\n got %+v\nwant %+v", got, want)
	}

	// The JSON names are the contract finetune reads.
	var buf bytes.Buffer
	if err := s.Export(ctx, t0.Add(time.Second), &buf); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, key := range []string{`"search_id":"s2"`, `"time":"2026-03-01T12:01:00Z"`, `"query":"query s2"`, `"model_version":"bm25"`,
		`"reranked":false`, `"doc_id":"d1"`, `"position":1`, `"bm25":10`, `"clicked":false`, `"clicks":0`, `"dwell_ms":0`} {
		if !strings.Contains(line, key) {
			t.Errorf("export line %s lacks %s", line, key)
		}
	}
	if strings.Count(line, "\n") != 1 || strings.Contains(line, `"rerank"`) || strings.Contains(line, `"user"`) {
		t.Errorf("since filter or omitted fields wrong: %s", line)
	}
}

func TestLogSearchRejects(t *testing.T) {
	s := openTest(t, "", Options{})
	many := search("many", t0)
	for i := range maxResults + 1 {
		many.Results = append(many.Results, Shown{DocID: fmt.Sprint("d", i), Position: i + 1})
	}
	cases := []struct {
		name, want string
		edit       func(*Impression)
	}{
		{"empty id", "empty search id", func(i *Impression) { i.SearchID = "" }},
		{"id with space", "only letters", func(i *Impression) { i.SearchID = "a b" }},
		{"id with NUL", "only letters", func(i *Impression) { i.SearchID = "a\x00b" }},
		{"long id", "over 128", func(i *Impression) { i.SearchID = strings.Repeat("a", 129) }},
		{"empty query", "empty query", func(i *Impression) { i.Query = "" }},
		{"long query", "query of 8193 bytes", func(i *Impression) { i.Query = strings.Repeat("q", 8193) }},
		{"bad utf8", "not valid UTF-8", func(i *Impression) { i.Query = "caf\xe9" }},
		{"bad user", "user id is not valid UTF-8", func(i *Impression) { i.UserID = "\xff" }},
		{"no doc id", "no doc id", func(i *Impression) { i.Results[0].DocID = "" }},
		{"doc twice", `doc "a" shown twice`, func(i *Impression) { i.Results[1].DocID = "a" }},
		{"position 0", "position 0", func(i *Impression) { i.Results[0].Position = 0 }},
		{"same position", "two results at position 2", func(i *Impression) { i.Results[0].Position = 2 }},
		{"NaN", "non-finite", func(i *Impression) { i.Results[0].BM25 = math.NaN() }},
		{"Inf rerank", "non-finite", func(i *Impression) { i.Results[0].Rerank = math.Inf(1) }},
		{"Inf cascade", "non-finite", func(i *Impression) { i.Results[0].Cascade = math.Inf(-1) }},
		{"too many", "1001 results", func(i *Impression) { *i = many }},
		{"year 1900", "outside 1970", func(i *Impression) { i.Time = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imp := search("ok", t0, "a", "b")
			c.edit(&imp)
			err := s.LogSearch(context.Background(), imp)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
	if got := exportAll(t, s, time.Time{}); len(got) != 0 {
		t.Fatalf("rejected searches were stored: %+v", got)
	}
}

func TestDuplicateSearchID(t *testing.T) {
	s := openTest(t, "", Options{})
	mustLog(t, s, search("s1", t0, "a"))
	err := s.LogSearch(context.Background(), search("s1", t0.Add(time.Hour), "b"))
	if !errors.Is(err, ErrDuplicateSearch) {
		t.Fatalf("got %v, want ErrDuplicateSearch", err)
	}
	got := exportAll(t, s, time.Time{})
	if len(got) != 1 || got[0].Results[0].DocID != "a" || !got[0].Time.Equal(t0) {
		t.Fatalf("the first search must stay, alone: %+v", got)
	}
}

func TestLogClickRejects(t *testing.T) {
	s := openTest(t, "", Options{})
	mustLog(t, s, search("s1", t0, "a", "b"))
	ctx := context.Background()
	cases := []struct {
		name string
		c    Click
		is   error
		want string
	}{
		{"unknown search", Click{SearchID: "nope", DocID: "a"}, ErrUnknownSearch, "search nope"},
		{"not shown", Click{SearchID: "s1", DocID: "z"}, ErrNotShown, `"z"`},
		{"wrong position", Click{SearchID: "s1", DocID: "a", Position: 2}, ErrInvalid, "showed it at 1"},
		{"negative dwell", Click{SearchID: "s1", DocID: "a", DwellMS: -1}, ErrInvalid, "negative dwell"},
		{"negative position", Click{SearchID: "s1", DocID: "a", Position: -3}, ErrInvalid, "position -3"},
		{"no doc", Click{SearchID: "s1"}, ErrInvalid, "no doc id"},
		{"bad event id", Click{SearchID: "s1", DocID: "a", EventID: "x/y"}, ErrInvalid, "event id"},
		{"bad search id", Click{SearchID: "../x", DocID: "a"}, ErrInvalid, "search id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.LogClick(ctx, c.c)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.is, c.want)
			}
		})
	}
	for _, r := range exportAll(t, s, time.Time{})[0].Results {
		if r.Clicks != 0 {
			t.Fatalf("a rejected click was stored: %+v", r)
		}
	}
}

func TestClickDeduplication(t *testing.T) {
	clicksOn := func(s *Store, doc string) int {
		for _, r := range exportAll(t, s, time.Time{})[0].Results {
			if r.DocID == doc {
				return r.Clicks
			}
		}
		t.Fatalf("doc %s missing", doc)
		return 0
	}
	t.Run("event id", func(t *testing.T) {
		s := openTest(t, "", Options{})
		mustLog(t, s, search("s1", t0, "a", "b"))
		c := Click{SearchID: "s1", DocID: "a", Time: t0.Add(time.Second), EventID: "e1"}
		mustClick(t, s, c)
		c.Time = c.Time.Add(time.Hour) // a retry much later is still the same event
		mustClick(t, s, c)
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0.Add(time.Second), EventID: "e2"})
		if n := clicksOn(s, "a"); n != 2 {
			t.Fatalf("clicks on a = %d, want 2 (e1 once, e2)", n)
		}
	})
	t.Run("window", func(t *testing.T) {
		s := openTest(t, "", Options{ClickDedupWindow: 2 * time.Second})
		mustLog(t, s, search("s1", t0, "a", "b"))
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0.Add(10 * time.Second)})
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0.Add(11 * time.Second)}) // repeat
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0.Add(9 * time.Second)})  // repeat, earlier
		mustClick(t, s, Click{SearchID: "s1", DocID: "b", Time: t0.Add(10 * time.Second)}) // other doc
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0.Add(13 * time.Second)}) // outside
		if a, b := clicksOn(s, "a"), clicksOn(s, "b"); a != 2 || b != 1 {
			t.Fatalf("clicks a=%d b=%d, want 2 and 1", a, b)
		}
	})
	t.Run("window off", func(t *testing.T) {
		s := openTest(t, "", Options{ClickDedupWindow: -1})
		mustLog(t, s, search("s1", t0, "a"))
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0})
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", Time: t0})
		if n := clicksOn(s, "a"); n != 2 {
			t.Fatalf("clicks = %d, want 2", n)
		}
	})
	t.Run("reported", func(t *testing.T) {
		var dups atomic.Int32
		s := openTest(t, "", Options{OnWrite: func(w WriteStat) {
			if w.Duplicate {
				dups.Add(1)
			}
		}})
		mustLog(t, s, search("s1", t0, "a"))
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", EventID: "e"})
		mustClick(t, s, Click{SearchID: "s1", DocID: "a", EventID: "e"})
		if dups.Load() != 1 {
			t.Fatalf("OnWrite saw %d duplicates, want 1", dups.Load())
		}
	})
}

func TestHashedUserIDs(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{HashUserIDs: true}); err == nil || !strings.Contains(err.Error(), "hash key") {
		t.Fatalf("hashing without a key: got %v", err)
	}
	dir := t.TempDir()
	s := openTest(t, dir, Options{HashUserIDs: true, HashKey: "k1"})
	imp := search("s1", t0, "a")
	imp.UserID, imp.SessionID = "alice@example.org", "session-42"
	mustLog(t, s, imp)
	got := exportAll(t, s, time.Time{})[0]
	mac := func(key, v string) string {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(v))
		return "h:" + hex.EncodeToString(m.Sum(nil))
	}
	if got.User != mac("k1", "alice@example.org") || got.Session != mac("k1", "session-42") {
		t.Fatalf("user %q session %q, want keyed hashes", got.User, got.Session)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("alice@example.org")) || bytes.Contains(raw, []byte("session-42")) {
		t.Fatal("the database file holds the raw user or session id")
	}
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	s := openTest(t, dir, Options{})
	mustLog(t, s, search("old", now.Add(-72*time.Hour), "a"))
	mustLog(t, s, search("mid", now.Add(-36*time.Hour), "a"))
	mustLog(t, s, search("new", now.Add(-time.Hour), "a"))
	for _, id := range []string{"old", "mid", "new"} {
		mustClick(t, s, Click{SearchID: id, DocID: "a"})
	}
	n, err := s.Prune(context.Background(), now.Add(-48*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if err := s.LogClick(context.Background(), Click{SearchID: "old", DocID: "a"}); !errors.Is(err, ErrUnknownSearch) {
		t.Fatalf("click on a pruned search: got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Opening with a retention prunes at once.
	s = openTest(t, dir, Options{Retention: 24 * time.Hour})
	got := exportAll(t, s, time.Time{})
	if len(got) != 1 || got[0].SearchID != "new" || got[0].Results[0].Clicks != 1 {
		t.Fatalf("after retention: %+v", got)
	}
	// The clicks went with their searches.
	err = s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bktClicks).Stats().KeyN; n != 1 {
			return fmt.Errorf("%d clicks left, want 1", n)
		}
		if n := tx.Bucket(bktSearches).Stats().KeyN; n != 1 {
			return fmt.Errorf("%d searches left, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.TempDir(), Options{Retention: -time.Hour}); err == nil {
		t.Fatal("a negative retention must be refused")
	}
}

// TestPruneChunks deletes more than one transaction's worth.
func TestPruneChunks(t *testing.T) {
	s := openTest(t, "", Options{})
	logMany(t, s, "p", 2*pruneChunk+7, t0)
	n, err := s.Prune(context.Background(), t0.Add(time.Duration(pruneChunk+3)*time.Millisecond))
	if err != nil || n != pruneChunk+3 {
		t.Fatalf("Prune = %d, %v; want %d", n, err, pruneChunk+3)
	}
	if got := len(exportAll(t, s, time.Time{})); got != pruneChunk+4 {
		t.Fatalf("%d left, want %d", got, pruneChunk+4)
	}
}

// logMany logs n searches 1 ms apart from start, from 8 goroutines.
func logMany(t testing.TB, s *Store, prefix string, n int, start time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				errs <- s.LogSearch(context.Background(), search(fmt.Sprintf("%s%d", prefix, i), start.Add(time.Duration(i)*time.Millisecond), "a", "b"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentWriters checks that concurrent events all land, in time
// order in the export across read chunks, and that they share commits.
func TestConcurrentWriters(t *testing.T) {
	var commits, events, writes atomic.Int64
	s := openTest(t, "", Options{
		OnCommit: func(c CommitStat) { commits.Add(1); events.Add(int64(c.Events)) },
		OnWrite:  func(WriteStat) { writes.Add(1) },
	})
	const n = 3*exportChunk + 11
	logMany(t, s, "c", n, t0)
	got := exportAll(t, s, time.Time{})
	if len(got) != n {
		t.Fatalf("exported %d, want %d", len(got), n)
	}
	for i, e := range got {
		if want := fmt.Sprintf("c%d", i); e.SearchID != want {
			t.Fatalf("export position %d holds %s, want %s (time order)", i, e.SearchID, want)
		}
	}
	if events.Load() != n || writes.Load() != n {
		t.Fatalf("hooks saw %d committed events and %d writes, want %d", events.Load(), writes.Load(), n)
	}
	if commits.Load() >= n {
		t.Fatalf("%d commits for %d concurrent events: nothing was grouped", commits.Load(), n)
	}
	t.Logf("%d events in %d commits", n, commits.Load())
}

func TestOpenLockedAndClose(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open: got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.LogSearch(context.Background(), search("x", t0, "a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("LogSearch after Close: %v", err)
	}
	if err := s.LogClick(context.Background(), Click{SearchID: "x", DocID: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("LogClick after Close: %v", err)
	}
	if err := s.Export(context.Background(), time.Time{}, &bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Export after Close: %v", err)
	}
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("Open with no folder must fail")
	}
}

// TestSubmitSearchOrder: a click logged right after SubmitSearch returns,
// before the search's commit is awaited, always finds its search.
func TestSubmitSearchOrder(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		id := fmt.Sprint("q", i)
		p, err := s.SubmitSearch(ctx, search(id, t0, "a"))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs <- s.LogClick(ctx, Click{SearchID: id, DocID: "a"}) })
		wg.Go(func() { errs <- p.Wait(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SubmitSearch(ctx, search("q1", t0, "a")); err != nil {
		t.Fatal(err) // queued: the duplicate shows at Wait
	}
	p, _ := s.SubmitSearch(ctx, search("q2", t0, "a"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(canceled); !errors.Is(err, context.Canceled) {
		// The commit may already be done; then Wait has the real outcome.
		if !errors.Is(err, ErrDuplicateSearch) {
			t.Fatalf("Wait with a canceled context: %v", err)
		}
	}
	if err := p.Wait(ctx); !errors.Is(err, ErrDuplicateSearch) {
		t.Fatalf("Wait: %v, want ErrDuplicateSearch", err)
	}
	if _, err := s.SubmitSearch(ctx, search("", t0, "a")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid search: %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.LogSearch(ctx, search("s1", t0, "a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if got := exportAll(t, s, time.Time{}); len(got) != 0 {
		t.Fatalf("a search with a canceled context before the call was stored: %+v", got)
	}
}
