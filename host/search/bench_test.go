package search

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

// BenchmarkSearch times one BM25 query with its top 10 stored documents, and
// their snippets, on full SciFact when /work/shared is present (RERANK_BENCH_SCIFACT
// overrides), else on the sample.
//
//	go test ./host/search -run '^$' -bench . -benchmem
func BenchmarkSearch(b *testing.B) {
	dir := os.Getenv("RERANK_BENCH_SCIFACT")
	if dir == "" {
		dir = "../../../shared/datasets/scifact"
	}
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		dir = sample
	}
	idx := filepath.Join(b.TempDir(), "index")
	err := Build(context.Background(), idx, func(fn func(Doc) error) error {
		return dataset.ReadCorpus(filepath.Join(dir, "corpus.jsonl"), fn)
	}, Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ix, err := Open(idx)
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	SetBM25(0.9, 0.4)
	qs, err := dataset.ReadQueries(filepath.Join(dir, "queries.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	n, _ := ix.Count()
	b.Logf("%d documents, %d queries", n, len(qs))
	ctx := context.Background()
	var hits []Hit
	b.Run("bm25-top10", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			hits, _, err = ix.Search(ctx, qs[i%len(qs)].Text, 10, 0)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("snippets-top10", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			q := qs[i%len(qs)].Text
			for _, h := range hits {
				ix.Snippet(q, h.Text, 240)
			}
		}
	})
}
