package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/interleave"
	"github.com/rerankloop/rerank/host/opensearch"
	"github.com/rerankloop/rerank/host/search"
)

// ubiMappings are the UBI plugin's field types for what we write.
var ubiMappings = map[string]any{
	"ubi_queries": map[string]any{"properties": map[string]any{
		"timestamp": map[string]string{"type": "date"}, "query_id": map[string]string{"type": "keyword"},
		"query_response_id": map[string]string{"type": "keyword"}, "query_response_hit_ids": map[string]string{"type": "keyword"},
		"user_query": map[string]string{"type": "keyword"}, "client_id": map[string]string{"type": "keyword"},
		"application": map[string]string{"type": "keyword"}, "query_attributes": map[string]string{"type": "object"},
	}},
	"ubi_events": map[string]any{"properties": map[string]any{
		"timestamp": map[string]string{"type": "date"}, "action_name": map[string]string{"type": "keyword"},
		"query_id": map[string]string{"type": "keyword"}, "client_id": map[string]string{"type": "keyword"},
		"session_id": map[string]string{"type": "keyword"}, "message_type": map[string]string{"type": "keyword"},
		"event_attributes": map[string]any{"properties": map[string]any{
			"object":   map[string]any{"properties": map[string]any{"object_id": map[string]string{"type": "keyword"}, "object_id_field": map[string]string{"type": "keyword"}}},
			"position": map[string]any{"properties": map[string]any{"ordinal": map[string]string{"type": "integer"}}},
		}},
	}},
}

