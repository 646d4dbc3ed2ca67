package search

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

const sample = "../../testdata/scifact-sample"

func readSample(fn func(Doc) error) error {
	return dataset.ReadCorpus(filepath.Join(sample, "corpus.jsonl"), fn)
}

func buildSample(t testing.TB, analyzer string) (*Index, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "index")
	if err := Build(context.Background(), dir, readSample, Options{Analyzer: analyzer}, nil); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix, dir
}

func TestBuildAndSearchSample(t *testing.T) {
	if err := SetBM25(0.9, 0.4); err != nil {
		t.Fatal(err)
	}
	var calls, last int
	dir := filepath.Join(t.TempDir(), "index")
	err := Build(context.Background(), dir, readSample, Options{BatchSize: 300, ExpectedDocs: 1000},
		func(done, total int) {
			calls++
			last = done
			if total != 1000 {
				t.Errorf("progress total %d, want 1000", total)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 4 || last != 1000 {
		t.Errorf("progress: %d calls, last %d; want 4 calls ending at 1000", calls, last)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if n, _ := ix.Count(); n != 1000 {
		t.Fatalf("count %d, want 1000", n)
	}
	if m := ix.Meta(); m.Analyzer != "en" || m.Docs != 1000 {
		t.Fatalf("meta %+v", m)
	}

	// BM25 must find a judged document in the top 10 for most test claims.
	b, err := dataset.OpenBEIR(sample)
	if err != nil {
		t.Fatal(err)
	}
	queries, qrels, err := b.SplitQueries("test")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, q := range queries {
		hits, total, err := ix.Search(context.Background(), q.Text, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if total < len(hits) {
			t.Fatalf("total %d below %d hits", total, len(hits))
		}
		for i, h := range hits {
			if i > 0 && h.Score > hits[i-1].Score {
				t.Fatalf("%q: hits not sorted by score", q.Text)
			}
			if h.Title == "" && h.Text == "" {
				t.Fatalf("hit %s carries no stored title or text", h.ID)
			}
			if qrels[q.ID][h.ID] > 0 {
				found++
				break
			}
		}
	}
	if len(queries) != 100 || found < 75 {
		t.Fatalf("a judged document in the top 10 for %d of %d test queries, want at least 75", found, len(queries))
	}
}

func TestSearchPagingIsStable(t *testing.T) {
	ix, _ := buildSample(t, "en")
	ctx := context.Background()
	all, total, err := ix.Search(ctx, "cancer cells", 30, 0)
	if err != nil || len(all) != 30 || total < 30 {
		t.Fatalf("got %d hits of %d, err %v", len(all), total, err)
	}
	page, _, err := ix.Search(ctx, "cancer cells", 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range page {
		if page[i].ID != all[10+i].ID {
			t.Fatalf("page 2 hit %d is %s, want %s", i, page[i].ID, all[10+i].ID)
		}
	}
	// Query syntax is not interpreted: these are plain words.
	for _, q := range []string{`+title:"x" -y~2 ^3 /re.*/`, "", "the of and", "ünïcödé 細胞"} {
		if _, _, err := ix.Search(ctx, q, 10, 0); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
	if hits, total, _ := ix.Search(ctx, "the of and", 10, 0); len(hits) != 0 || total != 0 {
		t.Errorf("a stop-word query matched %d", total)
	}
}

func TestAnalyzers(t *testing.T) {
	en, _ := buildSample(t, "en")
	std, _ := buildSample(t, "standard")
	// The corpus says "mitochondrial"/"mitochondria"; only the stemmer joins plural and singular.
	_, nEn, _ := en.Search(context.Background(), "tumours", 10, 0)
	_, nStd, _ := std.Search(context.Background(), "tumours", 10, 0)
	if nEn <= nStd {
		t.Fatalf("en matched %d for a plural, standard %d: want the stemmer to match more", nEn, nStd)
	}
	if err := Build(context.Background(), filepath.Join(t.TempDir(), "x"), readSample, Options{Analyzer: "fr"}, nil); err == nil ||
		!strings.Contains(err.Error(), "unknown analyzer") {
		t.Fatalf("analyzer fr: %v", err)
	}
}

func TestPutGetDelete(t *testing.T) {
	ix, _ := buildSample(t, "en")
	ctx := context.Background()
	d := Doc{ID: "new-1", Title: "Quokkafin regeneration", Text: "Zorblastema cells regrow the quokkafin."}
	if err := ix.Put(d); err != nil {
		t.Fatal(err)
	}
	got, err := ix.Get("new-1")
	if err != nil || got != d {
		t.Fatalf("get: %+v %v", got, err)
	}
	hits, _, _ := ix.Search(ctx, "quokkafin zorblastema", 1, 0)
	if len(hits) != 1 || hits[0].ID != "new-1" {
		t.Fatalf("new document not found first: %+v", hits)
	}
	d.Text = "Replaced text about axolotl limbs."
	if err := ix.Put(d); err != nil {
		t.Fatal(err)
	}
	if hits, _, _ := ix.Search(ctx, "zorblastema", 10, 0); len(hits) != 0 {
		t.Fatalf("old text still matches after update: %+v", hits)
	}
	if n, _ := ix.Count(); n != 1001 {
		t.Fatalf("count %d after add and update, want 1001", n)
	}
	if err := ix.Delete("new-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Get("new-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := ix.Delete("new-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := ix.Put(Doc{Title: "no id"}); err == nil {
		t.Fatal("put without id succeeded")
	}
}

func TestFailedBuildKeepsOldIndex(t *testing.T) {
	ix, dir := buildSample(t, "en")
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Build(ctx, dir, func(fn func(Doc) error) error {
		return readSample(func(d Doc) error {
			n++
			if n == 500 {
				cancel() // an interrupt mid-build
			}
			return fn(d)
		})
	}, Options{BatchSize: 100}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("build: %v, want canceled", err)
	}
	boom := errors.New("disk on fire")
	err = Build(context.Background(), dir, func(fn func(Doc) error) error {
		fn(Doc{ID: "a", Text: "x"})
		return boom
	}, Options{}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("build: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a served index: %v, want an in-use error", err)
	}
	if c, _ := ix.Count(); c != 1000 {
		t.Fatalf("old index has %d documents after failed builds, want 1000", c)
	}
	hits, _, err := ix.Search(context.Background(), "cancer", 5, 0)
	if err != nil || len(hits) != 5 {
		t.Fatalf("old index does not serve after failed builds: %d hits, %v", len(hits), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("leftovers beside the index: %v", entries)
	}
}

func TestRebuildReplaces(t *testing.T) {
	_, dir := buildSample(t, "en")
	err := Build(context.Background(), dir, func(fn func(Doc) error) error {
		return fn(Doc{ID: "only", Title: "t", Text: "x"})
	}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if c, _ := ix.Count(); c != 1 {
		t.Fatalf("rebuilt index has %d documents, want 1", c)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("leftovers beside the rebuilt index: %v", entries)
	}
}

func TestRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("precious"), 0o644)
	err := Build(context.Background(), dir, readSample, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("build over a folder with other files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "thesis.tex")); err != nil {
		t.Fatal("file lost")
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "no index") {
		t.Fatalf("open a folder without an index: %v", err)
	}
}

func TestSetBM25Rejects(t *testing.T) {
	for _, kb := range [][2]float64{{0, 0.5}, {-1, 0.5}, {1, -0.1}, {1, 1.1}} {
		if err := SetBM25(kb[0], kb[1]); err == nil {
			t.Errorf("SetBM25(%g, %g) accepted", kb[0], kb[1])
		}
	}
}
