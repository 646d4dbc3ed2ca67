package engine

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/internal/fixture"
)

// The bi-encoder's speed on the real all-MiniLM-L6-v2 (RERANK_MINILM_DIR;
// skipped without it, since a random model says nothing about the cache's
// share of the time). `make bench-model` runs them and compares
// BenchmarkBiEncoderEmbedThroughput with sentence-transformers'
// SentenceTransformer.encode on the same texts
// (../testdata/reference/bench_st_encode.py --texts-file
// ../testdata/parity/pairs.jsonl --id-prefix scifact- --unique).
//
// RERANK_BENCH_DEVICE picks the device, as for the cross-encoder benchmarks.

// benchBiThreads is the CPU thread count of the embedding benchmark: the
// sentence-transformers side runs with the same (bench_st_encode.py --threads 2).
const benchBiThreads = 2

// sciFactAbstracts are the distinct abstracts of the SciFact pairs of
// ../testdata/parity/pairs.jsonl (ids scifact-NNN), in file order; the
// hand-made edge cases are left out.
func sciFactAbstracts(b *testing.B) []string {
	type line struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	seen := map[string]bool{}
	var texts []string
	for _, l := range fixture.ReadJSONL[line](b, "../../testdata/parity/pairs.jsonl") {
		if strings.HasPrefix(l.ID, "scifact-") && !seen[l.Text] {
			seen[l.Text] = true
			texts = append(texts, l.Text)
		}
	}
	if len(texts) < 100 {
		b.Fatalf("only %d distinct SciFact abstracts in pairs.jsonl", len(texts))
	}
	return texts
}

// biEngine loads all-MiniLM-L6-v2 as it is (a sentence-transformers folder)
// into an engine with its own embedding cache folder.
func biEngine(b *testing.B, threads int) *Engine {
	dir := miniLM(b)
	e := newEngine(b, Options{Device: benchDevice(), BatchSize: 32, Threads: threads, CacheDir: b.TempDir()})
	info, err := e.Load(context.Background(), contract.LoadRequest{Path: dir, Version: "minilm", Serve: true})
	if err != nil {
		b.Fatal(err)
	}
	if info.Kind != "bi-encoder" || info.MaxLength != 256 {
		b.Fatalf("%s loads as %+v, want a bi-encoder with max_seq_length 256", dir, info)
	}
	return e
}

// claim100 is one search's rerank stage, as BenchmarkRerankLatency's: a
// SciFact claim and 100 abstracts. Each suffix makes every text new to the cache.
func claim100(b *testing.B, suffixes ...string) []contract.RerankRequest {
	ps, texts := readPairs(b), sciFactAbstracts(b)
	reqs := make([]contract.RerankRequest, len(suffixes))
	for k, suffix := range suffixes {
		reqs[k].Query = ps[0].Query
		for i, t := range texts[:100] {
			reqs[k].Documents = append(reqs[k].Documents, contract.Document{ID: strconv.Itoa(i), Text: t + suffix})
		}
	}
	return reqs
}

func reportMS(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Microseconds())/1e3/float64(b.N), "ms/op")
}

// BenchmarkBiEncoderRerank100Cached: every abstract's embedding is in the
// cache, so a Rerank embeds the claim, reads 100 vectors and takes 100
// cosines.
func BenchmarkBiEncoderRerank100Cached(b *testing.B) {
	e := biEngine(b, runtime.NumCPU())
	req := claim100(b, "")[0]
	if _, err := e.Rerank(context.Background(), req); err != nil { // fills the cache
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := e.Rerank(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b, time.Since(start))
}

// BenchmarkBiEncoderRerank100Cold: none of the 100 abstracts is cached (each
// iteration appends its own number to every text), so a Rerank embeds 101
// texts and stores 100 vectors, as for documents the server has never seen.
func BenchmarkBiEncoderRerank100Cold(b *testing.B) {
	e := biEngine(b, runtime.NumCPU())
	suffixes := make([]string, b.N)
	for i := range suffixes {
		suffixes[i] = " " + strconv.Itoa(i)
	}
	reqs := claim100(b, suffixes...)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := e.Rerank(context.Background(), reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b, time.Since(start))
}

// BenchmarkBiEncoderEmbedThroughput: texts/s embedding the distinct SciFact
// abstracts, batch 32, max_seq_length 256 (the model's), 2 threads,
// tokenizing included, as SentenceTransformer.encode is timed: tokenize,
// sort by length, pad per batch, embed.
func BenchmarkBiEncoderEmbedThroughput(b *testing.B) {
	e := biEngine(b, benchBiThreads)
	texts := sciFactAbstracts(b)
	l, err := e.lookup("minilm")
	if err != nil {
		b.Fatal(err)
	}
	maxLen := l.model.Cfg.Sentence.MaxSeqLength
	tokens := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r := &request{ctx: context.Background(), model: "minilm", want: l, done: make(chan error, 1)}
		tokens = 0
		for j, text := range texts {
			p, err := l.tok.EncodeText(text, maxLen)
			if err != nil {
				b.Fatal(err)
			}
			tokens += len(p.IDs)
			r.pairs = append(r.pairs, pair{enc: p, req: r, doc: j})
		}
		r.vecs = make([][]float32, len(texts))
		if err := e.submit(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(len(texts)*b.N)/sec, "texts/s")
	b.ReportMetric(float64(len(texts)), "texts")
	b.ReportMetric(float64(tokens)/float64(len(texts)), "mean-tokens")
	b.ReportMetric(float64(maxLen), "max-seq-length")
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
}