func createUBIIndices(t *testing.T, c *opensearch.Client) {
	t.Helper()
	for name, m := range ubiMappings {
		if err := c.Do(context.Background(), http.MethodPut, "/"+name, map[string]any{"mappings": m}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// ubiLog builds UBI documents the way an application using the UBI schema
// logs them: one query per search with the hits shown, one click event per
// relevant hit in the top clickDepth (a deterministic user).
type ubiLog struct {
	queries, events []opensearch.Doc
	clicks          int
}

const clickDepth = 5

func (l *ubiLog) search(qid, text, client string, at time.Time, hits []string, qrel map[string]int, attrs map[string]any) {
	l.queries = append(l.queries, opensearch.Doc{ID: qid, Source: map[string]any{
		"query_id": qid, "user_query": text, "client_id": client, "application": "scifact", "query_response_id": "r-" + qid,
		"query_response_hit_ids": hits, "timestamp": at.Format(time.RFC3339Nano), "query_attributes": attrs}})
	for pos, id := range hits {
		if pos < clickDepth && qrel[id] > 0 {
			l.click(fmt.Sprintf("ev-%s-%d", qid, pos), qid, client, id, pos+1, at.Add(10*time.Second))
			l.clicks++
		}
	}
}

func (l *ubiLog) click(id, qid, client, doc string, ordinal int, at time.Time) {
	l.event(id, map[string]any{"action_name": "click", "query_id": qid, "client_id": client, "timestamp": at.Format(time.RFC3339Nano),
		"message_type": "INFO", "event_attributes": map[string]any{"object": map[string]string{"object_id": doc, "object_id_field": "_id"},
			"position": map[string]int{"ordinal": ordinal}}})
}

func (l *ubiLog) event(id string, src map[string]any) {
	l.events = append(l.events, opensearch.Doc{ID: id, Source: src})
}

func (l *ubiLog) write(t *testing.T, c *opensearch.Client) {
	t.Helper()
	ctx := context.Background()
	if err := c.Bulk(ctx, "ubi_queries", l.queries); err != nil {
		t.Fatal(err)
	}
	if err := c.Bulk(ctx, "ubi_events", l.events); err != nil {
		t.Fatal(err)
	}
}

func hitIDs(res *opensearch.SearchResult) []string {
	var ids []string
	for _, h := range res.Hits.Hits {
		ids = append(ids, h.ID)
	}
	return ids
}

// countLog exports data's click log: searches and clicked results.
func countLog(t *testing.T, data string) (searches, clicks int) {
	t.Helper()
	store, err := clicklog.Open(data, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var buf strings.Builder
	if err := store.Export(context.Background(), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	err = impression.Read(bufio.NewReader(strings.NewReader(buf.String())), func(imp impression.Impression) error {
		searches++
		for _, r := range imp.Results {
			clicks += r.Clicks
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return searches, clicks
}

// flakyProxy forwards to the node and, once armed, answers 503 to every
// search after the first n: a node failing in the middle of an import.
type flakyProxy struct {
	searches, failAfter atomic.Int32
}

func (p *flakyProxy) start(t *testing.T, node string) string {
	u, _ := url.Parse(node)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_search") {
			if n := p.searches.Add(1); p.failAfter.Load() > 0 && n > p.failAfter.Load() {
				http.Error(w, `{"error":"node going down"}`, http.StatusServiceUnavailable)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func testUBIImport(t *testing.T, c *opensearch.Client, plugin string, queries []dataset.Query, qrels dataset.Qrels) {
	ctx := context.Background()
	var l ubiLog
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	shown := map[string]bool{}
	const n = 40
	for i, q := range queries[:n] {
		res, err := c.Search(ctx, osIndex, "rerankloop", opensearch.MatchQuery("text", q.Text, 10, true))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range hitIDs(res) {
			shown[id] = true
		}
		l.search(fmt.Sprintf("qid-%03d", i), q.Text, fmt.Sprintf("user-%d", i%7), base.Add(time.Duration(i)*time.Minute), hitIDs(res), qrels[q.ID],
			map[string]any{"model_version": "v1", "session_id": fmt.Sprintf("s-%d", i%11)})
	}
	// What a real log also holds: other actions, events on queries never
	// logged or on documents not shown, and broken documents.
	at := base.Add(time.Hour)
	for i := range 3 {
		l.event(fmt.Sprintf("ev-hover-%d", i), map[string]any{"action_name": "hover", "query_id": "qid-000", "timestamp": at.Format(time.RFC3339)})
	}
	l.click("ev-unknown-1", "qid-nope-1", "user-1", "5836", 1, at)
	l.click("ev-unknown-2", "qid-nope-2", "user-1", "5836", 1, at)
	l.click("ev-not-shown", "qid-000", "user-0", "no-such-doc", 1, at)
	l.event("ev-malformed", map[string]any{"action_name": "click", "query_id": "qid-001", "timestamp": at.Format(time.RFC3339)})
	l.queries = append(l.queries, opensearch.Doc{ID: "qid-bad", Source: map[string]any{"query_id": "qid-bad", "user_query": "no hits recorded", "timestamp": at.Format(time.RFC3339)}})
	l.write(t, c)

	data := t.TempDir()
	var proxy flakyProxy
	via := proxy.start(t, c.URL())
	args := []string{"logs", "import-ubi", "--cluster", via, "--data-dir", data, "--page-size", "7", "--copy-docs-from", osIndex, "--title-field", ""}

	// The node fails while the events are read: the searches and the events
	// of the complete pages are in, and the error says how far it got.
	proxy.failAfter.Store(10)
	out, err := evalCLI(t, args...)
	if err == nil || !strings.Contains(err.Error(), "ubi_events") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("import through a failing node: %v\n%s", err, out)
	}
	t.Logf("failed import: %v", err)
	// Again, the node healthy: it goes on from the cursor and completes.
	proxy.failAfter.Store(0)
	out, err = evalCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("resumed import: %s", out)
	// The malformed query, counted by the failed run, is read again: it lies
	// within the lookback (ubi.lookback, 10m) of the queries' position.
	if want := "skipped 1 events on documents the query did not show, 2 events on unknown queries, 1 malformed events, 1 malformed queries\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if s, k := countLog(t, data); s != n || k != l.clicks {
		t.Fatalf("click log holds %d searches and %d clicks; the UBI log has %d and %d", s, k, n, l.clicks)
	}
	// A crash before the cursor was saved: everything is read again and
	// nothing is stored twice.
	if err := os.Remove(filepath.Join(data, "ubi-cursors.json")); err != nil {
		t.Fatal(err)
	}
	out, err = evalCLI(t, args...)
	want := fmt.Sprintf("imported 0 searches and 0 clicks; %d searches and %d clicks were already in the log; 3 other events; "+
		"skipped 1 events on documents the query did not show, 2 events on unknown queries, 1 malformed events, 1 malformed queries", n, l.clicks)
	if err != nil || !strings.Contains(out, want) {
		t.Fatalf("re-import: %v\n%s\nwant %q", err, out, want)
	}
	if s, k := countLog(t, data); s != n || k != l.clicks {
		t.Fatalf("after the re-import the log holds %d searches and %d clicks, want %d and %d", s, k, n, l.clicks)
	}
	// Late documents: a search and its click stamped 5 minutes before the
	// position reached, indexed only now. Read after the position alone they
	// are missed; with the lookback they are imported once.
	var late ubiLog
	late.search("qid-late", "myeloid-derived suppressor cells", "user-late", base.Add(55*time.Minute), []string{"5836"}, map[string]int{"5836": 1}, nil)
	late.write(t, c)
	shown["5836"] = true
	if out, err = evalCLI(t, append(args, "--lookback", "0s")...); err != nil || !strings.Contains(out, "imported 0 searches and 0 clicks") {
		t.Fatalf("import without lookback: %v\n%s", err, out)
	}
	for range 2 {
		out, err = evalCLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(out, "imported 0 searches and 0 clicks; 1 searches and 1 clicks were already in the log") {
		t.Fatalf("the second import with the lookback:\n%s", out)
	}
	if s, k := countLog(t, data); s != n+1 || k != l.clicks+1 {
		t.Fatalf("with the late search the log holds %d searches and %d clicks, want %d and %d", s, k, n+1, l.clicks+1)
	}
	testServeImportsUBI(t, c, n+1, l.clicks+1)

	ix, err := search.Open(filepath.Join(data, "index"))
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := ix.Count()
	ix.Close()
	if docs != len(shown) {
		t.Errorf("local index holds %d documents, the searches showed %d", docs, len(shown))
	}
	// The closed loop reads the imported log and the copied documents as it
	// reads the bleve host's: a candidate is trained on these searches.
	for k, v := range map[string]string{
		"RERANK_CONFIG": "", "RERANK_RERANK_MODEL_PATH": tinyModel, "RERANK_RERANK_PLUGIN_PATH": plugin, "RERANK_RERANK_DEVICE": "cpu",
		"RERANK_RERANK_MAX_LENGTH": "64", "RERANK_RERANK_DEADLINE": "30s", "RERANK_RETRAIN_MIN_CLICKS": "10",
		"RERANK_RETRAIN_LEARNING_RATE": "0.001", "RERANK_RETRAIN_MAX_LENGTH": "64", "RERANK_RETRAIN_EVAL_DEPTH": "10",
	} {
		t.Setenv(k, v)
	}
	out, err = evalCLI(t, "retrain", "--data-dir", data)
	if want := fmt.Sprintf("candidate v2 (parent v1, %d searches", n+1); err != nil || !strings.Contains(out, want) {
		t.Fatalf("retrain on the imported log: %v, output lacks %q:\n%s", err, want, out)
	}
	summary := fmt.Sprintf("opensearch e2e: import-ubi: %d searches, %d clicks imported; after a node failure and a lost cursor, still %d and %d; a late search and click imported once; serve imported them all itself; retrain trained candidate v2 on them", n, l.clicks, n, l.clicks)
	t.Log(summary)
	fmt.Println(summary)

	// An unreachable node is named.
	_, err = evalCLI(t, "logs", "import-ubi", "--cluster", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("unreachable node: %v", err)
	}
}

// testServeImportsUBI starts a rerank-only host importing the node's UBI
// logs every second and checks, once its click log has seen as many writes
// as the node holds searches and clicks, that it holds each exactly once.
func testServeImportsUBI(t *testing.T, c *opensearch.Client, searches, clicks int) {
	t.Helper()
	data := t.TempDir()
	cmd := rerank(t, "serve", "--rerank-only", "--listen", "127.0.0.1:0", "--data-dir", data)
	cmd.Env = append(cmd.Env, "RERANK_UBI_CLUSTER="+c.URL(), "RERANK_UBI_EVERY=1s", "RERANK_UBI_COPY_DOCS_FROM="+osIndex)
	base := serveAddr(t, cmd)
	writes := func(kind string) int {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`rerank_clicklog_write_duration_seconds_count\{kind="` + kind + `"\} (\d+)`).FindSubmatch(raw)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	// Two imports: the first stores everything, the second (its lookback)
	// finds the latest again; the log must hold each once.
	deadline := time.Now().Add(30 * time.Second)
	for writes("search") < searches+1 || writes("click") < clicks+1 {
		if time.Now().After(deadline) {
			t.Fatalf("serve's UBI import: %d search and %d click writes in 30 s, want %d and %d", writes("search"), writes("click"), searches+1, clicks+1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if s, k := countLog(t, data); s != searches || k != clicks {
		t.Fatalf("serve imported %d searches and %d clicks, the node holds %d and %d", s, k, searches, clicks)
	}
	ix, err := search.Open(filepath.Join(data, "index"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if n, _ := ix.Count(); n == 0 {
		t.Fatal("serve copied no shown documents into its index")
	}
}

// testClusterExperiment runs a split and an interleaved experiment through
// two pipelines, control (tiny model) and treatment (another seed's model,
// served by a second rerank-only host), logs them in UBI, imports and tallies.
func testClusterExperiment(t *testing.T, c *opensearch.Client, plugin string, queries []dataset.Query, qrels dataset.Qrels) {
	ctx := context.Background()
	treatment := filepath.Join(t.TempDir(), "treatment")
	if out, err := evalCLI(t, "model", "init", "--tiny", "--seed", "7", "--out", treatment); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	host2 := startRerankOnly(t, plugin, t.TempDir(), treatment)
	st, err := c.CreateRerankStage(ctx, "treatment", host2+"/v1/rerank", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutRerankPipeline(ctx, "rerank-treatment", st.ModelID, "text"); err != nil {
		t.Fatal(err)
	}
	pipeline := map[interleave.Team]string{interleave.Control: "rerankloop", interleave.Treatment: "rerank-treatment"}

	var l ubiLog
	base := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	arms := map[interleave.Team]int{}
	interleaved, withClicks := 0, 0
	for i, q := range queries {
		at := base.Add(time.Duration(i) * time.Minute)
		user := fmt.Sprintf("user-%d", i)
		arm, _ := interleave.Assign("exp-split", user, 1)
		res, err := c.Search(ctx, osIndex, pipeline[arm], opensearch.MatchQuery("text", q.Text, 10, true))
		if err != nil {
			t.Fatal(err)
		}
		arms[arm]++
		l.search(fmt.Sprintf("split-%03d", i), q.Text, user, at, hitIDs(res), qrels[q.ID], map[string]any{"experiment": "exp-split", "arm": string(arm)})

		var lists [2][]string
		for k, team := range []interleave.Team{interleave.Control, interleave.Treatment} {
			res, err := c.Search(ctx, osIndex, pipeline[team], opensearch.MatchQuery("text", q.Text, 10, true))
			if err != nil {
				t.Fatal(err)
			}
			lists[k] = hitIDs(res)
		}
		picks := interleave.TeamDraft(lists[0], lists[1], 10, rand.New(rand.NewPCG(uint64(i), 1)))
		var ids, teams []string
		clicked := false
		for pos, p := range picks {
			ids, teams = append(ids, p.DocID), append(teams, string(p.Team))
			clicked = clicked || (pos < clickDepth && qrels[q.ID][p.DocID] > 0)
		}
		interleaved++
		if clicked {
			withClicks++
		}
		l.search(fmt.Sprintf("il-%03d", i), q.Text, user, at.Add(time.Second), ids, qrels[q.ID], map[string]any{"experiment": "exp-il", "arm": "interleaved", "teams": teams})
	}
	l.write(t, c)
	data := t.TempDir()
	if out, err := evalCLI(t, "logs", "import-ubi", "--cluster", c.URL(), "--data-dir", data); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	split, err := evalCLI(t, "experiment", "evaluate", "--experiment", "exp-split", "--method", "split", "--data-dir", data, "--control", "v1", "--treatment", "seed7")
	if err != nil {
		t.Fatalf("%v\n%s", err, split)
	}
	for _, want := range []string{fmt.Sprintf("control v1  %d", arms[interleave.Control]), fmt.Sprintf("treatment seed7  %d", arms[interleave.Treatment])} {
		if !strings.Contains(strings.Join(strings.Fields(split), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("split tally lacks %q:\n%s", want, split)
		}
	}
	il, err := evalCLI(t, "experiment", "evaluate", "--experiment", "exp-il", "--method", "interleave", "--data-dir", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, il)
	}
	if want := fmt.Sprintf("%d interleaved searches, %d with clicks", interleaved, withClicks); !strings.Contains(il, want) {
		t.Errorf("interleave tally lacks %q:\n%s", want, il)
	}
	t.Logf("split experiment through two pipelines:\n%s\ninterleaved:\n%s", split, il)
	fmt.Printf("opensearch e2e: experiments from UBI:\n%s%s", split, il)
}
