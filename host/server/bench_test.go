package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rerankloop/rerank/configs"
	"github.com/rerankloop/rerank/evalharness/dataset"
	"github.com/rerankloop/rerank/host/search"
)

// The load benchmark runs against full SciFact (5,183 documents) when the
// shared data folder is present; set RERANK_BENCH_SCIFACT to point elsewhere.
//
//	go test ./host/server -run '^$' -bench SearchLoopback -benchtime 3000x
//
// It reports searches/s and p50/p99 latency per mode: bm25 (no click log),
// log (impression queued for the next group commit, the default) and
// durable-log (answer after the impression's fsync), closed-loop with 1 and
// 8 clients, and open-loop at a fixed arrival rate (latency counted from
// the scheduled arrival, so a slow server cannot hide its queueing).
func scifactDir() string {
	if d := os.Getenv("RERANK_BENCH_SCIFACT"); d != "" {
		return d
	}
	return "../../../shared/datasets/scifact"
}

var (
	benchOnce    sync.Once
	benchIx      *search.Index
	benchQueries []string
	benchErr     error
)

func benchSetup(b *testing.B) (*search.Index, []string) {
	dir := scifactDir()
	if _, err := os.Stat(filepath.Join(dir, "corpus.jsonl")); err != nil {
		b.Skipf("SciFact not found at %s (set RERANK_BENCH_SCIFACT)", dir)
	}
	benchOnce.Do(func() {
		if benchErr = search.SetBM25(0.9, 0.4); benchErr != nil {
			return
		}
		tmp, err := os.MkdirTemp("", "bench-index-")
		if err != nil {
			benchErr = err
			return
		}
		idx := filepath.Join(tmp, "index")
		benchErr = search.Build(context.Background(), idx, func(fn func(dataset.Doc) error) error {
			return dataset.ReadCorpus(filepath.Join(dir, "corpus.jsonl"), fn)
		}, search.Options{}, nil)
		if benchErr != nil {
			return
		}
		if benchIx, benchErr = search.Open(idx); benchErr != nil {
			return
		}
		b, err := dataset.OpenBEIR(dir)
		if err != nil {
			benchErr = err
			return
		}
		qs, _, err := b.SplitQueries("test")
		for _, q := range qs {
			benchQueries = append(benchQueries, q.Text)
		}
		benchErr = err
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchIx, benchQueries
}

func BenchmarkSearchLoopback(b *testing.B) {
	ix, queries := benchSetup(b)
	modes := []struct {
		name         string
		log, durable bool
	}{{"bm25", false, false}, {"log", true, false}, {"durable-log", true, true}}
	for _, load := range []string{"clients=1", "clients=8", "rate=150/s"} {
		for _, m := range modes {
			b.Run(load+"/"+m.name, func(b *testing.B) {
				e := start(b, setup{ix: ix, noLog: !m.log, config: func(c *configs.Config) { c.ClickLog.DurableSearches = m.durable }})
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				get := func(i int) error {
					u := e.url + "/search?" + url.Values{"q": {queries[i%len(queries)]}, "size": {"10"}}.Encode()
					resp, err := client.Get(u)
					if err != nil {
						return err
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				}
				for i := range 100 { // warm connections and caches
					if err := get(i); err != nil {
						b.Fatal(err)
					}
				}
				lat := make([]time.Duration, b.N)
				var failed atomic.Int64
				b.ResetTimer()
				began := time.Now()
				var clients, rate int
				if _, err := fmt.Sscanf(load, "clients=%d", &clients); err == nil {
					var next atomic.Int64
					var wg sync.WaitGroup
					for range clients {
						wg.Go(func() {
							for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
								t := time.Now()
								if get(i) != nil {
									failed.Add(1)
								}
								lat[i] = time.Since(t)
							}
						})
					}
					wg.Wait()
				} else {
					fmt.Sscanf(load, "rate=%d/s", &rate)
					var wg sync.WaitGroup
					for i := range b.N {
						due := began.Add(time.Duration(i) * time.Second / time.Duration(rate))
						time.Sleep(time.Until(due))
						wg.Go(func() {
							if get(i) != nil {
								failed.Add(1)
							}
							lat[i] = time.Since(due)
						})
					}
					wg.Wait()
				}
				elapsed := time.Since(began)
				b.StopTimer()
				if n := failed.Load(); n > 0 {
					b.Fatalf("%d of %d searches failed", n, b.N)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "searches/s")
				b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50_ms")
				b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99_ms")
				b.ReportMetric(0, "ns/op") // a wall-clock total over concurrent requests means little
			})
		}
	}
}
