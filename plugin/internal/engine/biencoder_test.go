package engine

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/embcache"
	"github.com/rerankloop/rerank/plugin/internal/fixture"
)

// refText is one line of ../testdata/parity/embeddings.jsonl, written by
// ../testdata/reference/make_embeddings.py with sentence-transformers.
type refText struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	InputIDs  []int64   `json:"input_ids"`
	Embedding []float32 `json:"embedding"`
	Mean      []float32 `json:"token_embeddings_mean"`
	CLS       []float32 `json:"cls"`
	Max       []float32 `json:"max"`
}

func miniLM(t testing.TB) string {
	dir := os.Getenv("RERANK_MINILM_DIR")
	if dir == "" {
		t.Skip("RERANK_MINILM_DIR not set: the pretrained encoder is not installed")
	}
	return dir
}

// embedTexts runs texts through the model thread as Rerank does.
func embedTexts(t testing.TB, e *Engine, version string, texts []string) [][]float32 {
	t.Helper()
	l, err := e.lookup(version)
	if err != nil {
		t.Fatal(err)
	}
	r := &request{ctx: context.Background(), model: version, want: l, done: make(chan error, 1)}
	for i, text := range texts {
		p, err := l.tok.EncodeText(text, l.model.Cfg.Sentence.MaxSeqLength)
		if err != nil {
			t.Fatal(err)
		}
		r.pairs = append(r.pairs, pair{enc: p, req: r, doc: i})
	}
	r.vecs = make([][]float32, len(texts))
	if err := e.submit(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r.vecs
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// The all-MiniLM-L6-v2 folder, loaded as it is, embeds as
// SentenceTransformer.encode does, texts longer than 256 tokens included,
// and its Rerank scores are the cosines of those embeddings.
func TestBiEncoderMatchesSentenceTransformers(t *testing.T) {
	dir := miniLM(t)
	refs := fixture.ReadJSONL[refText](t, "../../testdata/parity/embeddings.jsonl")
	e := newEngine(t, Options{BatchSize: 16})
	info, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Version: "minilm", Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != "bi-encoder" || info.MaxLength != 256 || info.EmbeddingCache == "" {
		t.Fatalf("info %+v", info)
	}
	l, _ := e.lookup("minilm")
	texts := make([]string, len(refs))
	long := 0
	for i, r := range refs {
		texts[i] = r.Text
		p, err := l.tok.EncodeText(r.Text, 256)
		if err != nil || !slices.Equal(p.IDs, r.InputIDs) {
			t.Fatalf("%s: ids %v (%v), sentence-transformers %v", r.ID, p.IDs, err, r.InputIDs)
		}
		if len(r.InputIDs) == 256 {
			long++
		}
	}
	if long < 10 {
		t.Fatalf("only %d texts reach max_seq_length", long)
	}
	worst := 0.0
	for i, v := range embedTexts(t, e, "minilm", texts) {
		worst = max(worst, maxDiff(v, refs[i].Embedding))
	}
	t.Logf("%d embeddings, max abs difference %.2g", len(refs), worst)
	if worst > 1e-5 {
		t.Errorf("embeddings differ from sentence-transformers by %g (allowed 1e-5)", worst)
	}
	// Scores: claims against abstracts. Document vectors are scored as the
	// cache stores them, float16 (relative rounding 2^-11 a component), cold
	// or warm alike, which bounds each cosine's error by 2^-11 * sum |q_i d_i|;
	// the first query embeds every abstract, the others read the cache, and
	// both give the same scores (to the query embedding's batch noise).
	var docs []contract.Document
	for _, r := range refs[60:] {
		docs = append(docs, contract.Document{ID: r.ID, Text: r.Text})
	}
	var cold []float32
	for qi, q := range append([]refText{refs[0]}, refs[:10]...) {
		resp, err := e.Rerank(context.Background(), contract.RerankRequest{Query: q.Text, Documents: docs})
		if err != nil {
			t.Fatal(err)
		}
		if qi == 0 {
			cold = resp.Scores
		} else if d := maxDiff(resp.Scores, cold); qi == 1 && d > 1e-6 {
			// Only the query's own batch differs (padding): float noise, not
			// float16's 4e-5 between a fresh and a cached document vector.
			t.Errorf("the same query scores up to %g differently from the cache than cold", d)
		}
		for i, s := range resp.Scores {
			var want, abs float64
			for k, x := range q.Embedding {
				y := float64(refs[60+i].Embedding[k])
				want += float64(x) * y
				abs += math.Abs(float64(x) * y)
			}
			tol := 1e-5 + abs/2048
			if d := math.Abs(float64(s) - want); d > tol {
				t.Fatalf("query %d: score of %s for %s is %v, sentence-transformers' cosine %v (allowed %.2g)", qi, refs[60+i].ID, q.ID, s, want, tol)
			}
		}
	}
}

// CLS and max pooling, and the embeddings before Normalize, match too.
func TestBiEncoderPoolingModes(t *testing.T) {
	dir := miniLM(t)
	var refs []refText
	for _, r := range fixture.ReadJSONL[refText](t, "../../testdata/parity/embeddings.jsonl") {
		if r.CLS != nil {
			refs = append(refs, r)
		}
	}
	if len(refs) < 10 {
		t.Fatalf("only %d texts carry pooling vectors", len(refs))
	}
	for _, c := range []struct {
		pooling string
		want    func(refText) []float32
	}{
		{checkpoint.PoolMean, func(r refText) []float32 { return r.Mean }},
		{checkpoint.PoolCLS, func(r refText) []float32 { return r.CLS }},
		{checkpoint.PoolMax, func(r refText) []float32 { return r.Max }},
	} {
		out := filepath.Join(t.TempDir(), c.pooling)
		if _, err := checkpoint.Init(dir, out, checkpoint.BiEncoder, 0); err != nil {
			t.Fatal(err)
		}
		cfg, _ := checkpoint.ReadConfig(out)
		cfg.Sentence.Pooling, cfg.Sentence.Normalize = c.pooling, false
		if err := checkpoint.WriteSentence(out, cfg.Sentence); err != nil {
			t.Fatal(err)
		}
		e := newEngine(t, Options{})
		if _, err := e.Load(context.Background(), contract.LoadRequest{Path: out, Version: c.pooling, Serve: true}); err != nil {
			t.Fatal(err)
		}
		texts := make([]string, len(refs))
		for i, r := range refs {
			texts[i] = r.Text
		}
		for i, v := range embedTexts(t, e, c.pooling, texts) {
			if d := maxDiff(v, c.want(refs[i])); d > 1e-5 {
				t.Errorf("%s pooling, %s: differs by %g", c.pooling, refs[i].ID, d)
			}
		}
	}
}

// tinyBiEncoder is the tiny random model as a sentence-transformers folder.
func tinyBiEncoder(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "tiny-bi")
	if _, err := checkpoint.Init("../../testdata/tiny-ce", dir, checkpoint.BiEncoder, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Embeddings are computed once per (model, text) and kept across engines
// (a plugin restart); an edited text under the same id is embedded anew;
// another model never reads them.
func TestEmbeddingCacheSurvivesRestartAndFollowsText(t *testing.T) {
	model, cacheDir := tinyBiEncoder(t), t.TempDir()
	docs := []contract.Document{{ID: "a", Text: "aspirin lowers the risk of heart attacks"}, {ID: "b", Text: "the weather is sunny"}}
	rerank := func(e *Engine, docs []contract.Document) []float32 {
		resp, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin heart", Documents: docs})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Scores
	}
	e1, err := New(Options{Device: "cpu", CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e1.Load(context.Background(), contract.LoadRequest{Path: model, Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	first := rerank(e1, docs)
	l, _ := e1.lookup("")
	if n, _ := l.cache.Len(); n != 2 {
		t.Fatalf("%d embeddings cached, want 2", n)
	}
	e1.Close()

	e2 := newEngine(t, Options{CacheDir: cacheDir})
	info2, err := e2.Load(context.Background(), contract.LoadRequest{Path: model, Serve: true})
	if err != nil || info2.EmbeddingCache != info.EmbeddingCache {
		t.Fatalf("reloaded: %+v, %v (first %s)", info2, err, info.EmbeddingCache)
	}
	l, _ = e2.lookup("")
	// Poison the cached vector of "b": a score read from the cache shows it.
	poison := make([]float32, l.cache.Dim())
	poison[0] = 1
	keyB := []embcache.Key{embcache.KeyOf(docs[1].Text)}
	if err := l.cache.Put(keyB, [][]float32{poison}); err != nil {
		t.Fatal(err)
	}
	again := rerank(e2, docs)
	if math.Abs(float64(again[0]-first[0])) > 1e-3 {
		t.Errorf("cached embedding of a gives %v, computed %v", again[0], first[0])
	}
	edited := []contract.Document{docs[0], {ID: "b", Text: "the weather is sunny today"}}
	if n, _ := l.cache.Len(); n != 2 {
		t.Fatalf("the put of an existing key added an entry")
	}
	rerank(e2, edited)
	if n, _ := l.cache.Len(); n != 3 {
		t.Errorf("an edited text under the same id was not embedded anew: %d entries", n)
	}
	// A model with other weights uses another file.
	other := filepath.Join(t.TempDir(), "other")
	if err := checkpoint.WriteRandom(other, checkpoint.TinyConfig(), 7); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Init(other, other, checkpoint.BiEncoder, 0); err != nil {
		t.Fatal(err)
	}
	oi, err := e2.Load(context.Background(), contract.LoadRequest{Path: other, Version: "other"})
	if err != nil || oi.EmbeddingCache == info.EmbeddingCache {
		t.Errorf("another model's cache: %+v, %v", oi, err)
	}
}

// A corrupt cache file is reported (an error in the log naming it), kept
// aside for inspection and never read: the model loads with an empty cache
// and its scores are computed afresh.
func TestCorruptEmbeddingCacheIsSetAside(t *testing.T) {
	model, cacheDir := tinyBiEncoder(t), t.TempDir()
	var logged bytes.Buffer
	e := newEngine(t, Options{CacheDir: cacheDir, Log: slog.New(slog.NewTextHandler(&logged, nil))})
	docs := []contract.Document{{ID: "a", Text: "aspirin and the heart"}, {ID: "b", Text: "the weather"}}
	info, err := e.Load(context.Background(), contract.LoadRequest{Path: model, Version: "bi", Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin", Documents: docs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: "../../testdata/tiny-ce", Version: "ce", Serve: true}); err != nil {
		t.Fatal(err) // retires "bi" and closes its cache
	}
	if err := os.WriteFile(info.EmbeddingCache, []byte(strings.Repeat("garbage!", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: model, Version: "bi", Serve: true}); err != nil {
		t.Fatalf("a corrupt cache kept the model from loading: %v", err)
	}
	again, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "aspirin", Documents: docs})
	if err != nil || maxDiff(again.Scores, fresh.Scores) > 1e-6 {
		t.Fatalf("after the corrupt cache: %+v, %v; want the scores %v", again, err, fresh.Scores)
	}
	aside, _ := filepath.Glob(info.EmbeddingCache + ".bad-*")
	if len(aside) != 1 || !strings.Contains(logged.String(), info.EmbeddingCache) || !strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("the corrupt file was not reported and kept aside: %v\n%s", aside, logged.String())
	}
}

// A swap from a cross-encoder to a bi-encoder while requests are queued:
// every request is answered by one model, none fails.
func TestSwapBetweenKindsUnderLoad(t *testing.T) {
	bi := tinyBiEncoder(t)
	e := newEngine(t, Options{MaxLength: 64})
	if _, err := e.Load(context.Background(), contract.LoadRequest{Path: "../../testdata/tiny-ce", Version: "ce", Serve: true}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 200)
	for i := range 200 {
		go func() {
			resp, err := e.Rerank(context.Background(), contract.RerankRequest{Query: "q", Documents: []contract.Document{{ID: "d", Text: fmt.Sprint("text ", i)}}})
			if err == nil && resp.ModelVersion != "ce" && resp.ModelVersion != "bi" {
				err = fmt.Errorf("version %q", resp.ModelVersion)
			}
			errc <- err
		}()
		if i == 100 {
			if _, err := e.Load(context.Background(), contract.LoadRequest{Path: bi, Version: "bi", Serve: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 200 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}
