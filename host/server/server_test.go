package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/evalharness/fusion"
	"github.com/rerankloop/rerank/finetune/impression"
	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/search"
	"github.com/rerankloop/rerank/plugin/contract"
)

const sampleDir = "../../testdata/scifact-sample"

// The sample index is built once into a folder shared by the package's tests;
// tests that change documents build their own (newIndex).
var (
	sharedOnce sync.Once
	sharedIx   *search.Index
	sharedErr  error
	sharedDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedIx != nil {
		sharedIx.Close()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

func readSample(fn func(dataset.Doc) error) error {
	return dataset.ReadCorpus(filepath.Join(sampleDir, "corpus.jsonl"), fn)
}

func sampleIndex(t testing.TB) *search.Index {
	t.Helper()
	sharedOnce.Do(func() {
		if sharedErr = search.SetBM25(0.9, 0.4); sharedErr != nil {
			return
		}
		sharedDir, sharedErr = os.MkdirTemp("", "server-test-index-")
		if sharedErr != nil {
			return
		}
		dir := filepath.Join(sharedDir, "index")
		if sharedErr = search.Build(context.Background(), dir, readSample, search.Options{}, nil); sharedErr != nil {
			return
		}
		sharedIx, sharedErr = search.Open(dir)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedIx
}

func newIndex(t testing.TB) *search.Index {
	t.Helper()
	sampleIndex(t) // sets BM25 parameters
	dir := filepath.Join(t.TempDir(), "index")
	if err := search.Build(context.Background(), dir, readSample, search.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	ix, err := search.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func testConfig(t testing.TB) configs.Config {
	t.Helper()
	for _, k := range []string{"RERANK_CONFIG", "RERANK_ADMIN_TOKEN", "RERANK_RERANK_API_KEY"} {
		os.Unsetenv(k)
	}
	c, err := configs.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type env struct {
	url   string
	store *clicklog.Store
	srv   *Server
}

type setup struct {
	ix       *search.Index
	reranker contract.Reranker
	noLog    bool
	config   func(*configs.Config)
	fusion   func(version string) (fusion.Params, bool)
	cascade  string // the cascade model's name (Options.Cascade)
}

func start(t testing.TB, s setup) *env {
	t.Helper()
	if s.ix == nil {
		s.ix = sampleIndex(t)
	}
	cfg := testConfig(t)
	cfg.DataDir = t.TempDir()
	if s.config != nil {
		s.config(&cfg)
	}
	m := NewMetrics()
	var store *clicklog.Store
	if !s.noLog {
		var err error
		store, err = clicklog.Open(cfg.DataDir, clicklog.Options{OnWrite: m.ObserveLogWrite})
		if err != nil {
			t.Fatal(err)
		}
	}
	srv, err := New(Options{Index: s.ix, Reranker: s.reranker, Log: store, Config: cfg, Metrics: m, Fusion: s.fusion, Cascade: s.cascade})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Drain()
		if store != nil {
			store.Close()
		}
	})
	return &env{url: hs.URL, store: store, srv: srv}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func do(t testing.TB, method, url, body string, out any, header ...string) (int, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON (%v): %.300s", method, url, err, raw)
		}
	}
	return resp.StatusCode, resp.Header
}

func exportLog(t testing.TB, s *clicklog.Store) []impression.Impression {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(context.Background(), time.Time{}, &buf); err != nil {
		t.Fatal(err)
	}
	var out []impression.Impression
	if err := impression.Read(&buf, func(e impression.Impression) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitLogged waits for the asynchronous impression commits of e's searches.
func waitLogged(e *env) { e.srv.Drain() }

// overlapReranker is a second, tiny implementation of contract.Reranker: it
// scores a document by the share of the query's words it contains. Its
// order differs from BM25's, which lets tests see the rerank stage work.
type overlapReranker struct {
	delay time.Duration // before answering, bounded by ctx
	err   error
	short bool // return one score too few
	nan   bool // score every document NaN
}

func words(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		out[w] = true
	}
	return out
}

func overlapScore(query, text string) float32 {
	q, d := words(query), words(text)
	n := 0
	for w := range q {
		if d[w] {
			n++
		}
	}
	// Shorter documents win ties between equal overlaps.
	return float32(n) + 1/float32(2+len(d))
}

func (o *overlapReranker) Rerank(ctx context.Context, req contract.RerankRequest) (contract.RerankResponse, error) {
	if err := wait(ctx, o.delay); err != nil {
		return contract.RerankResponse{}, err
	}
	if o.err != nil {
		return contract.RerankResponse{}, o.err
	}
	if req.Model != "" && req.Model != "overlap-v1" { // as the plugin answers
		return contract.RerankResponse{}, fmt.Errorf("%w: %q", contract.ErrNoModel, req.Model)
	}
	res := contract.RerankResponse{ModelVersion: "overlap-v1", Scores: make([]float32, len(req.Documents))}
	for i, d := range req.Documents {
		s := overlapScore(req.Query, d.Text)
		if o.nan {
			s = float32(math.NaN())
		}
		if req.Sigmoid {
			s = float32(1 / (1 + math.Exp(-float64(s))))
		}
		res.Scores[i] = s
		res.Ranking = append(res.Ranking, contract.Ranked{Index: i, ID: d.ID, Score: s})
	}
	sort.SliceStable(res.Ranking, func(a, b int) bool { return res.Ranking[a].Score > res.Ranking[b].Score })
	if req.TopN > 0 && req.TopN < len(res.Ranking) {
		res.Ranking = res.Ranking[:req.TopN]
	}
	if o.short {
		res.Scores = res.Scores[1:]
	}
	return res, nil
}

// wait waits d, or less if ctx ends first (its error).
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *overlapReranker) Load(context.Context, contract.LoadRequest) (contract.ModelInfo, error) {
	return contract.ModelInfo{}, o.err
}

func (o *overlapReranker) Unload(context.Context, string) error { return o.err }

func (o *overlapReranker) Info(context.Context) ([]contract.ModelInfo, error) {
	return []contract.ModelInfo{{Version: "overlap-v1", Serving: true}}, o.err
}

func (o *overlapReranker) Health(context.Context) error { return o.err }

// restarts makes the reranker look supervised, for the restart metric.
func (o *overlapReranker) Restarts() int64 { return 3 }
