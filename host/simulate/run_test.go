package simulate

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/host/server"
)

const sampleDir = "../../testdata/scifact-sample"

// host is a real search host on 127.0.0.1: the sample's bleve index, a click
// log on disk, the HTTP handlers.
type host struct {
	url   string
	store *clicklog.Store
	stop  func() // stops serving and waits for pending log writes
}

func startHost(t *testing.T) *host {
	t.Helper()
	for _, k := range []string{"RERANK_CONFIG", "RERANK_ADMIN_TOKEN", "RERANK_RERANK_API_KEY"} {
		t.Setenv(k, "")
	}
	cfg, err := configs.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if err := search.SetBM25(cfg.BM25.K1, cfg.BM25.B); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "index")
	read := func(fn func(dataset.Doc) error) error {
		return dataset.ReadCorpus(filepath.Join(sampleDir, "corpus.jsonl"), fn)
	}
	if err := search.Build(context.Background(), dir, read, search.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	ix, err := search.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	store, err := clicklog.Open(cfg.DataDir, clicklog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := server.New(server.Options{Index: ix, Log: store, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			hs.Close()
			srv.Drain()
		}
	}
	t.Cleanup(stop)
	return &host{url: hs.URL, store: store, stop: stop}
}

func trainSplit(t *testing.T) ([]dataset.Query, dataset.Qrels) {
	t.Helper()
	b, err := dataset.OpenBEIR(sampleDir)
	if err != nil {
		t.Fatal(err)
	}
	qs, qrels, err := b.SplitQueries("train")
	if err != nil {
		t.Fatal(err)
	}
	return qs, qrels
}

func TestRunAgainstARealHost(t *testing.T) {
	h := startHost(t)
	qs, qrels := trainSplit(t)
	cfg := Config{Host: h.url, Queries: qs, Qrels: qrels, Users: 7, Searches: 300, Concurrency: 4, Seed: 1, Behaviour: DefaultBehaviour(PBM)}
	var progress int
	cfg.Progress = func(done int) { progress = done }
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", sum)
	if sum.Searches != 300 || sum.Failed() != 0 || sum.NotLogged != 0 || progress != 300 {
		t.Fatalf("summary %+v, progress %d", sum, progress)
	}
	if sum.Clicks == 0 || sum.Versions[""] != 300 || sum.Reranked != 0 {
		t.Fatalf("summary %+v", sum)
	}
	// Position bias (and BM25 putting relevant documents first): the top
	// ranks draw most of the clicks.
	top, bottom := sum.ClicksByRank[0]+sum.ClicksByRank[1]+sum.ClicksByRank[2], sum.ClicksByRank[7]+sum.ClicksByRank[8]+sum.ClicksByRank[9]
	if top < 4*bottom || sum.ClicksByRank[0] <= sum.ClicksByRank[4] {
		t.Fatalf("clicks by rank %v show no position bias", sum.ClicksByRank)
	}

	// Every click landed in the click log, on a search of a simulated user.
	h.stop()
	var buf bytes.Buffer
	if err := h.store.Export(context.Background(), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	searches, clicks, relevant, users := 0, 0, 0, map[string]bool{}
	byQuery := map[string]string{}
	for _, q := range qs {
		byQuery[q.Text] = q.ID
	}
	err = impression.Read(&buf, func(e impression.Impression) error {
		searches++
		users[e.User] = true
		for _, r := range e.Results {
			if r.Clicked {
				clicks += r.Clicks
				if r.DwellMS <= 0 {
					t.Errorf("click on %s without dwell", r.DocID)
				}
				if qrels[byQuery[e.Query]][r.DocID] > 0 {
					relevant++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if searches != sum.Searches || clicks != sum.Clicks || relevant != sum.RelevantClicks {
		t.Fatalf("click log holds %d searches, %d clicks (%d relevant); the run reported %d, %d (%d)",
			searches, clicks, relevant, sum.Searches, sum.Clicks, sum.RelevantClicks)
	}
	if len(users) != 7 || !users["sim1-u0"] {
		t.Fatalf("users in the log: %v", users)
	}
	// Clicks follow relevance: at most a few of the ten results shown are
	// relevant, yet they get most clicks.
	if 2*sum.RelevantClicks < sum.Clicks {
		t.Fatalf("%d of %d clicks on relevant documents", sum.RelevantClicks, sum.Clicks)
	}
}

func TestRunIsReproducible(t *testing.T) {
	h := startHost(t)
	qs, qrels := trainSplit(t)
	run := func(conc int) Summary {
		sum, err := Run(context.Background(), Config{Host: h.url, Queries: qs, Qrels: qrels, Users: 3, Concurrency: conc, Seed: 9, Behaviour: DefaultBehaviour(Cascade)})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	a, b := run(1), run(6)
	if a.Searches != len(qs) || !reflect.DeepEqual(a.ClicksByRank, b.ClicksByRank) || a.RelevantClicks != b.RelevantClicks {
		t.Fatalf("same seed, different clicks:\n%+v\n%+v", a, b)
	}
}

func TestRunRefusals(t *testing.T) {
	qs := []dataset.Query{{ID: "1", Text: "cells"}}
	good := Config{Host: "http://127.0.0.1:1", Queries: qs, Users: 1, Behaviour: DefaultBehaviour(PBM)}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Host = "http://10.1.2.3:8080" }, "only targets loopback"},
		{func(c *Config) { c.Host = "http://example.com" }, "only targets loopback"},
		{func(c *Config) { c.Host = "ftp://127.0.0.1" }, "want http"},
		{func(c *Config) { c.Host = "" }, "no host"},
		{func(c *Config) { c.Users = 0 }, "users"},
		{func(c *Config) { c.Queries = nil }, "no queries"},
		{func(c *Config) { c.Behaviour.Model = "ubm" }, "click model"},
		{func(c *Config) { c.Size = 1000 }, "size"},
		// Nothing listens on port 1: every search fails, and the run says why.
		{func(*Config) {}, "no search succeeded"},
	} {
		c := good
		tc.edit(&c)
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", c, err, tc.want)
		}
	}
	// The client refuses to dial anything but loopback, whatever the URL said.
	_, err := LoopbackClient(1).Get("http://192.0.2.1:9/")
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("dial to a non-loopback address: %v", err)
	}
}
